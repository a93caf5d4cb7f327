import { Aws, DefaultStackSynthesizer, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { ExistingData } from '../context';
import { ServiceTables } from '../constructs/service-tables';

// Builders, not constructs: each creates its resources directly in the stack's scope, so the
// logical IDs (and so the deployed resources, retained tables included) are those the stack had
// before it was split by concern. A Construct per concern would add a path segment to every
// logical ID and make CloudFormation replace them all.

/** The customer-managed keys: data (imported when deploying onto retained data), messaging, logs. */
export function dataKeys(stack: Stack, existing: ExistingData | undefined) {
  // ---- Keys (customer-managed, rotated, retained) ------------------------------------------------
  // Retained on destroy (the default for a KMS key): a re-deploy onto retained tables must use
  // the same key, which encrypts them, their restores and the secret.
  const dataKey: kms.IKey = existing
    ? kms.Key.fromKeyArn(stack, 'DataKey', existing.dataKeyArn)
    : new kms.Key(stack, 'DataKey', {
        description: 'cpis: DynamoDB tables, pseudonymisation secret, backups',
        enableKeyRotation: true,
      });
  const messagingKey = new kms.Key(stack, 'MessagingKey', {
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
  const logsKey = new kms.Key(stack, 'LogsKey', {
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

  return { dataKey, messagingKey, logsKey };
}

/** The service and audit tables (the audit's CloudTrail and backups with them) and the pseudonymisation key. */
export function serviceData(stack: Stack, existing: ExistingData | undefined, dataKey: kms.IKey, logsKey: kms.Key) {
  // ---- Data ----------------------------------------------------------------------------------
  const tables = new ServiceTables(stack, 'Tables', {
    key: dataKey,
    existing: existing ? { tableName: existing.tableName, auditTableName: existing.auditTableName } : undefined,
    trailKey: logsKey,
    // The synthesizer writes it with ${AWS::Partition} (and ${AWS::AccountId} when the
    // account is unknown) for CloudFormation to substitute.
    deployRoleArn:
      stack.synthesizer instanceof DefaultStackSynthesizer
        ? Fn.sub(stack.synthesizer.cloudFormationExecutionRoleArn)
        : undefined,
  });

  // Never a new key over existing audit events: the retained secret, when deploying onto them.
  const pseudonymSecret: secretsmanager.ISecret = existing
    ? secretsmanager.Secret.fromSecretCompleteArn(stack, 'PseudonymKey', existing.pseudonymSecretArn)
    : newPseudonymSecret(stack, dataKey);

  return { tables, pseudonymSecret };
}

/** The pseudonymisation key of a new deployment: generated once, retained, never rotated. */
function newPseudonymSecret(stack: Stack, dataKey: kms.IKey): secretsmanager.Secret {
  const pseudonymSecret = new secretsmanager.Secret(stack, 'PseudonymKey', {
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
