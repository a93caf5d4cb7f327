import { readFileSync } from 'fs';
import * as path from 'path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { DEFAULT_MESH_WORKFLOWS, MESH_CONTEXT, meshFrom } from '../lib/context';
import { AUDIT_WRITERS, MESH_MAP_DELETE, MESH_POLL, SERVICE_TABLE_ACTIONS } from '../lib/cpis-stack';
import {
  actionsOn,
  asList,
  COUNCIL_TOPIC_PREFIX,
  FUNCTIONS,
  logicalId,
  MESH,
  MESH_FUNCTIONS,
  refersTo,
  statementsOf,
  synth,
  Synthesised,
} from './helpers';

let off: Synthesised;
let on: Synthesised;
beforeAll(() => {
  off = synth();
  on = synth({ mesh: MESH });
});

const repo = (...parts: string[]) => readFileSync(path.join(__dirname, '..', '..', ...parts), 'utf8');
const ref = (s: Synthesised, c: { node: { defaultChild?: unknown } }) => ({ Ref: logicalId(s.stack, c) });
const fnProps = (s: Synthesised, crate: string) =>
  s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, s.stack.functions[crate].function)].Properties;
const tableArn = () => ({ 'Fn::GetAtt': [logicalId(on.stack, on.stack.tables.table), 'Arn'] });

describe('MESH off (the default)', () => {
  test('no mesh-poll, no MESH variable on the dispatcher, no MESH alarm or output', () => {
    expect(Object.keys(off.stack.functions).sort()).toEqual([...FUNCTIONS].sort());
    const env = fnProps(off, 'notification-dispatch').Environment.Variables;
    expect(Object.keys(env).filter((k) => k.startsWith('CPIS_MESH_'))).toEqual([]);
    expect(off.stack.meshPollAlarm).toBeUndefined();
    expect(Object.keys(off.template.toJSON().Outputs)).not.toContain('MeshPollFunctionName');
    expect(JSON.stringify(off.template.toJSON())).not.toContain('Mesh');
  });
});

