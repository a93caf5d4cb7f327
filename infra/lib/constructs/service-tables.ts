import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface ServiceTablesProps {
  readonly key: kms.IKey;
}

/** Item-level writes that would change or remove an audit event. */
export const AUDIT_FORBIDDEN_ACTIONS = [
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
];

/**
 * The service table and the audit table of `crates/aws/README.md`: on-demand,
 * point-in-time recovery, deletion protection, a customer-managed KMS key,
 * retained when the stack is deleted, and in a daily AWS Backup plan.
 */
export class ServiceTables extends Construct {
  public readonly table: dynamodb.Table;
  public readonly auditTable: dynamodb.Table;

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

    this.table = new dynamodb.Table(this, 'Table', {
      ...protections,
      timeToLiveAttribute: 'expires_at',
    });
    this.table.addGlobalSecondaryIndex({
      indexName: 'gsi1',
      partitionKey: { name: 'gsi1pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'gsi1sk', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: 'gsi2',
      partitionKey: { name: 'gsi2pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'gsi2sk', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    // Append-only: no principal, not even an administrator, may change or
    // delete an audit event. Functions are granted PutItem only, and the
    // Rust code writes with attribute_not_exists(pk).
    this.auditTable = new dynamodb.Table(this, 'AuditTable', {
      ...protections,
      resourcePolicy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'AppendOnly',
            effect: iam.Effect.DENY,
            principals: [new iam.AnyPrincipal()],
            actions: AUDIT_FORBIDDEN_ACTIONS,
            resources: ['*'],
          }),
        ],
      }),
    });

    const vault = new backup.BackupVault(this, 'BackupVault', {
      encryptionKey: props.key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const plan = new backup.BackupPlan(this, 'BackupPlan', {
      backupVault: vault,
      backupPlanRules: [
        new backup.BackupPlanRule({
          ruleName: 'Daily35Days',
          scheduleExpression: events.Schedule.cron({ minute: '0', hour: '3' }),
          deleteAfter: Duration.days(35),
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
}
