import { synth, Synthesised } from './helpers';

/**
 * The logical IDs of what holds or protects data. CloudFormation knows a resource by its logical
 * ID: a refactor that moves one of these under another construct (a new path segment) changes
 * the ID, and the next deploy creates a new, empty resource while the retained one is orphaned
 * (a new table beside the old data, a new pseudonymisation key beside the old pseudonyms). The
 * stack was split by concern (lib/stack/) without moving any of them; this keeps it so.
 */
const PINNED: Record<string, string> = {
  DataKey17AFBB84: 'AWS::KMS::Key',
  MessagingKey9A79A2B1: 'AWS::KMS::Key',
  LogsKeyA6AB43B2: 'AWS::KMS::Key',
  TablesTableB9B09DF9: 'AWS::DynamoDB::Table',
  TablesAuditTable74DDE525: 'AWS::DynamoDB::Table',
  TablesAuditBreakGlassRoleB886FE3E: 'AWS::IAM::Role',
  TablesAuditBreakGlassPolicyE5C68016: 'AWS::IAM::ManagedPolicy',
  TablesAuditTrailBucket21235872: 'AWS::S3::Bucket',
  TablesBackupVault72ED0825: 'AWS::Backup::BackupVault',
  PseudonymKey2CD808DE: 'AWS::SecretsManager::Secret',
};

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

test('every retained resource that holds or guards data keeps its logical ID', () => {
  const resources = s.template.toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string }>;
  for (const [id, type] of Object.entries(PINNED)) {
    expect([id, resources[id]?.Type, resources[id]?.DeletionPolicy]).toEqual([id, type, 'Retain']);
  }
  // And nothing of these types is retained under another ID (a copy beside the pinned one).
  const types = new Set(Object.values(PINNED));
  const retained = Object.entries(resources)
    .filter(([, r]) => r.DeletionPolicy === 'Retain' && types.has(r.Type))
    .map(([id]) => id)
    .sort();
  expect(retained).toEqual(Object.keys(PINNED).sort());
});