describe('MESH on (-c cpis:meshSecretArn=… -c cpis:meshUrl=…)', () => {
  test('seven functions: mesh-poll added, and every existing resource keeps its logical ID', () => {
    expect(Object.keys(on.stack.functions).sort()).toEqual([...MESH_FUNCTIONS].sort());
    on.template.resourceCountIs('AWS::Lambda::Function', MESH_FUNCTIONS.length);
    const before = off.template.toJSON().Resources as Record<string, { Type: string }>;
    const after = on.template.toJSON().Resources as Record<string, { Type: string }>;
    for (const [id, resource] of Object.entries(before)) {
      // Versions are named by a hash of their function's configuration: the dispatcher's changes.
      if (resource.Type === 'AWS::Lambda::Version') continue;
      expect([id, after[id]?.Type]).toEqual([id, resource.Type]);
    }
  });

  test('the secret is imported by its ARN, never created', () => {
    // The pseudonymisation key and the portal's OpenID Connect client secret only.
    on.template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    expect(JSON.stringify(on.template.toJSON())).toContain(MESH.secretArn);
  });

  test('mesh-poll: exactly the variables PollSettings reads, the workflow defaults as in Rust', () => {
    expect(fnProps(on, 'mesh-poll').Environment.Variables).toEqual({
      CPIS_TABLE_NAME: ref(on, on.stack.tables.table),
      CPIS_AUDIT_TABLE_NAME: ref(on, on.stack.tables.auditTable),
      RUST_LOG: { Ref: 'LogLevel' },
      CPIS_VISIBILITY_TAIL_DAYS: { Ref: 'VisibilityTailDays' },
      CPIS_MESH_URL: MESH.url,
      CPIS_MESH_SECRET_ARN: MESH.secretArn,
      CPIS_MESH_WORKFLOW_UPLOAD: 'CPIS_LA_UPLOAD',
      CPIS_MESH_WORKFLOW_ACK: 'CPIS_LA_UPLOAD_ACK',
    });
    const settings = repo('crates', 'lambda', 'src', 'settings', 'mesh.rs');
    for (const [name, value] of [
      ['MESH_URL', 'CPIS_MESH_URL'],
      ['MESH_SECRET_ARN', 'CPIS_MESH_SECRET_ARN'],
      ['MESH_WORKFLOW_UPLOAD', 'CPIS_MESH_WORKFLOW_UPLOAD'],
      ['MESH_WORKFLOW_ACK', 'CPIS_MESH_WORKFLOW_ACK'],
      ['MESH_WORKFLOW_ASN', 'CPIS_MESH_WORKFLOW_ASN'],
      ['DEFAULT_UPLOAD_WORKFLOW', DEFAULT_MESH_WORKFLOWS.upload],
      ['DEFAULT_ACK_WORKFLOW', DEFAULT_MESH_WORKFLOWS.ack],
      ['DEFAULT_ASN_WORKFLOW', DEFAULT_MESH_WORKFLOWS.asn],
    ]) {
      expect(settings).toContain(`pub const ${name}: &str = "${value}";`);
    }
  });

  test('the dispatcher gets the MESH leg: its own variables plus the URL, the secret and the ASN workflow', () => {
    expect(fnProps(on, 'notification-dispatch').Environment.Variables).toEqual({
      CPIS_TABLE_NAME: ref(on, on.stack.tables.table),
      CPIS_AUDIT_TABLE_NAME: ref(on, on.stack.tables.auditTable),
      RUST_LOG: { Ref: 'LogLevel' },
      CPIS_SNS_TOPIC_ARN_PREFIX: COUNCIL_TOPIC_PREFIX,
      // ViewUrl when given, else the portal's ASN pages (functions.test.ts).
      CPIS_VIEW_URL: fnProps(off, 'notification-dispatch').Environment.Variables.CPIS_VIEW_URL,
      CPIS_MESH_URL: MESH.url,
      CPIS_MESH_SECRET_ARN: MESH.secretArn,
      CPIS_MESH_WORKFLOW_ASN: 'CPIS_ASN',
    });
  });

  test('one poll at a time, within the schedule: reserved concurrency 1, timeout below the period', () => {
    const p = fnProps(on, 'mesh-poll');
    expect(p.ReservedConcurrentExecutions).toBe(1);
    expect(p.Timeout).toBe(MESH_POLL.timeoutSeconds);
    expect(MESH_POLL.timeoutSeconds).toBeLessThan(MESH_POLL.everyMinutes * 60);
    for (const crate of FUNCTIONS) {
      expect(fnProps(on, crate).ReservedConcurrentExecutions).toBeUndefined();
    }
  });

  test('an EventBridge rule invokes its live alias every 5 minutes, without retries', () => {
    const aliasId = logicalId(on.stack, on.stack.functions['mesh-poll'].alias);
    const rules = Object.values(on.template.findResources('AWS::Events::Rule')).filter((r) =>
      refersTo(r.Properties.Targets, aliasId),
    );
    expect(rules).toHaveLength(1);
    const rule = rules[0].Properties;
    expect(rule.ScheduleExpression).toBe('rate(5 minutes)');
    expect(rule.Targets).toHaveLength(1);
    expect(rule.Targets[0].Input).toBeUndefined();
    expect(rule.Targets[0].RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 0 });
    // The event the schedule sends is a poll (no "action"), as the handler reads it.
    expect(repo('functions', 'mesh-poll', 'src', 'lib.rs')).toContain('let Some(action) = event.get("action") else {\n            return Ok(Self::Poll);');
  });

  test('mesh-poll on the service table: the upload path\'s actions, and deletes only of council and mailbox items', () => {
    const tableId = logicalId(on.stack, on.stack.tables.table);
    expect(actionsOn(on, 'mesh-poll', tableId).filter((a) => a.startsWith('dynamodb:'))).toEqual(
      [...SERVICE_TABLE_ACTIONS['mesh-poll'], ...MESH_MAP_DELETE.actions].sort(),
    );
    expect(SERVICE_TABLE_ACTIONS['mesh-poll']).toEqual(SERVICE_TABLE_ACTIONS['plan-upload']);
    const deletes = statementsOf(on, 'mesh-poll').filter((st) => asList(st.Action).includes('dynamodb:DeleteItem'));
    expect(deletes).toHaveLength(1);
    expect(deletes[0].Resource).toEqual(tableArn());
    expect(deletes[0].Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['LA#*', 'MESH#*'] } });
    // The two partitions the map writes (crates/aws: keys.rs, dynamo/mailboxes.rs).
    expect(repo('crates', 'aws', 'src', 'dynamo', 'keys.rs')).toContain('format!("LA#{ods}")');
    expect(repo('crates', 'aws', 'src', 'dynamo', 'mailboxes.rs')).toContain('format!("MESH#{mailbox}")');
    // Nothing else: no Scan, no PartiQL, no wildcard action but the KMS families.
    for (const st of statementsOf(on, 'mesh-poll')) {
      for (const a of asList(st.Action)) {
        expect(a).not.toMatch(/Scan|PartiQL|dynamodb:\*|Table$/);
        if (a.includes('*')) expect(['kms:GenerateDataKey*', 'kms:ReEncrypt*']).toContain(a);
      }
    }
  });

  test('the secret: GetSecretValue on it alone, for mesh-poll and the dispatcher only', () => {
    for (const crate of MESH_FUNCTIONS) {
      const reads = statementsOf(on, crate).filter((st) => JSON.stringify(st.Resource).includes(MESH.secretArn));
      const expected = ['mesh-poll', 'notification-dispatch'].includes(crate) ? [['secretsmanager:GetSecretValue']] : [];
      expect(reads.map((st) => asList(st.Action))).toEqual(expected);
    }
    for (const crate of ['mesh-poll', 'notification-dispatch']) {
      const st = statementsOf(on, crate).find((x) => x.Sid === 'DataKeyViaSecretsManager')!;
      expect(asList(st.Action)).toEqual(['kms:Decrypt']);
      expect(JSON.stringify(st.Condition)).toContain('secretsmanager.');
    }
  });

  test('mesh-poll writes the audit trail (PutItem only) and is exempt from the audit table\'s PutItem denial', () => {
    expect(AUDIT_WRITERS).toContain('mesh-poll');
    const auditId = logicalId(on.stack, on.stack.tables.auditTable);
    expect(actionsOn(on, 'mesh-poll', auditId).filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:PutItem']);
    const policy = JSON.stringify(on.template.findResources('AWS::DynamoDB::Table')[auditId].Properties.ResourcePolicy);
    expect(refersTo(JSON.parse(policy), logicalId(on.stack, on.stack.functions['mesh-poll'].role))).toBe(true);
    // mesh-poll sends nothing to SQS or SNS.
    expect(statementsOf(on, 'mesh-poll').flatMap((st) => asList(st.Action)).filter((a) => /^(sqs|sns):/.test(a))).toEqual([]);
  });

  test('no successful poll for 30 minutes alarms, on the EMF metric mesh-poll prints, missing data included', () => {
    const alarms = Object.values(on.template.findResources('AWS::CloudWatch::Alarm')).filter(
      (a) => a.Properties.MetricName === 'MeshPollSucceeded',
    );
    expect(alarms).toHaveLength(1);
    const p = alarms[0].Properties;
    expect(p.Namespace).toBe('CPIS');
    expect(p.Dimensions).toEqual([{ Name: 'Service', Value: 'cpis' }]);
    expect(p.Statistic).toBe('Sum');
    expect(p.Period).toBe(MESH_POLL.alarmMinutes * 60);
    expect(p.Threshold).toBe(1);
    expect(p.ComparisonOperator).toBe('LessThanThreshold');
    expect(p.TreatMissingData).toBe('breaching');
    expect(p.AlarmActions).toEqual([{ Ref: logicalId(on.stack, on.stack.opsTopic) }]);
    expect(p.OKActions).toEqual([{ Ref: logicalId(on.stack, on.stack.opsTopic) }]);
    expect(logicalId(on.stack, on.stack.meshPollAlarm!)).toBe(
      Object.keys(on.template.findResources('AWS::CloudWatch::Alarm')).find(
        (id) => on.template.toJSON().Resources[id].Properties.MetricName === 'MeshPollSucceeded',
      ),
    );
    // The signal is the line every poll prints to stdout (so no LogLevel silences it), in the
    // shape every cpis metric shares, tested by the function's own Rust test.
    const lib = repo('functions', 'mesh-poll', 'src', 'lib.rs');
    expect(lib).toContain('println!("{}", poll_metrics(&report, started));');
    expect(lib).toMatch(/"MeshPollSucceeded",\s*"Count",\s*u8::from\(report\.stopped\.is_none\(\)\)\.into\(\)/);
    expect(lib).toContain('fn the_metric_line_counts_the_poll()');
    expect(lib).toContain('use cpis_lambda::emf::emf_line;');
  });

  test('mesh-poll has its errors, throttles and error-log alarms like every function', () => {
    const fnId = logicalId(on.stack, on.stack.functions['mesh-poll'].function);
    const alarms = Object.values(on.template.findResources('AWS::CloudWatch::Alarm')).filter((a) =>
      refersTo(a.Properties.Dimensions ?? [], fnId),
    );
    expect(alarms.map((a) => a.Properties.MetricName).sort()).toEqual(['Errors', 'Throttles']);
    const errorLogs = on.stack.functions['mesh-poll'].errorLogsAlarm;
    expect(errorLogs).toBeDefined();
  });

  test('the dashboard shows the MESH alarm and every metric mesh-poll prints', () => {
    const dashboards = Object.values(on.template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
    expect(body).toContain(logicalId(on.stack, on.stack.meshPollAlarm!));
    const lib = repo('functions', 'mesh-poll', 'src', 'lib.rs');
    for (const metric of ['MeshPollSucceeded', 'MeshFilesReceived', 'MeshFilesAcknowledged', 'MeshFilesUnlinked', 'MeshReports']) {
      expect(body).toContain(metric);
      expect(lib).toMatch(new RegExp(`\\(\\s*"${metric}",\\s*"Count",`));
    }
  });

  test('the operator finds the function to invoke in the outputs', () => {
    expect(on.template.toJSON().Outputs.MeshPollFunctionName.Value).toEqual(
      ref(on, on.stack.functions['mesh-poll'].function),
    );
  });

  test('cdk-nag finds nothing unsuppressed', () => {
    const NAG = Match.stringLikeRegexp('AwsSolutions-.*|HIPAA.Security-.*');
    const findings = [
      ...Annotations.fromStack(on.stack).findError('*', NAG),
      ...Annotations.fromStack(on.stack).findWarning('*', NAG),
    ];
    expect(findings.map((f) => `${f.id}: ${f.entry.data}`)).toEqual([]);
  });
});

