import { Match } from 'aws-cdk-lib/assertions';
import { AUDIT_FORBIDDEN_ACTIONS } from '../lib/constructs/service-tables';
import { logicalId, synth, Synthesised } from './helpers';

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

  test('its resource policy denies every principal any update or delete of an event', () => {
    const statements = audit().Properties.ResourcePolicy.PolicyDocument.Statement;
    expect(statements).toEqual([
      {
        Sid: 'AppendOnly',
        Effect: 'Deny',
        Principal: { AWS: '*' },
        Action: [...AUDIT_FORBIDDEN_ACTIONS].sort(),
        Resource: '*',
      },
    ]);
    expect(AUDIT_FORBIDDEN_ACTIONS).toEqual(
      expect.arrayContaining(['dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem']),
    );
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

  test('both tables are in a daily AWS Backup plan with a KMS-encrypted, retained vault', () => {
    s.template.hasResource('AWS::Backup::BackupVault', {
      Properties: { EncryptionKeyArn: dataKeyArn() },
      DeletionPolicy: 'Retain',
    });
    s.template.hasResourceProperties('AWS::Backup::BackupPlan', {
      BackupPlan: {
        BackupPlanRule: [Match.objectLike({ Lifecycle: { DeleteAfterDays: 35 } })],
      },
    });
    const selection = JSON.stringify(s.template.findResources('AWS::Backup::BackupSelection'));
    expect(selection).toContain(logicalId(s.stack, s.stack.tables.table));
    expect(selection).toContain(logicalId(s.stack, s.stack.tables.auditTable));
  });
});
