import { existingDataFrom, ExistingData, EXISTING_DATA_CONTEXT } from '../lib/context';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { asList, FUNCTIONS, logicalId, refersTo, Statement, statementsOf, synth, Synthesised } from './helpers';

const EXISTING: ExistingData = {
  tableName: 'Cpis-restored-service',
  auditTableName: 'Cpis-TablesAuditTable0A1B2C3D-1EXAMPLE2',
  dataKeyArn: 'arn:aws:kms:eu-west-2:111122223333:key/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6',
  pseudonymSecretArn: 'arn:aws:secretsmanager:eu-west-2:111122223333:secret:PseudonymKeyA1B2C3D4-AbCdEf',
};

let fresh: Synthesised;
let onto: Synthesised;
beforeAll(() => {
  fresh = synth();
  onto = synth({ existingData: EXISTING });
});

const json = (x: unknown) => JSON.stringify(x);

describe('deploying onto retained data (README, "Runbook")', () => {
  test('no new table, data key or secret: the retained ones are imported', () => {
    onto.template.resourceCountIs('AWS::DynamoDB::Table', 0);
    onto.template.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
    // The portal's OpenID Connect client secret is no data: a new one is made (and set again
    // from the issuer); the pseudonymisation key is the retained one.
    const secrets = Object.keys(onto.template.findResources('AWS::SecretsManager::Secret'));
    expect(secrets).toEqual([logicalId(onto.stack, onto.stack.node.findChild('PortalOidcClientSecret') as never)]);
    // Messaging and logs keys only: the data key is the retained one.
    expect(Object.keys(onto.template.findResources('AWS::KMS::Key')).length).toBe(
      Object.keys(fresh.template.findResources('AWS::KMS::Key')).length - 1,
    );
    fresh.template.resourceCountIs('AWS::DynamoDB::Table', 2);
    fresh.template.resourceCountIs('AWS::SecretsManager::Secret', 2);
  });

  test('every function is pointed at them', () => {
    for (const crate of FUNCTIONS) {
      const env = onto.template.findResources('AWS::Lambda::Function')[
        logicalId(onto.stack, onto.stack.functions[crate].function)
      ].Properties.Environment.Variables;
      expect(env.CPIS_TABLE_NAME).toBe(EXISTING.tableName);
      expect(env.CPIS_AUDIT_TABLE_NAME).toBe(EXISTING.auditTableName);
      if (env.CPIS_PSEUDONYM_SECRET_ARN !== undefined) expect(env.CPIS_PSEUDONYM_SECRET_ARN).toBe(EXISTING.pseudonymSecretArn);
    }
  });

  /**
   * A statement with each resource it names replaced by the kind of resource (TABLE, AUDIT,
   * KEY, SECRET), and joins of plain strings collapsed, so a created resource's reference and
   * a retained resource's ARN compare equal.
   */
  const shape = (st: Statement, refs: Record<string, string>, arns: Record<string, string>) => {
    const norm = (v: unknown): unknown => {
      const text = json(v);
      if (refs[text]) return refs[text];
      if (typeof v === 'string') {
        let out = v;
        for (const [arn, kind] of Object.entries(arns)) out = out.split(arn).join(kind);
        return out;
      }
      if (Array.isArray(v)) return v.map(norm);
      if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (Array.isArray(o['Fn::Join']) && o['Fn::Join'][0] === '') {
          const parts = (o['Fn::Join'][1] as unknown[]).map(norm);
          if (parts.every((p) => typeof p === 'string')) return parts.join('');
          return { 'Fn::Join': ['', parts] };
        }
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, norm(x)]));
      }
      return v;
    };
    return json(norm({ Sid: st.Sid, Effect: st.Effect, Action: asList(st.Action).slice().sort(), Resource: st.Resource, Condition: st.Condition }));
  };

  test.each(FUNCTIONS)('%s has the same permissions, on the retained resources', (crate) => {
    const getAtt = (s: Synthesised, c: { node: { defaultChild?: unknown } }) => json({ 'Fn::GetAtt': [logicalId(s.stack, c), 'Arn'] });
    const freshRefs = {
      [getAtt(fresh, fresh.stack.tables.table)]: 'TABLE',
      [getAtt(fresh, fresh.stack.tables.auditTable)]: 'AUDIT',
      [getAtt(fresh, fresh.stack.dataKey)]: 'KEY',
      [json({ Ref: logicalId(fresh.stack, fresh.stack.pseudonymSecret) })]: 'SECRET',
    };
    const table = (name: string) => `arn:aws:dynamodb:eu-west-2:111122223333:table/${name}`;
    const ontoArns = {
      [table(EXISTING.auditTableName)]: 'AUDIT',
      [table(EXISTING.tableName)]: 'TABLE',
      [EXISTING.dataKeyArn]: 'KEY',
      [EXISTING.pseudonymSecretArn]: 'SECRET',
    };
    const before = statementsOf(fresh, crate).map((st) => shape(st, freshRefs, {})).sort();
    const after = statementsOf(onto, crate).map((st) => shape(st, {}, ontoArns)).sort();
    expect(after).toEqual(before);
    // Not equal by accident: the statements on data name the retained resources.
    const raw = json(statementsOf(onto, crate));
    expect(raw).toContain(table(EXISTING.tableName));
    expect(raw).toContain(EXISTING.dataKeyArn);
    expect(before.join()).toContain('"TABLE"');
  });

  test('the audit table\'s policy, which CloudFormation cannot set on an imported table, is an output', () => {
    const output = onto.template.toJSON().Outputs.AuditTableResourcePolicy;
    expect(output).toBeDefined();
    const text = json(output.Value);
    for (const sid of ['AppendOnly', 'DefinitionByDeploymentOrBreakGlass', 'RemovalByBreakGlassOnly', 'PutByAuditWritersOnly']) {
      expect(text).toContain(sid);
    }
    // It names the new writers' roles, exactly as a created table's policy does.
    for (const crate of ['plan-upload', 'attendance-check', 'history-query', 'notification-dispatch']) {
      expect(refersTo(output.Value, logicalId(onto.stack, onto.stack.functions[crate].role))).toBe(true);
    }
    expect(refersTo(output.Value, logicalId(onto.stack, onto.stack.functions['outbox-relay'].role))).toBe(false);
    expect(fresh.template.toJSON().Outputs.AuditTableResourcePolicy).toBeUndefined();
    const created = Object.values(fresh.template.findResources('AWS::DynamoDB::Table')).find(
      (t) => t.Properties.ResourcePolicy,
    )!;
    expect(json(created.Properties.ResourcePolicy)).toContain('PutByAuditWritersOnly');
  });

  test('backups and the CloudTrail data events still cover the retained tables', () => {
    const selection = Object.values(onto.template.findResources('AWS::Backup::BackupSelection'))[0].Properties;
    for (const name of [EXISTING.tableName, EXISTING.auditTableName]) {
      expect(json(selection)).toContain(`:table/${name}`);
      // (the audit trail watches the audit table only)
    }
    const trail = Object.values(onto.template.findResources('AWS::CloudTrail::Trail'))[0].Properties;
    expect(json(trail.AdvancedEventSelectors)).toContain(`:table/${EXISTING.auditTableName}`);
  });

  test('cdk-nag stays clean', () => {
    const NAG = Match.stringLikeRegexp('AwsSolutions-.*|HIPAA.Security-.*');
    const found = [
      ...Annotations.fromStack(onto.stack).findError('*', NAG),
      ...Annotations.fromStack(onto.stack).findWarning('*', NAG),
    ];
    expect(found.map((e) => `${e.id}: ${e.entry.data}`)).toEqual([]);
  });
});