describe('the MESH context', () => {
  const get = (values: Record<string, unknown>) => (key: string) => values[key];
  const both = { [MESH_CONTEXT.secretArn]: MESH.secretArn, [MESH_CONTEXT.url]: MESH.url };

  test('off without either; both or neither', () => {
    expect(meshFrom(get({}))).toBeUndefined();
    expect(() => meshFrom(get({ [MESH_CONTEXT.secretArn]: MESH.secretArn }))).toThrow(/both/);
    expect(() => meshFrom(get({ [MESH_CONTEXT.url]: MESH.url }))).toThrow(/both/);
    expect(() => meshFrom(get({ [MESH_CONTEXT.asn]: 'X' }))).toThrow(/MESH is off/);
    expect(meshFrom(get(both))).toEqual(MESH);
  });

  test('the secret by its complete ARN; https, or http on the loopback only', () => {
    for (const arn of ['cpis/mesh', 'arn:aws:secretsmanager:eu-west-2:111122223333:secret:cpis/mesh', 'arn:aws:s3:::bucket']) {
      expect(() => meshFrom(get({ ...both, [MESH_CONTEXT.secretArn]: arn }))).toThrow(/complete ARN/);
    }
    for (const url of ['http://mesh.example.nhs.uk', 'ftp://127.0.0.1', 'https://mesh/path', 'https://', 'http://127.0.0.1.example.org']) {
      expect(() => meshFrom(get({ ...both, [MESH_CONTEXT.url]: url }))).toThrow(/cpis:meshUrl/);
    }
    expect(meshFrom(get({ ...both, [MESH_CONTEXT.url]: 'http://127.0.0.1:8700' }))!.url).toBe('http://127.0.0.1:8700');
    expect(meshFrom(get({ ...both, [MESH_CONTEXT.url]: 'https://mesh-sync.spineservices.nhs.uk/' }))!.url).toBe(
      'https://mesh-sync.spineservices.nhs.uk',
    );
  });

  test('workflow ids: defaults, overrides, header-safe, the acknowledgement apart from the upload', () => {
    const own = meshFrom(get({ ...both, [MESH_CONTEXT.upload]: 'SPINE_CPIS_LA_UPLOAD', [MESH_CONTEXT.asn]: 'SPINE_CPIS_ASN' }))!;
    expect(own.workflows).toEqual({ upload: 'SPINE_CPIS_LA_UPLOAD', ack: 'CPIS_LA_UPLOAD_ACK', asn: 'SPINE_CPIS_ASN' });
    expect(() => meshFrom(get({ ...both, [MESH_CONTEXT.ack]: 'CPIS LA' }))).toThrow(/cpis:meshWorkflowAck/);
    expect(() => meshFrom(get({ ...both, [MESH_CONTEXT.ack]: 'CPIS_LA_UPLOAD' }))).toThrow(/differ/);
    const custom = synth({ mesh: own });
    const env = fnProps(custom, 'mesh-poll').Environment.Variables;
    expect([env.CPIS_MESH_WORKFLOW_UPLOAD, env.CPIS_MESH_WORKFLOW_ACK]).toEqual(['SPINE_CPIS_LA_UPLOAD', 'CPIS_LA_UPLOAD_ACK']);
    expect(fnProps(custom, 'notification-dispatch').Environment.Variables.CPIS_MESH_WORKFLOW_ASN).toBe('SPINE_CPIS_ASN');
  });
});
