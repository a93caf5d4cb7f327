import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import { Aws, Stack } from 'aws-cdk-lib';
import * as cloudtrail from 'aws-cdk-lib/aws-cloudtrail';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface ServiceTablesProps {
  readonly key: kms.IKey;
  /** Encrypts the CloudTrail log files of the audit table's data events. */
  readonly trailKey: kms.Key;
  /**
   * The CloudFormation execution role that deploys this stack (the CDK bootstrap's), which may
   * change the audit table's definition; undefined when the synthesizer names none.
   */
  readonly deployRoleArn?: string;
  /**
   * Retained tables to use instead of creating new ones (README, "Runbook"): imported by name,
   * encrypted with `key`. The stack cannot set an imported table's resource policy: it gives
   * the policy to apply as `auditTablePolicy` (the `AuditTableResourcePolicy` output).
   */
  readonly existing?: { readonly tableName: string; readonly auditTableName: string };
}

/** Item-level writes that would change or remove an audit event: nobody may make them. */
export const AUDIT_FORBIDDEN_ACTIONS = [
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
];

/**
 * Changes to the audit table's definition that could expose or expire events (its policy,
 * TTL, point-in-time recovery, the table itself): a deployment of this stack or break-glass.
 */
export const AUDIT_TABLE_CHANGES = [
  'dynamodb:PutResourcePolicy',
  'dynamodb:UpdateTable',
  'dynamodb:UpdateTimeToLive',
  'dynamodb:UpdateContinuousBackups',
];

/** Removing the policy or the table: break-glass only, never a deployment. */
export const AUDIT_TABLE_REMOVALS = ['dynamodb:DeleteResourcePolicy', 'dynamodb:DeleteTable'];

/** Days CloudTrail's record of the audit table is kept, locked (S3 Object Lock, governance mode). */
export const AUDIT_TRAIL_RETENTION_DAYS = 2557;

/** Days the backup vault keeps every recovery point, locked (governance mode): the plan's retention. */
export const BACKUP_RETENTION_DAYS = 35;

/**
 * The service table and the audit table of `crates/aws/README.md`: on-demand,
 * point-in-time recovery, deletion protection, a customer-managed KMS key,
 * retained when the stack is deleted, and in a daily AWS Backup plan.
 */
export class ServiceTables extends Construct {
  public readonly table: dynamodb.ITable;
  public readonly auditTable: dynamodb.ITable;
  /** True when the tables were imported (`existing`), not created by this stack. */
  public readonly imported: boolean;
  /** The audit table's resource policy, as this stack sets it (or, imported, would). */
  public readonly auditTablePolicy: iam.PolicyDocument;
  /** The one role that may remove the audit table's policy or the table (assumed with MFA). */
  public readonly breakGlassRole: iam.Role;
  public readonly auditTrail: cloudtrail.CfnTrail;
  public readonly auditTrailBucket: s3.Bucket;
  public readonly backupVault: backup.BackupVault;