test('the outputs name what a re-deploy needs, and a re-deploy names the same', () => {
  for (const x of [fresh, onto]) {
    const outputs = x.template.toJSON().Outputs;
    for (const name of ['TableName', 'AuditTableName', 'DataKeyArn', 'PseudonymSecretArn']) expect(outputs[name]).toBeDefined();
  }
  const outputs = onto.template.toJSON().Outputs;
  expect(outputs.TableName.Value).toBe(EXISTING.tableName);
  expect(outputs.AuditTableName.Value).toBe(EXISTING.auditTableName);
  expect(outputs.DataKeyArn.Value).toBe(EXISTING.dataKeyArn);
  expect(outputs.PseudonymSecretArn.Value).toBe(EXISTING.pseudonymSecretArn);
  expect(fresh.template.toJSON().Outputs.PseudonymSecretArn.Value).toEqual({ Ref: logicalId(fresh.stack, fresh.stack.pseudonymSecret) });
});

describe('the cpis:existing* context', () => {
  const ctx = (values: Record<string, unknown>) => (key: string) => values[key];
  const all = Object.fromEntries(Object.entries(EXISTING_DATA_CONTEXT).map(([field, key]) => [key, EXISTING[field as keyof ExistingData]]));

  test('none: a new deployment; all four: imported', () => {
    expect(existingDataFrom(ctx({}))).toBeUndefined();
    expect(existingDataFrom(ctx(all))).toEqual(EXISTING);
  });

  test('some but not all, or a malformed value, is refused', () => {
    expect(() => existingDataFrom(ctx({ [EXISTING_DATA_CONTEXT.tableName]: 'T' + 'x'.repeat(5) }))).toThrow('or none');
    expect(() => existingDataFrom(ctx({ ...all, [EXISTING_DATA_CONTEXT.dataKeyArn]: 'alias/cpis' }))).toThrow('KMS key ARN');
    // A partial secret ARN (no suffix) would match another secret of the same name.
    expect(() =>
      existingDataFrom(ctx({ ...all, [EXISTING_DATA_CONTEXT.pseudonymSecretArn]: 'arn:aws:secretsmanager:eu-west-2:111122223333:secret:PseudonymKey' })),
    ).toThrow('complete ARN');
  });
});
