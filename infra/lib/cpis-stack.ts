import * as path from 'path';
import { CfnOutput, Stack, StackProps, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { assertRegionAllowed, ExistingData, MeshContext } from './context';
import { CpisHttpApi, CustomDomain } from './constructs/http-api';
import { CognitoIssuer, IssuerConfig } from './constructs/issuer';
import { OperationsAlarms } from './constructs/operations';
import { DeadLetterQueue, ResilientQueue } from './constructs/resilient-queue';
import { CpisFunction } from './constructs/rust-function';
import { ServiceTables } from './constructs/service-tables';
import { httpApi } from './stack/api';
import { dataKeys, serviceData } from './stack/data';
import { serviceFunctions } from './stack/functions';
import { messaging, operationsTopic } from './stack/messaging';
import { monitoring } from './stack/monitoring';
import { stackParameters } from './stack/parameters';
import { portalSignIn } from './stack/portal';

export {
  AUDIT_WRITERS,
  CHANNEL_STATUS_ACTIONS,
  CHECK_VOLUME,
  MESH_MAP_DELETE,
  MESH_POLL,
  OUTBOX_AGE_ALARM_SECONDS,
  PSEUDONYM_READERS,
  SERVICE_TABLE_ACTIONS,
  TIMEOUTS,
  TOPIC_SYNC_ACTIONS,
} from './stack/constants';

export interface CpisStackProps extends StackProps {
  /** Build nothing: tests and cfn-lint use a placeholder `bootstrap` (see CpisFunction). */
  readonly placeholderCode?: boolean;
  /** Serve the API on this domain only (the execute-api endpoint is then disabled). */
  readonly customDomain?: CustomDomain;
  /** The Cargo workspace manifest; defaults to the repository's `Cargo.toml`. */
  readonly manifestPath?: string;
  /** Every function's architecture; defaults to arm64 (Graviton). */
  readonly architecture?: lambda.Architecture;
  /**
   * An issuer of the stack's own (a Cognito user pool with one app client per council or
   * care-setting system): the JWT authorizer then trusts it, and the JwtIssuer and
   * JwtAudiences parameters do not exist. Off by default (`-c cpis:issuer=cognito`).
   */
  readonly issuer?: IssuerConfig;
  /**
   * Deploy onto retained data (after a destroy, or a point-in-time restore to new tables):
   * the tables, the data key and the pseudonymisation secret are imported, not created.
   */
  readonly existingData?: ExistingData;
  /**
   * MESH on (`-c cpis:meshSecretArn=… -c cpis:meshUrl=…`): the mesh-poll function on a
   * schedule, and the dispatcher's ASN files (README, "MESH on AWS"). Off by default.
   */
  readonly mesh?: MeshContext;
}

export class CpisStack extends Stack {
  public readonly functions: Record<string, CpisFunction> = {};
  public readonly tables: ServiceTables;
  public readonly asnQueue: ResilientQueue;
  public readonly snsDeliveryDlq: DeadLetterQueue;
  public readonly opsTopic: sns.Topic;
  public readonly httpApi: CpisHttpApi;
  public readonly pseudonymSecret: secretsmanager.ISecret;
  public readonly dataKey: kms.IKey;
  public readonly messagingKey: kms.Key;
  public readonly logsKey: kms.Key;
  public readonly operations: OperationsAlarms;
  /** The stack's own issuer, when `issuer` is set. */
  public readonly issuer?: CognitoIssuer;
  /** outbox-relay's own signals: the outbox's age and councils a notification cannot reach. */
  public readonly relayAlarms: { outboxAge: cloudwatch.Alarm; withoutDirectoryEntry: cloudwatch.Alarm; withoutConfirmedChannel: cloudwatch.Alarm };
  /** With MESH on: no successful poll of the CP-IS mailbox for MESH_POLL.alarmMinutes. */
  public readonly meshPollAlarm?: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: CpisStackProps = {}) {
    super(scope, id, props);
    // Before anything else: a stack in the wrong region must not even synthesise.
    assertRegionAllowed(Token.isUnresolved(this.region) ? undefined : this.region, this.node.tryGetContext('cpis:allowRegion'));

    const manifestPath = props.manifestPath ?? path.join(__dirname, '..', '..', 'Cargo.toml');
    const placeholderCode = props.placeholderCode ?? false;

    const existing = props.existingData;
    // One builder per concern (lib/stack/), in the order the resources were always created.
    const params = stackParameters(this, props.issuer !== undefined);
    const { dataKey, messagingKey, logsKey } = dataKeys(this, existing);
    const opsTopic = operationsTopic(this, messagingKey, params.opsEmail);
    const { tables, pseudonymSecret } = serviceData(this, existing, dataKey, logsKey);
    const { asnQueue, snsDlq, topicArnPrefix, councilTopics } = messaging(this, messagingKey, opsTopic);
    const fns = serviceFunctions(this, {
      manifestPath,
      placeholderCode,
      architecture: props.architecture,
      params,
      tables,
      pseudonymSecret,
      dataKey,
      messagingKey,
      logsKey,
      opsTopic,
      asnQueue,
      snsDlq,
      topicArnPrefix,
      councilTopics,
      mesh: props.mesh,
    });
    Object.assign(this.functions, fns.functions);
    const { api, issuer } = httpApi(this, {
      params,
      issuerConfig: props.issuer,
      customDomain: props.customDomain,
      logsKey,
      planUpload: fns.planUpload,
      attendanceCheck: fns.attendanceCheck,
      historyQuery: fns.historyQuery,
    });
    const { clientSecret } = portalSignIn(this, {
      params,
      api,
      portal: fns.portal,
      dispatcher: fns.dispatcher,
      dataKey,
      tables,
    });
    const { operations, dashboard, relayAlarms, meshPollAlarm } = monitoring(this, {
      params,
      api,
      tables,
      opsTopic,
      asnQueue,
      snsDlq,
      functions: this.functions,
      attendanceCheck: fns.attendanceCheck,
      meshPoll: fns.meshPoll,
    });

    new CfnOutput(this, 'ApiUrl', { value: api.url, description: 'Base URL of the HTTP API' });
    if (issuer) {
      new CfnOutput(this, 'IssuerUrl', { value: issuer.issuerUrl, description: 'The issuer the API trusts (iss)' });
      new CfnOutput(this, 'IssuerTokenUrl', {
        value: issuer.tokenUrl,
        description: 'POST grant_type=client_credentials&scope=cpis/api with a client id and secret (README, "First credentials")',
      });
      new CfnOutput(this, 'IssuerUserPoolId', { value: issuer.userPool.userPoolId });
      for (const [name, client] of Object.entries(issuer.clients)) {
        new CfnOutput(this, `IssuerClient${name.replace(/[^A-Za-z0-9]/g, '')}`, {
          value: client.userPoolClientId,
          description: `App client ${name}: its secret is read with aws cognito-idp describe-user-pool-client`,
        });
      }
    }
    if (api.domainName) {
      new CfnOutput(this, 'ApiDomainTarget', {
        value: api.domainName.regionalDomainName,
        description: 'Point the custom domain (CNAME or alias) here',
      });
    }
    new CfnOutput(this, 'PortalUrl', { value: `${api.url}portal`, description: 'The web portal' });
    new CfnOutput(this, 'PortalRedirectUri', {
      value: `${api.url}portal/sign-in/callback`,
      description: 'Register this redirect URI with the portal\'s OpenID Connect issuer',
    });
    new CfnOutput(this, 'PortalOidcClientSecretArn', {
      value: clientSecret.secretArn,
      description: 'Put the issuer\'s client secret here: aws secretsmanager put-secret-value --secret-id <this> --secret-string <secret>',
    });
    new CfnOutput(this, 'DashboardName', { value: dashboard.dashboardName });
    if (fns.meshPoll) {
      new CfnOutput(this, 'MeshPollFunctionName', {
        value: fns.meshPoll.function.functionName,
        description: 'The operator links councils to MESH mailboxes by invoking it (qualifier live): README, "MESH on AWS"',
      });
    }

    new CfnOutput(this, 'TableName', { value: tables.table.tableName });
    new CfnOutput(this, 'AuditTableName', { value: tables.auditTable.tableName });
    // What a re-deploy onto retained data needs (README, "Runbook"): keep these four.
    new CfnOutput(this, 'DataKeyArn', {
      value: dataKey.keyArn,
      description: 'cpis:existingDataKeyArn of a re-deploy onto the retained tables',
    });
    new CfnOutput(this, 'PseudonymSecretArn', {
      value: pseudonymSecret.secretArn,
      description: 'cpis:existingPseudonymSecretArn of a re-deploy: the key behind every pseudonym in the audit trail',
    });
    if (tables.imported) {
      // CloudFormation cannot set an imported table's resource policy: apply this one with the
      // break-glass role the table's current policy names (README, "Runbook").
      new CfnOutput(this, 'AuditTableResourcePolicy', {
        value: this.toJsonString(tables.auditTablePolicy),
        description: 'Put this resource policy on the retained audit table (README, "Runbook")',
      });
    }
    new CfnOutput(this, 'AsnQueueUrl', { value: asnQueue.queue.queueUrl });
    new CfnOutput(this, 'AsnDlqUrl', { value: asnQueue.deadLetterQueue.queue.queueUrl });
    new CfnOutput(this, 'SnsDeliveryDlqArn', { value: snsDlq.queue.queueArn });
    new CfnOutput(this, 'OpsTopicArn', { value: opsTopic.topicArn });
    new CfnOutput(this, 'AuditBreakGlassRoleArn', {
      value: tables.breakGlassRole.roleArn,
      description: 'The only role that may remove the audit table or its policy (assume with MFA)',
    });
    new CfnOutput(this, 'AuditTrailBucket', {
      value: tables.auditTrailBucket.bucketName,
      description: 'CloudTrail: every data event on the audit table and the account\'s write management events',
    });

    this.tables = tables;
    this.asnQueue = asnQueue;
    this.snsDeliveryDlq = snsDlq;
    this.opsTopic = opsTopic;
    this.httpApi = api;
    this.pseudonymSecret = pseudonymSecret;
    this.dataKey = dataKey;
    this.messagingKey = messagingKey;
    this.logsKey = logsKey;
    this.operations = operations;
    this.issuer = issuer;
    this.relayAlarms = relayAlarms;
    this.meshPollAlarm = meshPollAlarm;

    // Stack-wide wildcard findings, each scoped by appliesTo.
    NagSuppressions.addStackSuppressions(this, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Wildcards that cannot be narrowed: "<table>/index/*" lets Query use the gsi1/gsi2 indexes of the service table; "cpis-la-*" are the per-council topics plan-upload creates at run time (one per council ODS code); kms:GenerateDataKey*/ReEncrypt* are the KMS action families SQS, SNS and DynamoDB use for envelope encryption, limited by kms:ViaService.',
        appliesTo: [
          { regex: '/^Resource::<TablesTable[0-9A-F]+\\.Arn>\\/index\\/\\*$/g' },
          // The same, for a retained table imported by name (README, "Runbook").
          { regex: '/^Resource::arn:(aws|<AWS::Partition>):dynamodb:[^:]+:[^:]+:table\\/[A-Za-z0-9_.-]+\\/index\\/\\*$/g' },
          { regex: '/^Resource::arn:<AWS::Partition>:sns:<AWS::Region>:<AWS::AccountId>:cpis-la-\\*$/g' },
          'Action::kms:GenerateDataKey*',
          'Action::kms:ReEncrypt*',
        ],
      },
    ]);
  }
}
