import * as path from 'path';
import { Aws, CfnCondition, CfnOutput, CfnParameter, DefaultStackSynthesizer, Duration, Fn, RemovalPolicy, Stack, StackProps, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { assertRegionAllowed, ExistingData } from './context';
import { ApiRoute, CpisHttpApi, CustomDomain } from './constructs/http-api';
import { CognitoIssuer, IssuerConfig } from './constructs/issuer';
import { OperationsAlarms, operationsDashboard } from './constructs/operations';
import { DeadLetterQueue, ResilientQueue } from './constructs/resilient-queue';
import { CpisFunction } from './constructs/rust-function';
import { ServiceTables } from './constructs/service-tables';
import { routesFromOpenApi } from './openapi-routes';

/** Function timeouts (seconds): the queue's visibility timeout is derived from the dispatcher's. */
export const TIMEOUTS = { api: 10, dispatcher: 30, relay: 60 } as const;

/** The service-table actions of each function, from the ports it uses (crates/aws/src/dynamo.rs). */
export const SERVICE_TABLE_ACTIONS: Record<string, string[]> = {
  // Uploads (BatchWriteItem puts and deletes, BatchGetItem counts), receipts
  // (PutItem, GetItem, Query), directory (GetItem, PutItem), plan listing
  // (Query gsi1), inbox (Query gsi1, GetItem) and acknowledgement (UpdateItem).
  'plan-upload': [
    'dynamodb:BatchGetItem',
    'dynamodb:BatchWriteItem',
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:Query',
    'dynamodb:UpdateItem',
  ],
  // Plans and directory reads; the access, its collapse item and its ASNs in
  // one TransactWriteItems (authorised as PutItem + UpdateItem); check
  // receipts (UpdateItem, GetItem); history (Query).
  'attendance-check': ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
  // Read-only.
  'history-query': ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'],
  // begin_delivery / finish_delivery (UpdateItem, consistent GetItem), directory (GetItem).
  'notification-dispatch': ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  // claim_undelivered: Query gsi2 then a conditional UpdateItem per ASN; the
  // feed check (Query on FEEDS); the channel check (directory GetItem per council
  // with a feed); the daily purge (Scan, then BatchWriteItem deletes).
  'outbox-relay': ['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
};

/** The enumeration watch's defaults, as in crates/domain/src/volume.rs (VolumePolicy). */
export const CHECK_VOLUME = { threshold: 100, periodMinutes: 10 };

/** Functions that pseudonymise children for the audit trail: the API functions. */
export const PSEUDONYM_READERS = ['plan-upload', 'attendance-check', 'history-query'];

/**
 * Functions that append audit events (PutItem only; no function reads the audit table):
 * the API functions, and the dispatcher, which audits each delivery to a duty team.
 */
export const AUDIT_WRITERS = [...PSEUDONYM_READERS, 'notification-dispatch'];

/** What outbox-relay's channel check calls (crates/aws/src/sns_status.rs). */
export const CHANNEL_STATUS_ACTIONS = { onCouncilTopics: ['sns:ListSubscriptionsByTopic'], account: ['sns:ListPhoneNumbersOptedOut'] };

/**
 * Seconds after the access by which an ASN must have reached its council's channels before
 * the operator is told. Normal delivery takes seconds; the queue's own age alarm is at 300 s.
 */
export const OUTBOX_AGE_ALARM_SECONDS = 900;

/** What plan-upload's TopicSync calls (crates/aws/src/sns.rs). */
export const TOPIC_SYNC_ACTIONS = [
  'sns:CreateTopic',
  'sns:ListSubscriptionsByTopic',
  'sns:Subscribe',
  'sns:Unsubscribe',
];

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

  constructor(scope: Construct, id: string, props: CpisStackProps = {}) {
    super(scope, id, props);
    // Before anything else: a stack in the wrong region must not even synthesise.
    assertRegionAllowed(Token.isUnresolved(this.region) ? undefined : this.region, this.node.tryGetContext('cpis:allowRegion'));

    const manifestPath = props.manifestPath ?? path.join(__dirname, '..', '..', 'Cargo.toml');
    const placeholderCode = props.placeholderCode ?? false;

    // ---- Parameters ---------------------------------------------------------------------------
    // The one issuer the JWT authorizer trusts: the stack's own Cognito user pool, or the one
    // the JwtIssuer parameter names (docs/claims.md: the claims either must carry).
    const jwtIssuer = props.issuer
      ? undefined
      : new CfnParameter(this, 'JwtIssuer', {
          type: 'String',
          description:
            'The one token issuer trusted for councils and care settings (e.g. NHS England API Management); the iss claim must equal it.',
          allowedPattern: '^https://.+$',
        });
    const jwtAudiences = props.issuer
      ? undefined
      : new CfnParameter(this, 'JwtAudiences', {
          type: 'CommaDelimitedList',
          description: 'Accepted aud claim values, comma-separated.',
        });
    const logLevel = new CfnParameter(this, 'LogLevel', {
      type: 'String',
      default: 'INFO',
      allowedValues: ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'],
      description:
        'RUST_LOG of every function. The enumeration watch (H6) and error lines are written at every level.',
    });
    const viewUrl = new CfnParameter(this, 'ViewUrl', {
      type: 'String',
      allowedPattern: '^https://.+$',
      description:
        'CPIS_VIEW_URL: where a duty team signs in to read a notification (the only link in SMS and email).',
    });
    const visibilityTailDays = new CfnParameter(this, 'VisibilityTailDays', {
      type: 'String',
      default: '365',
      allowedPattern: '^[0-9]{1,4}$',
      description: 'CPIS_VISIBILITY_TAIL_DAYS: days a CPP/LAC stays visible after its end date (0-3650).',
    });
    const opsEmail = new CfnParameter(this, 'OpsEmail', {
      type: 'String',
      default: '',
      description: 'Optional: an email address subscribed to the operations alarm topic.',
    });
    const apiRateLimit = new CfnParameter(this, 'ApiRateLimit', {
      type: 'Number',
      default: 50,
      minValue: 1,
      description: 'HTTP API stage steady-state rate limit (requests per second).',
    });
    const apiBurstLimit = new CfnParameter(this, 'ApiBurstLimit', {
      type: 'Number',
      default: 100,
      minValue: 1,
      description: 'HTTP API stage burst limit (requests).',
    });
    const checkVolumeThreshold = new CfnParameter(this, 'CheckVolumeThreshold', {
      type: 'Number',
      default: CHECK_VOLUME.threshold,
      minValue: 1,
      description: `Checks by one caller within ${CHECK_VOLUME.periodMinutes} minutes above which the possible-enumeration alarm fires (hazard H6).`,
    });

    const smsSpendAlarmUsd = new CfnParameter(this, 'SmsSpendAlarmUsd', {
      type: 'Number',
      default: 40,
      minValue: 1,
      description:
        'SNS SMS spend this month (USD) at which the operations topic is told; set it below the account\'s SNS MonthlySpendLimit, where SMS stop.',
    });
    const monthlyBudgetUsd = new CfnParameter(this, 'MonthlyBudgetUsd', {
      type: 'Number',
      default: 100,
      minValue: 1,
      description: 'Monthly cost budget of the account (USD): 80% actual and 100% forecast notify the operations topic.',
    });

    // ---- Keys (customer-managed, rotated, retained) ------------------------------------------------
    const existing = props.existingData;
    // Retained on destroy (the default for a KMS key): a re-deploy onto retained tables must use
    // the same key, which encrypts them, their restores and the secret.
    const dataKey: kms.IKey = existing
      ? kms.Key.fromKeyArn(this, 'DataKey', existing.dataKeyArn)
      : new kms.Key(this, 'DataKey', {
          description: 'cpis: DynamoDB tables, pseudonymisation secret, backups',
          enableKeyRotation: true,
        });
    const messagingKey = new kms.Key(this, 'MessagingKey', {
      description: 'cpis: SQS queues and SNS topics (ops and cpis-la-*)',
      enableKeyRotation: true,
    });
    // SNS encrypts council topics and redrives to the encrypted DLQ; CloudWatch
    // and AWS Budgets publish to the encrypted ops topic.
    for (const [sid, service] of [
      ['AllowSnsUse', 'sns.amazonaws.com'],
      ['AllowCloudWatchAlarmsUse', 'cloudwatch.amazonaws.com'],
      ['AllowBudgetsUse', 'budgets.amazonaws.com'],
    ]) {
      messagingKey.addToResourcePolicy(
        new iam.PolicyStatement({
          sid,
          principals: [new iam.ServicePrincipal(service)],
          actions: ['kms:GenerateDataKey*', 'kms:Decrypt'],
          resources: ['*'],
          conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
        }),
      );
    }
    const logsKey = new kms.Key(this, 'LogsKey', {
      description: 'cpis: CloudWatch Logs (function logs, API access logs) and the audit table\'s CloudTrail log files',
      enableKeyRotation: true,
    });
    logsKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogs',
        principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*`,
          },
        },
      }),
    );

    // ---- Operations topic ------------------------------------------------------------------------
    const opsTopic = new sns.Topic(this, 'OpsTopic', {
      displayName: 'cpis operations alarms',
      masterKey: messagingKey,
      enforceSSL: true,
    });
    opsTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'BudgetsPublish',
        principals: [new iam.ServicePrincipal('budgets.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [opsTopic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
    const hasOpsEmail = new CfnCondition(this, 'HasOpsEmail', {
      expression: Fn.conditionNot(Fn.conditionEquals(opsEmail.valueAsString, '')),
    });
    const opsSubscription = new sns.CfnSubscription(this, 'OpsEmailSubscription', {
      topicArn: opsTopic.topicArn,
      protocol: 'email',
      endpoint: opsEmail.valueAsString,
    });
    opsSubscription.cfnOptions.condition = hasOpsEmail;

    // ---- Data ----------------------------------------------------------------------------------
    const tables = new ServiceTables(this, 'Tables', {
      key: dataKey,
      existing: existing ? { tableName: existing.tableName, auditTableName: existing.auditTableName } : undefined,
      trailKey: logsKey,
      // The synthesizer writes it with ${AWS::Partition} (and ${AWS::AccountId} when the
      // account is unknown) for CloudFormation to substitute.
      deployRoleArn:
        this.synthesizer instanceof DefaultStackSynthesizer
          ? Fn.sub(this.synthesizer.cloudFormationExecutionRoleArn)
          : undefined,
    });

    // Never a new key over existing audit events: the retained secret, when deploying onto them.
    const pseudonymSecret: secretsmanager.ISecret = existing
      ? secretsmanager.Secret.fromSecretCompleteArn(this, 'PseudonymKey', existing.pseudonymSecretArn)
      : this.newPseudonymSecret(dataKey);

    // ---- Messaging -----------------------------------------------------------------------------
    const asnQueue = new ResilientQueue(this, 'AsnQueue', {
      key: messagingKey,
      alarmTopic: opsTopic,
      description: 'ASN queue',
      consumerTimeout: Duration.seconds(TIMEOUTS.dispatcher),
      maxReceiveCount: 5,
      maxMessageAge: Duration.seconds(300),
    });

    const topicArnPrefix = `arn:${Aws.PARTITION}:sns:${Aws.REGION}:${Aws.ACCOUNT_ID}:cpis-la-`;
    const councilTopics = `${topicArnPrefix}*`;

    const snsDlq = new DeadLetterQueue(this, 'SnsDeliveryDlq', {
      key: messagingKey,
      alarmTopic: opsTopic,
      description: 'SNS duty-team delivery DLQ',
    });
    snsDlq.queue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CouncilTopicsRedrive',
        principals: [new iam.ServicePrincipal('sns.amazonaws.com')],
        actions: ['sqs:SendMessage'],
        resources: [snsDlq.queue.queueArn],
        conditions: { ArnLike: { 'aws:SourceArn': councilTopics } },
      }),
    );

    // ---- Functions -----------------------------------------------------------------------------
    const common: Record<string, string> = {
      CPIS_TABLE_NAME: tables.table.tableName,
      CPIS_AUDIT_TABLE_NAME: tables.auditTable.tableName,
      RUST_LOG: logLevel.valueAsString,
    };
    const apiCommon: Record<string, string> = {
      ...common,
      CPIS_PSEUDONYM_SECRET_ARN: pseudonymSecret.secretArn,
      CPIS_VISIBILITY_TAIL_DAYS: visibilityTailDays.valueAsString,
    };

    const define = (crateName: string, description: string, timeout: number, environment: Record<string, string>) => {
      const fn = new CpisFunction(this, toId(crateName), {
        crateName,
        description,
        timeout: Duration.seconds(timeout),
        environment,
        manifestPath,
        architecture: props.architecture ?? lambda.Architecture.ARM_64,
        placeholderCode,
        logsKey,
        logRetention: logs.RetentionDays.THREE_MONTHS,
        alarmTopic: opsTopic,
      });
      this.functions[crateName] = fn;
      return fn;
    };

    const planUpload = define('plan-upload', 'cpis: council uploads, plans, directory, notifications inbox', TIMEOUTS.api, {
      ...apiCommon,
      CPIS_SNS_KMS_KEY_ID: messagingKey.keyArn,
      CPIS_SNS_DLQ_ARN: snsDlq.queue.queueArn,
    });
    const attendanceCheck = define('attendance-check', 'cpis: care-setting checks (JSON and FHIR)', TIMEOUTS.api, {
      ...apiCommon,
      CPIS_ASN_QUEUE_URL: asnQueue.queue.queueUrl,
    });
    const historyQuery = define('history-query', 'cpis: access history (JSON and FHIR AuditEvent)', TIMEOUTS.api, {
      ...apiCommon,
    });
    const dispatcher = define('notification-dispatch', 'cpis: SQS ASN ids -> SNS publish to cpis-la-<ODS>', TIMEOUTS.dispatcher, {
      ...common,
      CPIS_SNS_TOPIC_ARN_PREFIX: topicArnPrefix,
      CPIS_VIEW_URL: viewUrl.valueAsString,
    });
    const relay = define('outbox-relay', 'cpis: re-queues undelivered ASNs every minute', TIMEOUTS.relay, {
      ...common,
      CPIS_ASN_QUEUE_URL: asnQueue.queue.queueUrl,
      // The channel check reads each council topic's subscriptions.
      CPIS_SNS_TOPIC_ARN_PREFIX: topicArnPrefix,
    });

    // ---- Permissions: explicit statements only ------------------------------------------------------
    const tableResources = [tables.table.tableArn, `${tables.table.tableArn}/index/*`];
    const writers = new Set(['plan-upload', 'attendance-check', 'notification-dispatch', 'outbox-relay']);
    for (const [name, fn] of Object.entries(this.functions)) {
      fn.allow(
        new iam.PolicyStatement({
          sid: 'ServiceTable',
          actions: SERVICE_TABLE_ACTIONS[name],
          resources: tableResources,
        }),
      );
      const dynamoKeyActions = writers.has(name) || AUDIT_WRITERS.includes(name)
        ? ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*']
        : ['kms:Decrypt', 'kms:DescribeKey'];
      fn.allow(
        new iam.PolicyStatement({
          sid: 'DataKeyViaDynamoDB',
          actions: dynamoKeyActions,
          resources: [dataKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${Aws.REGION}.amazonaws.com` } },
        }),
      );
      if (AUDIT_WRITERS.includes(name)) {
        fn.allow(
          new iam.PolicyStatement({
            sid: 'AuditAppendOnly',
            actions: ['dynamodb:PutItem'],
            resources: [tables.auditTable.tableArn],
          }),
        );
      }
      if (PSEUDONYM_READERS.includes(name)) {
        fn.allow(
          new iam.PolicyStatement({
            sid: 'PseudonymKey',
            actions: ['secretsmanager:GetSecretValue'],
            resources: [pseudonymSecret.secretArn],
          }),
        );
        fn.allow(
          new iam.PolicyStatement({
            sid: 'DataKeyViaSecretsManager',
            actions: ['kms:Decrypt'],
            resources: [dataKey.keyArn],
            conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Aws.REGION}.amazonaws.com` } },
          }),
        );
      }
    }

    tables.restrictPutItemTo(AUDIT_WRITERS.map((name) => this.functions[name].role.roleArn));

    // Senders to the ASN queue.
    for (const fn of [attendanceCheck, relay]) {
      fn.allow(
        new iam.PolicyStatement({
          sid: 'AsnQueueSend',
          actions: ['sqs:SendMessage'],
          resources: [asnQueue.queue.queueArn],
        }),
      );
      fn.allow(
        new iam.PolicyStatement({
          sid: 'MessagingKeyViaSqs',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          resources: [messagingKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `sqs.${Aws.REGION}.amazonaws.com` } },
        }),
      );
    }

    // The dispatcher consumes the queue and publishes to council topics.
    dispatcher.allow(
      new iam.PolicyStatement({
        sid: 'AsnQueueConsume',
        actions: [
          'sqs:ChangeMessageVisibility',
          'sqs:DeleteMessage',
          'sqs:GetQueueAttributes',
          'sqs:ReceiveMessage',
        ],
        resources: [asnQueue.queue.queueArn],
      }),
    );
    dispatcher.allow(
      new iam.PolicyStatement({
        sid: 'CouncilTopicsPublish',
        actions: ['sns:Publish'],
        resources: [councilTopics],
      }),
    );
    dispatcher.allow(
      new iam.PolicyStatement({
        sid: 'MessagingKeyViaSqsAndSns',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: [messagingKey.keyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': [`sqs.${Aws.REGION}.amazonaws.com`, `sns.${Aws.REGION}.amazonaws.com`],
          },
        },
      }),
    );
    const mapping = dispatcher.alias.addEventSourceMapping('AsnQueueSource', {
      eventSourceArn: asnQueue.queue.queueArn,
      batchSize: 10,
      reportBatchItemFailures: true,
      maxConcurrency: 5,
    });
    mapping.node.addDependency(dispatcher.policy);

    // plan-upload keeps each council's topic and subscriptions in step (TopicSync).
    planUpload.allow(
      new iam.PolicyStatement({
        sid: 'CouncilTopicsSync',
        actions: TOPIC_SYNC_ACTIONS,
        resources: [councilTopics],
      }),
    );

    // The relay's channel check: read-only, on council topics, plus the account's opted-out
    // numbers (an action with no resource-level permissions).
    relay.allow(
      new iam.PolicyStatement({
        sid: 'CouncilTopicsSubscriptionsRead',
        actions: CHANNEL_STATUS_ACTIONS.onCouncilTopics,
        resources: [councilTopics],
      }),
    );
    relay.allow(
      new iam.PolicyStatement({
        sid: 'SmsOptOutsRead',
        actions: CHANNEL_STATUS_ACTIONS.account,
        resources: ['*'],
      }),
    );

    // The relay, every minute.
    new events.Rule(this, 'OutboxRelaySchedule', {
      description: 'cpis: sweep the ASN outbox every minute',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [
        new targets.LambdaFunction(relay.alias, {
          retryAttempts: 0,
          maxEventAge: Duration.minutes(1),
        }),
      ],
    });

    // The purge, once a day: what DynamoDB TTL cannot decide (a child's history
    // goes once no plan is left; ASNs follow their retention). crates/aws/README.md.
    new events.Rule(this, 'PurgeSchedule', {
      description: 'cpis: purge what TTL does not, once a day',
      schedule: events.Schedule.cron({ minute: '30', hour: '2' }),
      targets: [
        new targets.LambdaFunction(relay.alias, {
          event: events.RuleTargetInput.fromObject({ task: 'purge' }),
          retryAttempts: 2,
          maxEventAge: Duration.hours(2),
        }),
      ],
    });

    // ---- HTTP API ------------------------------------------------------------------------------
    // Which function serves each route is written once, in the OpenAPI description
    // (x-cpis-function); an operation without one, or naming another function, stops synthesis.
    const routes: ApiRoute[] = routesFromOpenApi({
      'plan-upload': planUpload.alias,
      'attendance-check': attendanceCheck.alias,
      'history-query': historyQuery.alias,
    });
    const issuer = props.issuer
      ? new CognitoIssuer(this, 'Issuer', {
          ...props.issuer,
          logsKey,
          logRetention: logs.RetentionDays.ONE_YEAR,
        })
      : undefined;
    const api = new CpisHttpApi(this, 'HttpApi', {
      // Cognito access tokens carry client_id, not aud: API Gateway checks client_id against these.
      jwtIssuer: issuer ? issuer.issuerUrl : jwtIssuer!.valueAsString,
      jwtAudiences: issuer ? Object.values(issuer.clients).map((c) => c.userPoolClientId) : jwtAudiences!.valueAsList,
      routes,
      throttle: { rateLimit: apiRateLimit.valueAsNumber, burstLimit: apiBurstLimit.valueAsNumber },
      logsKey,
      logRetention: logs.RetentionDays.ONE_YEAR,
      customDomain: props.customDomain,
    });

    const operations = new OperationsAlarms(this, 'Operations', {
      api: api.api,
      tables: [
        { table: tables.table, indexes: ['gsi1', 'gsi2'] },
        { table: tables.auditTable, indexes: [] },
      ],
      alarmTopic: opsTopic,
      smsSpendAlarmUsd: smsSpendAlarmUsd.valueAsNumber,
      monthlyBudgetUsd: monthlyBudgetUsd.valueAsNumber,
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
    // ---- Enumeration watch (hazard H6) ------------------------------------------------------------
    // attendance-check logs one "care-setting check" line per answered check with the caller and
    // its organisation (never the child). Contributor Insights ranks callers by those lines, and
    // the alarm fires when the busiest one passes the threshold: detection for review against the
    // audit trail, since refusing a clinician's check is itself a hazard.
    const checkVolumeRule = new cloudwatch.CfnInsightRule(this, 'CheckVolumeRule', {
      ruleName: `${this.stackName}-check-volume`,
      ruleState: 'ENABLED',
      ruleBody: this.toJsonString({
        Schema: { Name: 'CloudWatchLogRule', Version: 1 },
        LogGroupNames: [attendanceCheck.logGroup.logGroupName],
        LogFormat: 'JSON',
        Contribution: {
          Keys: ['$.fields.organisation', '$.fields.caller'],
          Filters: [{ Match: '$.fields.message', In: ['care-setting check'] }],
        },
        AggregateOn: 'Count',
      }),
    });
    const checkVolumeAlarm = new cloudwatch.Alarm(this, 'CheckVolumeAlarm', {
      alarmDescription:
        'attendance-check: one caller made more checks than the CheckVolumeThreshold parameter allows (possible enumeration, hazard H6); review the caller in the audit trail',
      metric: new cloudwatch.MathExpression({
        expression: `INSIGHT_RULE_METRIC('${checkVolumeRule.attrRuleName}', 'MaxContributorValue')`,
        period: Duration.minutes(CHECK_VOLUME.periodMinutes),
        label: 'checks by the busiest caller',
      }),
      threshold: checkVolumeThreshold.valueAsNumber,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    checkVolumeAlarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
    checkVolumeAlarm.addOkAction(new cwActions.SnsAction(opsTopic));

    // ---- Feed freshness (hazard H2): a council whose uploads stopped --------------------------------
    // outbox-relay prints StaleFeeds every minute (embedded metric format, not
    // through the log filter). Missing data means the relay itself stopped:
    // then nobody knows whether feeds are fresh, so it alarms too.
    const staleFeedsAlarm = new cloudwatch.Alarm(this, 'StaleFeedsAlarm', {
      alarmDescription:
        'outbox-relay: a council has sent no accepted full snapshot for longer than CPIS_FEED_STALE_AFTER_HOURS (48 h by default), so its plans go stale both ways (hazard H2); the relay log names the council. Also fires if the relay stops reporting.',
      metric: new cloudwatch.Metric({
        namespace: 'CPIS',
        metricName: 'StaleFeeds',
        dimensionsMap: { Service: 'cpis' },
        statistic: 'Maximum',
        period: Duration.minutes(15),
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    staleFeedsAlarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
    staleFeedsAlarm.addOkAction(new cwActions.SnsAction(opsTopic));

    // ---- The outbox: undelivered ASNs (if the relay stops, the queue-age alarm sees nothing) ------
    // outbox-relay prints OldestUndeliveredAsnAge every sweep: the oldest ASN it found undelivered
    // with its claim lapsed (0 when none). An undelivered ASN is re-claimed every 5 minutes (the
    // relay's lease), so a 10-minute maximum always includes it. Missing data means the relay
    // stopped, and then nobody re-queues anything: that alarms too.
    const relayMetric = (metricName: string, period: Duration) =>
      new cloudwatch.Metric({
        namespace: 'CPIS',
        metricName,
        dimensionsMap: { Service: 'cpis' },
        statistic: 'Maximum',
        period,
      });
    const outboxAgeAlarm = new cloudwatch.Alarm(this, 'OutboxAgeAlarm', {
      alarmDescription: `outbox-relay: an ASN is still undelivered ${OUTBOX_AGE_ALARM_SECONDS / 60} minutes after the access (its duty team has not been told; see the dispatcher's errors and the SNS DLQ), or the relay has stopped reporting`,
      metric: relayMetric('OldestUndeliveredAsnAge', Duration.minutes(10)),
      threshold: OUTBOX_AGE_ALARM_SECONDS,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });

    // ---- Councils that a flag or an ASN cannot reach ------------------------------------------
    // Counted each sweep over the councils with a feed (an accepted full snapshot on record): no
    // directory entry, or no subscription on cpis-la-<ODS> that is confirmed and (SMS) not opted
    // out. The relay's warning lines name the ODS codes. Missing data is not breaching here: a
    // failed check writes an error line (its own alarm), and a stopped relay is the alarm above.
    const noDirectoryAlarm = new cloudwatch.Alarm(this, 'CouncilsWithoutDirectoryEntryAlarm', {
      alarmDescription:
        'outbox-relay: a council with a feed has no directory entry, so its flags carry no phone number and its ASNs reach no duty team; the relay log names it',
      metric: relayMetric('CouncilsWithoutDirectoryEntry', Duration.minutes(15)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const noChannelAlarm = new cloudwatch.Alarm(this, 'CouncilsWithoutConfirmedChannelAlarm', {
      alarmDescription:
        'outbox-relay: a council with a feed has no confirmed duty-team subscription that is not opted out (email never confirmed or unsubscribed, SMS STOP, or no channels in its entry), so its ASNs wait in its inbox only; the relay log names it',
      metric: relayMetric('CouncilsWithoutConfirmedChannel', Duration.minutes(15)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of [outboxAgeAlarm, noDirectoryAlarm, noChannelAlarm]) {
      alarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
      alarm.addOkAction(new cwActions.SnsAction(opsTopic));
    }

    // ---- Dashboard: every alarm of the stack, then the signals behind them -----------------------
    const allAlarms = this.node.findAll().filter((c): c is cloudwatch.Alarm => c instanceof cloudwatch.Alarm);
    const graph = (title: string, metrics: cloudwatch.IMetric[]) =>
      new cloudwatch.GraphWidget({ title, left: metrics, width: 8 });
    const dashboard = operationsDashboard(this, {
      name: `${this.stackName}-operations`,
      alarms: allAlarms,
      api: api.api,
      functions: Object.entries(this.functions).map(([name, f]) => ({ name, fn: f.function })),
      extraGraphs: [
        graph('ASN queue: oldest message (s) and dead letters', [
          asnQueue.ageAlarm.metric,
          asnQueue.deadLetterQueue.depthAlarm.metric,
          snsDlq.depthAlarm.metric,
        ]),
        graph('DynamoDB throttle events', operations.throttleAlarms.map((a) => a.metric)),
        graph('SMS spend this month (USD)', [operations.smsSpendAlarm.metric]),
        graph('Checks by the busiest caller (H6)', [checkVolumeAlarm.metric]),
        graph('Councils with a stale feed (H2)', [staleFeedsAlarm.metric]),
        graph('Oldest undelivered ASN (s)', [outboxAgeAlarm.metric]),
        graph('Councils without a directory entry or a confirmed channel', [noDirectoryAlarm.metric, noChannelAlarm.metric]),
      ],
    });
    new CfnOutput(this, 'DashboardName', { value: dashboard.dashboardName });

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
    this.relayAlarms = { outboxAge: outboxAgeAlarm, withoutDirectoryEntry: noDirectoryAlarm, withoutConfirmedChannel: noChannelAlarm };

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
  /** The pseudonymisation key of a new deployment: generated once, retained, never rotated. */
  private newPseudonymSecret(dataKey: kms.IKey): secretsmanager.Secret {
    const pseudonymSecret = new secretsmanager.Secret(this, 'PseudonymKey', {
      description:
        'cpis: HMAC key (hex, 32 bytes) that pseudonymises children in the audit trail. Never rotate: old pseudonyms would stop matching.',
      encryptionKey: dataKey,
      // Losing the key would orphan every pseudonym already in the audit trail.
      removalPolicy: RemovalPolicy.RETAIN,
      generateSecretString: {
        passwordLength: 64,
        excludePunctuation: true,
        excludeUppercase: true,
        includeSpace: false,
        excludeCharacters: 'ghijklmnopqrstuvwxyz',
        requireEachIncludedType: false,
      },
    });
    NagSuppressions.addResourceSuppressions(pseudonymSecret, [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          'The pseudonymisation key must stay fixed: rotating it would break the link between audit events about the same child. It never leaves AWS and only the three API functions can read it.',
      },
      {
        id: 'HIPAA.Security-SecretsManagerRotationEnabled',
        reason: 'See AwsSolutions-SMG4: a pseudonymisation key cannot be rotated without re-keying the audit trail.',
      },
    ]);
    return pseudonymSecret;
  }
}

function toId(crateName: string): string {
  return crateName
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

