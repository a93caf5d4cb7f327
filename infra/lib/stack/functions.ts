import { Aws, Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { DeadLetterQueue, ResilientQueue } from '../constructs/resilient-queue';
import { CpisFunction } from '../constructs/rust-function';
import { ServiceTables } from '../constructs/service-tables';
import { MeshContext } from '../context';
import { StackParameters } from './parameters';
import { AUDIT_WRITERS, CHANNEL_STATUS_ACTIONS, MESH_POLL, PSEUDONYM_READERS, SERVICE_TABLE_ACTIONS, TIMEOUTS, TOPIC_SYNC_ACTIONS } from './constants';
import { dispatcherMeshEnvironment, meshSecret, meshWiring, pollerMeshEnvironment } from './mesh';

// Builders, not constructs: each creates its resources directly in the stack's scope, so the
// logical IDs (and so the deployed resources, retained tables included) are those the stack had
// before it was split by concern. A Construct per concern would add a path segment to every
// logical ID and make CloudFormation replace them all.

export interface ServiceFunctionsProps {
  readonly manifestPath: string;
  readonly placeholderCode: boolean;
  readonly architecture?: lambda.Architecture;
  readonly params: StackParameters;
  readonly tables: ServiceTables;
  readonly pseudonymSecret: secretsmanager.ISecret;
  readonly dataKey: kms.IKey;
  readonly messagingKey: kms.Key;
  readonly logsKey: kms.Key;
  readonly opsTopic: sns.Topic;
  readonly asnQueue: ResilientQueue;
  readonly snsDlq: DeadLetterQueue;
  readonly topicArnPrefix: string;
  readonly councilTopics: string;
  /** MESH on: mesh-poll, and the dispatcher's ASN files. */
  readonly mesh?: MeshContext;
}

/**
 * The six functions (seven with MESH: mesh-poll), their permissions (explicit statements only),
 * their triggers but the API.
 */
export function serviceFunctions(stack: Stack, p: ServiceFunctionsProps) {
  const { manifestPath, placeholderCode, tables, pseudonymSecret, dataKey, messagingKey, logsKey, opsTopic, asnQueue, snsDlq, topicArnPrefix, councilTopics } = p;
  const { logLevel, viewUrl, visibilityTailDays } = p.params;
  const functions: Record<string, CpisFunction> = {};
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

  const secret = p.mesh ? meshSecret(stack, p.mesh) : undefined;
  const define = (
    crateName: string,
    description: string,
    timeout: number,
    environment: Record<string, string>,
    reservedConcurrentExecutions?: number,
  ) => {
    const fn = new CpisFunction(stack, toId(crateName), {
      crateName,
      reservedConcurrentExecutions,
      description,
      timeout: Duration.seconds(timeout),
      environment,
      manifestPath,
      architecture: p.architecture ?? lambda.Architecture.ARM_64,
      placeholderCode,
      logsKey,
      logRetention: logs.RetentionDays.THREE_MONTHS,
      alarmTopic: opsTopic,
    });
    functions[crateName] = fn;
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
    ...(p.mesh && secret ? dispatcherMeshEnvironment(p.mesh, secret) : {}),
  });
  const relay = define('outbox-relay', 'cpis: re-queues undelivered ASNs every minute', TIMEOUTS.relay, {
    ...common,
    CPIS_ASN_QUEUE_URL: asnQueue.queue.queueUrl,
    // The channel check reads each council topic's subscriptions.
    CPIS_SNS_TOPIC_ARN_PREFIX: topicArnPrefix,
  });
  // The web portal: the check's and the directory's settings; its sign-in (CPIS_OIDC_*) is
  // added with its routes (stack/portal.ts).
  const portal = define('portal', 'cpis: the web portal (OpenID Connect sign-in, sessions in DynamoDB)', TIMEOUTS.api, {
    ...apiCommon,
    CPIS_ASN_QUEUE_URL: asnQueue.queue.queueUrl,
    CPIS_SNS_KMS_KEY_ID: messagingKey.keyArn,
    CPIS_SNS_DLQ_ARN: snsDlq.queue.queueArn,
  });

  // One poll at a time (reserved concurrency 1): the exchange is idempotent, but two pollers
  // could each find an acknowledgement untracked and send it twice (README decisions).
  const meshPoll =
    p.mesh && secret
      ? define(
          'mesh-poll',
          "cpis: polls the CP-IS MESH mailbox (councils' LA Upload files in, acknowledgements out); the operator's council-mailbox map",
          MESH_POLL.timeoutSeconds,
          { ...common, CPIS_VISIBILITY_TAIL_DAYS: visibilityTailDays.valueAsString, ...pollerMeshEnvironment(p.mesh, secret) },
          1,
        )
      : undefined;

  // ---- Permissions: explicit statements only ------------------------------------------------------
  const tableResources = [tables.table.tableArn, `${tables.table.tableArn}/index/*`];
  const writers = new Set(['plan-upload', 'attendance-check', 'notification-dispatch', 'outbox-relay', 'mesh-poll', 'portal']);
  for (const [name, fn] of Object.entries(functions)) {
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

  tables.restrictPutItemTo(AUDIT_WRITERS.filter((name) => functions[name]).map((name) => functions[name].role.roleArn));

  // Senders to the ASN queue.
  for (const fn of [attendanceCheck, relay, portal]) {
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

  // plan-upload and the portal's directory page keep each council's topic and subscriptions
  // in step (TopicSync).
  for (const fn of [planUpload, portal]) {
    fn.allow(
      new iam.PolicyStatement({
        sid: 'CouncilTopicsSync',
        actions: TOPIC_SYNC_ACTIONS,
        resources: [councilTopics],
      }),
    );
  }

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
  new events.Rule(stack, 'OutboxRelaySchedule', {
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
  new events.Rule(stack, 'PurgeSchedule', {
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

  const meshSchedule =
    meshPoll && secret ? meshWiring(stack, { secret, dataKey, tables, meshPoll, dispatcher }) : undefined;

  return { functions, planUpload, attendanceCheck, historyQuery, dispatcher, relay, meshPoll, meshSchedule, portal };
}

function toId(crateName: string): string {
  return crateName
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
