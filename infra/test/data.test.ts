import { Match } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'fs';
import * as path from 'path';
import {
  AUDIT_FORBIDDEN_ACTIONS,
  AUDIT_TABLE_CHANGES,
  AUDIT_TRAIL_RETENTION_DAYS,
  BACKUP_RETENTION_DAYS,
} from '../lib/constructs/service-tables';
import { AUDIT_WRITERS } from '../lib/cpis-stack';
import { logicalId, refersTo, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const table = () => s.template.findResources('AWS::DynamoDB::Table')[logicalId(s.stack, s.stack.tables.table)];
const audit = () => s.template.findResources('AWS::DynamoDB::Table')[logicalId(s.stack, s.stack.tables.auditTable)];
const dataKeyArn = () => ({ 'Fn::GetAtt': [logicalId(s.stack, s.stack.dataKey), 'Arn'] });

describe('service table (crates/aws/README.md)', () => {
  test('keys pk/sk are strings', () => {
    expect(table().Properties.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    for (const name of ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'gsi2pk', 'gsi2sk']) {
      expect(table().Properties.AttributeDefinitions).toContainEqual({ AttributeName: name, AttributeType: 'S' });
    }
  });

  test('GSIs gsi1 (gsi1pk/gsi1sk) and gsi2 (gsi2pk/gsi2sk), projection ALL', () => {
    expect(table().Properties.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: 'gsi1',
        KeySchema: [
          { AttributeName: 'gsi1pk', KeyType: 'HASH' },
          { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: 'gsi2',
        KeySchema: [
          { AttributeName: 'gsi2pk', KeyType: 'HASH' },
          { AttributeName: 'gsi2sk', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
  });

  test('TTL on expires_at', () => {
    expect(table().Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expires_at', Enabled: true });
  });
});

describe.each([
  ['service table', () => table()],
  ['audit table', () => audit()],
])('%s protections', (_name, get) => {
  test('on-demand capacity', () => {
    expect(get().Properties.BillingMode).toBe('PAY_PER_REQUEST');
  });
  test('point-in-time recovery', () => {
    expect(get().Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });
  test('deletion protection', () => {
    expect(get().Properties.DeletionProtectionEnabled).toBe(true);
  });
  test('encrypted with the customer-managed data key', () => {
    expect(get().Properties.SSESpecification).toEqual({
      SSEEnabled: true,
      SSEType: 'KMS',
      KMSMasterKeyId: dataKeyArn(),
    });
  });
  test('retained when the stack is deleted or the table replaced', () => {
    expect(get().DeletionPolicy).toBe('Retain');
    expect(get().UpdateReplacePolicy).toBe('Retain');
  });
});

describe('audit table', () => {
  test('keys pk/sk, no TTL (retention is a governance decision), no index', () => {
    expect(audit().Properties.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(audit().Properties.TimeToLiveSpecification).toBeUndefined();
    expect(audit().Properties.GlobalSecondaryIndexes).toBeUndefined();
  });

  const statements = () =>
    audit().Properties.ResourcePolicy.PolicyDocument.Statement as {
      Sid: string;
      Effect: string;
      Principal: unknown;
      Action: string | string[];
      Resource: unknown;
      Condition?: { ArnNotEquals: { 'aws:PrincipalArn': unknown[] } };
    }[];
  const statement = (sid: string) => statements().find((st) => st.Sid === sid)!;
  const exempt = (sid: string) => statement(sid).Condition?.ArnNotEquals['aws:PrincipalArn'];
  const roleArn = (role: { node: { defaultChild?: unknown } }) => ({ 'Fn::GetAtt': [logicalId(s.stack, role), 'Arn'] });

  test('its resource policy is four denials to every principal, nothing granted', () => {
    expect(statements().map((st) => st.Sid).sort()).toEqual(
      ['AppendOnly', 'DefinitionByDeploymentOrBreakGlass', 'PutByAuditWritersOnly', 'RemovalByBreakGlassOnly'],
    );
    for (const st of statements()) {
      expect(st.Effect).toBe('Deny');
      expect(st.Principal).toEqual({ AWS: '*' });
      expect(st.Resource).toBe('*');
    }
  });

  test('nobody may update or delete an event, nor write one through PartiQL or a batch', () => {
    expect(statement('AppendOnly').Action).toEqual([...AUDIT_FORBIDDEN_ACTIONS].sort());
    expect(statement('AppendOnly').Condition).toBeUndefined();
    expect(AUDIT_FORBIDDEN_ACTIONS).toEqual(
      expect.arrayContaining([
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:PartiQLInsert',
        'dynamodb:PartiQLUpdate',
        'dynamodb:PartiQLDelete',
      ]),
    );
  });

  test('only the audit writers\' roles may PutItem (their code writes with attribute_not_exists)', () => {
    expect(statement('PutByAuditWritersOnly').Action).toBe('dynamodb:PutItem');
    // mesh-poll exists only with MESH on (test/mesh.test.ts checks it is exempt there).
    expect(s.stack.functions['mesh-poll']).toBeUndefined();
    const writers = AUDIT_WRITERS.filter((name) => name !== 'mesh-poll');
    expect(exempt('PutByAuditWritersOnly')).toEqual(writers.map((name) => roleArn(s.stack.functions[name].role)));
    expect(exempt('PutByAuditWritersOnly')).not.toContainEqual(roleArn(s.stack.functions['outbox-relay'].role));
    // The claim in the comments rests on this line of the DynamoDB adapter.
    const source = (file: string) =>
      readFileSync(path.join(__dirname, '..', '..', 'crates', 'aws', 'src', 'dynamo', file), 'utf8');
    const dynamo = source('audit.rs');
    expect(dynamo).toContain('const APPEND_ONLY: &str = "attribute_not_exists(pk)";');
    const append = dynamo.slice(dynamo.indexOf('impl AuditTrail for DynamoStore'));
    expect(append.slice(0, append.indexOf('impl AuditReader'))).toContain('.condition_expression(APPEND_ONLY)');
    // The dispatcher records a delivery and its audit event in one transaction: the same condition.
    const puts = source('outbox.rs').split('.table_name(&self.audit_table)').slice(1);
    expect(puts.length).toBeGreaterThan(0);
    for (const put of puts) {
      expect(put.slice(0, put.indexOf('.build()'))).toContain('.condition_expression(APPEND_ONLY)');
    }
  });

  test('policy, TTL, recovery and table settings change only by a deployment or the break-glass role', () => {
    expect(statement('DefinitionByDeploymentOrBreakGlass').Action).toEqual([...AUDIT_TABLE_CHANGES].sort());
    expect(AUDIT_TABLE_CHANGES).toEqual(
      expect.arrayContaining(['dynamodb:PutResourcePolicy', 'dynamodb:UpdateTable', 'dynamodb:UpdateTimeToLive']),
    );
    expect(exempt('DefinitionByDeploymentOrBreakGlass')).toEqual([
      roleArn(s.stack.tables.breakGlassRole),
      { 'Fn::Sub': 'arn:${AWS::Partition}:iam::111122223333:role/cdk-hnb659fds-cfn-exec-role-111122223333-eu-west-2' },
    ]);
  });

  test('removing the policy or the table: the break-glass role only', () => {
    expect(statement('RemovalByBreakGlassOnly').Action).toEqual(
      ['dynamodb:DeleteResourcePolicy', 'dynamodb:DeleteTable'],
    );
    expect(exempt('RemovalByBreakGlassOnly')).toEqual([roleArn(s.stack.tables.breakGlassRole)]);
  });

  test('the break-glass role is assumed within the account with MFA, for an hour at most, and retained', () => {
    const role = s.template.findResources('AWS::IAM::Role')[logicalId(s.stack, s.stack.tables.breakGlassRole)];
    expect(role.Properties.MaxSessionDuration).toBe(3600);
    // Retained with the table, whose policy names it.
    expect(role.DeletionPolicy).toBe('Retain');
    const policies = Object.values(s.template.findResources('AWS::IAM::ManagedPolicy')).filter((p) =>
      JSON.stringify(p.Properties.Roles ?? []).includes(logicalId(s.stack, s.stack.tables.breakGlassRole)),
    );
    expect(policies).toHaveLength(1);
    expect(policies[0].DeletionPolicy).toBe('Retain');
    const [trust] = role.Properties.AssumeRolePolicyDocument.Statement;
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toHaveLength(1);
    expect(trust.Condition).toEqual({ Bool: { 'aws:MultiFactorAuthPresent': 'true' } });
    expect(JSON.stringify(trust.Principal)).toContain(':iam::111122223333:root');
  });

  test('a trail records every data event on the audit table, and the account\'s write management events', () => {
    const trails = Object.values(s.template.findResources('AWS::CloudTrail::Trail'));
    expect(trails).toHaveLength(1);
    const trail = trails[0].Properties;
    expect(trail.IsLogging).toBe(true);
    expect(trail.EnableLogFileValidation).toBe(true);
    expect(trail.KMSKeyId).toEqual({ 'Fn::GetAtt': [logicalId(s.stack, s.stack.logsKey), 'Arn'] });
    expect(trail.S3BucketName).toEqual({ Ref: logicalId(s.stack, s.stack.tables.auditTrailBucket) });
    expect(trail.EventSelectors).toBeUndefined();
    const [data, management] = trail.AdvancedEventSelectors;
    expect(trail.AdvancedEventSelectors).toHaveLength(2);
    expect(data.FieldSelectors).toEqual([
      { Field: 'eventCategory', Equals: ['Data'] },
      { Field: 'resources.type', Equals: ['AWS::DynamoDB::Table'] },
      { Field: 'resources.ARN', Equals: [{ 'Fn::GetAtt': [logicalId(s.stack, s.stack.tables.auditTable), 'Arn'] }] },
    ]);
    // No readOnly selector on data events: reads of the trail by a person are recorded too.
    expect(JSON.stringify(data)).not.toContain('readOnly');
    expect(management.FieldSelectors).toEqual([
      { Field: 'eventCategory', Equals: ['Management'] },
      { Field: 'readOnly', Equals: ['false'] },
    ]);
  });

  test('its log files are kept seven years, object-locked, versioned, private, and outlive the stack', () => {
    const bucket = s.template.findResources('AWS::S3::Bucket')[logicalId(s.stack, s.stack.tables.auditTrailBucket)];
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(AUDIT_TRAIL_RETENTION_DAYS).toBe(2557);
    expect(bucket.Properties.ObjectLockEnabled).toBe(true);
    expect(bucket.Properties.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: AUDIT_TRAIL_RETENTION_DAYS } },
    });
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    // Only this trail may write to it.
    const [policy] = Object.values(s.template.findResources('AWS::S3::BucketPolicy')).filter((p) =>
      refersTo(p.Properties.Bucket, logicalId(s.stack, s.stack.tables.auditTrailBucket)),
    );
    const put = policy.Properties.PolicyDocument.Statement.find((st: { Sid?: string }) => st.Sid === 'CloudTrailWrite');
    expect(put.Principal).toEqual({ Service: 'cloudtrail.amazonaws.com' });
    expect(JSON.stringify(put.Condition)).toContain(':trail/Cpis-audit');
  });
});

describe('keys, secret and backups', () => {
  test('every KMS key is customer-managed, rotated and retained', () => {
    const keys = s.template.findResources('AWS::KMS::Key');
    expect(Object.keys(keys)).toHaveLength(3);
    for (const key of Object.values(keys)) {
      expect(key.Properties.EnableKeyRotation).toBe(true);
      expect(key.DeletionPolicy).toBe('Retain');
    }
  });

  test('the pseudonymisation secret is generated (64 hex characters), KMS-encrypted and retained', () => {
    s.template.hasResource('AWS::SecretsManager::Secret', {
      Properties: {
        KmsKeyId: dataKeyArn(),
        GenerateSecretString: {
          PasswordLength: 64,
          ExcludePunctuation: true,
          ExcludeUppercase: true,
          IncludeSpace: false,
          ExcludeCharacters: 'ghijklmnopqrstuvwxyz',
        },
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('both tables are in a daily AWS Backup plan with a KMS-encrypted, retained, locked vault', () => {
    s.template.hasResource('AWS::Backup::BackupVault', {
      Properties: { EncryptionKeyArn: dataKeyArn() },
      DeletionPolicy: 'Retain',
    });
    s.template.hasResourceProperties('AWS::Backup::BackupPlan', {
      BackupPlan: {
        BackupPlanRule: [Match.objectLike({ Lifecycle: { DeleteAfterDays: BACKUP_RETENTION_DAYS } })],
      },
    });
    expect(BACKUP_RETENTION_DAYS).toBe(35);
    // Governance mode (no ChangeableForDays): compliance mode is irreversible, a decision for
    // the deploying organisation (README, "Deploy").
    const [vault] = Object.values(s.template.findResources('AWS::Backup::BackupVault'));
    expect(vault.Properties.LockConfiguration).toEqual({ MinRetentionDays: BACKUP_RETENTION_DAYS });
    const selection = JSON.stringify(s.template.findResources('AWS::Backup::BackupSelection'));
    expect(selection).toContain(logicalId(s.stack, s.stack.tables.table));
    expect(selection).toContain(logicalId(s.stack, s.stack.tables.auditTable));
  });
});