  constructor(scope: Construct, id: string, props: ServiceTablesProps) {
    super(scope, id);

    const protections = {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    };

    this.imported = props.existing !== undefined;
    if (props.existing) {
      // Retained tables keep their keys, indexes, TTL, PITR and deletion protection; after a
      // point-in-time restore the runbook sets the last three again.
      this.table = dynamodb.Table.fromTableAttributes(this, 'Table', {
        tableName: props.existing.tableName,
        encryptionKey: props.key,
        globalIndexes: ['gsi1', 'gsi2'],
      });
    } else {
      const table = new dynamodb.Table(this, 'Table', {
        ...protections,
        timeToLiveAttribute: 'expires_at',
      });
      table.addGlobalSecondaryIndex({
        indexName: 'gsi1',
        partitionKey: { name: 'gsi1pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'gsi1sk', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
      table.addGlobalSecondaryIndex({
        indexName: 'gsi2',
        partitionKey: { name: 'gsi2pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'gsi2sk', type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
      this.table = table;
    }

    // What "append-only" means here, enforced by the table's resource policy:
    // - nobody (functions, administrators, this stack) may update or delete an event;
    // - only the audit writers' roles may PutItem (restrictPutItemTo). IAM has no condition
    //   key for a ConditionExpression, so it cannot require that a put never overwrites: the
    //   writers' code does (attribute_not_exists(pk) in crates/aws/src/dynamo/audit.rs), and
    //   CloudTrail data events record every put;
    // - the table's policy, TTL and recovery settings change only through a deployment of this
    //   stack or the break-glass role; removing the policy or the table, break-glass only.
    // AWS lets the account's root user delete a DynamoDB resource policy whatever it says
    // (lockout protection); CloudTrail records that as a management event.
    this.breakGlassRole = new iam.Role(this, 'AuditBreakGlassRole', {
      description: 'cpis: break-glass for the audit table definition (assumed with MFA; every use is in CloudTrail)',
      assumedBy: new iam.AccountRootPrincipal().withConditions({
        Bool: { 'aws:MultiFactorAuthPresent': 'true' },
      }),
      maxSessionDuration: Duration.hours(1),
    });
    // Kept with the tables: after a destroy, the retained audit table's policy still names it.
    this.breakGlassRole.applyRemovalPolicy(RemovalPolicy.RETAIN);
    const breakGlassArn = this.breakGlassRole.roleArn;
    const deployers = props.deployRoleArn ? [breakGlassArn, props.deployRoleArn] : [breakGlassArn];
    this.auditTablePolicy = new iam.PolicyDocument({
      statements: [
        new iam.PolicyStatement({
          sid: 'AppendOnly',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: AUDIT_FORBIDDEN_ACTIONS,
          resources: ['*'],
        }),
        new iam.PolicyStatement({
          sid: 'DefinitionByDeploymentOrBreakGlass',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: AUDIT_TABLE_CHANGES,
          resources: ['*'],
          conditions: { ArnNotEquals: { 'aws:PrincipalArn': deployers } },
        }),
        new iam.PolicyStatement({
          sid: 'RemovalByBreakGlassOnly',
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: AUDIT_TABLE_REMOVALS,
          resources: ['*'],
          conditions: { ArnNotEquals: { 'aws:PrincipalArn': [breakGlassArn] } },
        }),
      ],
    });
    this.auditTable = props.existing
      ? dynamodb.Table.fromTableAttributes(this, 'AuditTable', {
          tableName: props.existing.auditTableName,
          encryptionKey: props.key,
        })
      : new dynamodb.Table(this, 'AuditTable', { ...protections, resourcePolicy: this.auditTablePolicy });
    // A managed policy of its own (no inline policies, as for the functions).
    const breakGlassPolicy = new iam.ManagedPolicy(this, 'AuditBreakGlassPolicy', {
      description: 'cpis audit break-glass: the audit table definition, never its items',
      roles: [this.breakGlassRole],
      statements: [
        new iam.PolicyStatement({
          sid: 'AuditTableDefinition',
          actions: ['dynamodb:DescribeTable', 'dynamodb:GetResourcePolicy', ...AUDIT_TABLE_CHANGES, ...AUDIT_TABLE_REMOVALS],
          resources: [this.auditTable.tableArn],
        }),
      ],
    });

    breakGlassPolicy.applyRemovalPolicy(RemovalPolicy.RETAIN);

    // Every data event on the audit table (each put, and any read of the trail by a person),
    // and the account's write management events (policy, table and key changes), to a trail of
    // its own: log files validated, KMS-encrypted, in a bucket whose objects are locked.
    // (CloudTrail Lake, which needs no bucket, is closed to new AWS customers since 31 May 2026.)
    const trailName = `${Stack.of(this).stackName}-audit`;
    const trailArn = `arn:${Aws.PARTITION}:cloudtrail:${Aws.REGION}:${Aws.ACCOUNT_ID}:trail/${trailName}`;
    props.trailKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudTrailEncrypt',
        principals: [new iam.ServicePrincipal('cloudtrail.amazonaws.com')],
        actions: ['kms:GenerateDataKey*', 'kms:DescribeKey'],
        resources: ['*'],
        conditions: {
          StringEquals: { 'aws:SourceArn': trailArn },
          StringLike: { 'kms:EncryptionContext:aws:cloudtrail:arn': `arn:${Aws.PARTITION}:cloudtrail:*:${Aws.ACCOUNT_ID}:trail/*` },
        },
      }),
    );
    this.auditTrailBucket = new s3.Bucket(this, 'AuditTrailBucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.trailKey,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectLockDefaultRetention: s3.ObjectLockRetention.governance(Duration.days(AUDIT_TRAIL_RETENTION_DAYS)),
      lifecycleRules: [{ expiration: Duration.days(AUDIT_TRAIL_RETENTION_DAYS + 1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const bucketPolicy = [
      new iam.PolicyStatement({
        sid: 'CloudTrailAclCheck',
        principals: [new iam.ServicePrincipal('cloudtrail.amazonaws.com')],
        actions: ['s3:GetBucketAcl'],
        resources: [this.auditTrailBucket.bucketArn],
        conditions: { StringEquals: { 'aws:SourceArn': trailArn } },
      }),
      new iam.PolicyStatement({
        sid: 'CloudTrailWrite',
        principals: [new iam.ServicePrincipal('cloudtrail.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [this.auditTrailBucket.arnForObjects(`AWSLogs/${Aws.ACCOUNT_ID}/*`)],
        conditions: {
          StringEquals: { 's3:x-amz-acl': 'bucket-owner-full-control', 'aws:SourceArn': trailArn },
        },
      }),
    ];
    for (const statement of bucketPolicy) {
      this.auditTrailBucket.addToResourcePolicy(statement);
    }
    this.auditTrail = new cloudtrail.CfnTrail(this, 'AuditTrail', {
      trailName,
      isLogging: true,
      s3BucketName: this.auditTrailBucket.bucketName,
      kmsKeyId: props.trailKey.keyArn,
      enableLogFileValidation: true,
      isMultiRegionTrail: false,
      includeGlobalServiceEvents: false,
      advancedEventSelectors: [
        {
          name: 'Audit table data events',
          fieldSelectors: [
            { field: 'eventCategory', equalTo: ['Data'] },
            { field: 'resources.type', equalTo: ['AWS::DynamoDB::Table'] },
            { field: 'resources.ARN', equalTo: [this.auditTable.tableArn] },
          ],
        },
        {
          name: 'Write management events',
          fieldSelectors: [
            { field: 'eventCategory', equalTo: ['Management'] },
            { field: 'readOnly', equalTo: ['false'] },
          ],
        },
      ],
    });
    // CloudTrail checks at creation that it may write to the bucket.
    this.auditTrail.node.addDependency(this.auditTrailBucket.policy!);
    NagSuppressions.addResourceSuppressions(this.auditTrail, [
      {
        id: 'HIPAA.Security-CloudTrailCloudWatchLogsEnabled',
        reason:
          'The trail is the durable record (validated, KMS-encrypted, object-locked in S3); copying every audit-table put to CloudWatch Logs would double the cost for no alarm that needs it.',
      },
    ]);
    NagSuppressions.addResourceSuppressions(this.auditTrailBucket, [
      {
        id: 'AwsSolutions-S1',
        reason:
          'Only CloudTrail writes this bucket and its objects are locked; reads of it are themselves CloudTrail management events. A server access log bucket would need its own, recursively.',
      },
      {
        id: 'HIPAA.Security-S3BucketLoggingEnabled',
        reason: 'See AwsSolutions-S1: the bucket holds CloudTrail log files only, written by CloudTrail and object-locked.',
      },
      {
        id: 'HIPAA.Security-S3BucketReplicationEnabled',
        reason:
          'The data must stay in the one allowed region (infra/lib/context.ts); object lock and versioning protect it there.',
      },
    ]);

    // Vault lock in governance mode: no recovery point leaves before BACKUP_RETENTION_DAYS
    // unless someone with backup:DeleteBackupVaultLockConfiguration first removes the lock
    // (CloudTrail records it). Compliance mode (changeableFor) would be irreversible after its
    // grace period, binding every future operator: that is the deploying organisation's
    // records decision, not this stack's default (README, "Deploy").
    const vault = new backup.BackupVault(this, 'BackupVault', {
      encryptionKey: props.key,
      removalPolicy: RemovalPolicy.RETAIN,
      lockConfiguration: { minRetention: Duration.days(BACKUP_RETENTION_DAYS) },
    });
    this.backupVault = vault;
    const plan = new backup.BackupPlan(this, 'BackupPlan', {
      backupVault: vault,
      backupPlanRules: [
        new backup.BackupPlanRule({
          ruleName: 'Daily35Days',
          scheduleExpression: events.Schedule.cron({ minute: '0', hour: '3' }),
          deleteAfter: Duration.days(BACKUP_RETENTION_DAYS),
        }),
      ],
    });
    plan.addSelection('Tables', {
      resources: [
        backup.BackupResource.fromDynamoDbTable(this.table),
        backup.BackupResource.fromDynamoDbTable(this.auditTable),
      ],
    });
    NagSuppressions.addResourceSuppressions(
      plan,
      [
        {
          id: 'AwsSolutions-IAM4',
          reason:
            'AWS Backup\'s own service role policy (AWSBackupServiceRolePolicyForBackup) is the documented way to let AWS Backup snapshot the tables.',
          appliesTo: [
            'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup',
          ],
        },
      ],
      true,
    );
  }

  /**
   * Denies PutItem on the audit table to every principal but these roles (the functions that
   * append events), so no person or other role can add or overwrite an event.
   */
  public restrictPutItemTo(writerRoleArns: string[]): void {
    // The document is the created table's policy (passed by reference), or the one to apply
    // to an imported table.
    this.auditTablePolicy.addStatements(
      new iam.PolicyStatement({
        sid: 'PutByAuditWritersOnly',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['dynamodb:PutItem'],
        resources: ['*'],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': writerRoleArns } },
      }),
    );
  }
}
