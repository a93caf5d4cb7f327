import { TIMEOUTS } from '../lib/cpis-stack';
import { COUNCIL_TOPIC_PREFIX, FUNCTIONS, logicalId, refersTo, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const fnProps = (crate: string) =>
  s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, s.stack.functions[crate].function)]
    .Properties;

const ref = (construct: { node: { defaultChild?: unknown } }) => ({ Ref: logicalId(s.stack, construct) });

/** Exactly the variables crates/aws/src/config.rs reads that each function needs, plus RUST_LOG. */
const ENV: Record<string, () => Record<string, unknown>> = {
  'plan-upload': () => ({
    ...apiCommon(),
    CPIS_SNS_KMS_KEY_ID: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.messagingKey), 'Arn'] },
    CPIS_SNS_DLQ_ARN: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.snsDeliveryDlq.queue), 'Arn'] },
  }),
  'attendance-check': () => ({ ...apiCommon(), CPIS_ASN_QUEUE_URL: ref(s.stack.asnQueue.queue) }),
  'history-query': () => apiCommon(),
  'notification-dispatch': () => ({
    ...common(),
    CPIS_SNS_TOPIC_ARN_PREFIX: COUNCIL_TOPIC_PREFIX,
    // ViewUrl when given, else the deployed portal's ASN pages.
    CPIS_VIEW_URL: {
      'Fn::If': ['ViewUrlGiven', { Ref: 'ViewUrl' }, { 'Fn::Join': ['', apiUrlParts('/portal/notifications')] }],
    },
  }),
  portal: () => ({
    ...apiCommon(),
    CPIS_ASN_QUEUE_URL: ref(s.stack.asnQueue.queue),
    CPIS_SNS_KMS_KEY_ID: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.messagingKey), 'Arn'] },
    CPIS_SNS_DLQ_ARN: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.snsDeliveryDlq.queue), 'Arn'] },
    CPIS_OIDC_ISSUER: { Ref: 'PortalOidcIssuer' },
    CPIS_OIDC_CLIENT_ID: { Ref: 'PortalOidcClientId' },
    CPIS_OIDC_CLIENT_SECRET_ARN: { Ref: logicalId(s.stack, s.stack.node.findChild('PortalOidcClientSecret') as never) },
    CPIS_OIDC_REDIRECT_BASE: { 'Fn::Join': ['', apiUrlParts()] },
    CPIS_OIDC_SCOPES: { Ref: 'PortalOidcScopes' },
    CPIS_OIDC_USERINFO: { Ref: 'PortalOidcUserinfo' },
    CPIS_OIDC_CLAIMS: { Ref: 'PortalOidcClaims' },
    CPIS_OIDC_LABEL: { Ref: 'PortalOidcLabel' },
  }),
  'outbox-relay': () => ({
    ...common(),
    CPIS_ASN_QUEUE_URL: ref(s.stack.asnQueue.queue),
    CPIS_SNS_TOPIC_ARN_PREFIX: COUNCIL_TOPIC_PREFIX,
  }),
};
/** The execute-api URL of the $default stage, as the template joins it. */
const apiUrlParts = (path = '/') => [
  'https://',
  { Ref: logicalId(s.stack, s.stack.httpApi.api) },
  '.execute-api.eu-west-2.',
  { Ref: 'AWS::URLSuffix' },
  path,
];
const common = () => ({
  CPIS_TABLE_NAME: ref(s.stack.tables.table),
  CPIS_AUDIT_TABLE_NAME: ref(s.stack.tables.auditTable),
  RUST_LOG: { Ref: 'LogLevel' },
});
const apiCommon = () => ({
  ...common(),
  CPIS_PSEUDONYM_SECRET_ARN: ref(s.stack.pseudonymSecret),
  CPIS_VISIBILITY_TAIL_DAYS: { Ref: 'VisibilityTailDays' },
});

const KNOWN_VARIABLES = [
  'CPIS_TABLE_NAME',
  'CPIS_AUDIT_TABLE_NAME',
  'CPIS_ASN_QUEUE_URL',
  'CPIS_SNS_TOPIC_ARN_PREFIX',
  'CPIS_SNS_KMS_KEY_ID',
  'CPIS_SNS_DLQ_ARN',
  'CPIS_VIEW_URL',
  'CPIS_VISIBILITY_TAIL_DAYS',
  'CPIS_PSEUDONYM_SECRET_ARN',
  'CPIS_OIDC_ISSUER',
  'CPIS_OIDC_CLIENT_ID',
  'CPIS_OIDC_CLIENT_SECRET_ARN',
  'CPIS_OIDC_REDIRECT_BASE',
  'CPIS_OIDC_SCOPES',
  'CPIS_OIDC_USERINFO',
  'CPIS_OIDC_CLAIMS',
  'CPIS_OIDC_LABEL',
  'RUST_LOG',
];

describe('functions', () => {
  test('exactly the six functions of functions/', () => {
    expect(Object.keys(s.stack.functions).sort()).toEqual([...FUNCTIONS].sort());
    s.template.resourceCountIs('AWS::Lambda::Function', 6);
  });

  test.each(FUNCTIONS)('%s: arm64, provided.al2023, bootstrap, 256 MB, X-Ray active', (crate) => {
    const p = fnProps(crate);
    expect(p.Architectures).toEqual(['arm64']);
    expect(p.Runtime).toBe('provided.al2023');
    expect(p.Handler).toBe('bootstrap');
    expect(p.MemorySize).toBe(256);
    expect(p.TracingConfig).toEqual({ Mode: 'Active' });
  });

  test.each([
    ['plan-upload', TIMEOUTS.api],
    ['attendance-check', TIMEOUTS.api],
    ['history-query', TIMEOUTS.api],
    ['notification-dispatch', TIMEOUTS.dispatcher],
    ['outbox-relay', TIMEOUTS.relay],
    ['portal', TIMEOUTS.api],
  ])('%s times out after %i s', (crate, seconds) => {
    expect(fnProps(crate).Timeout).toBe(seconds);
  });

  test('the timeouts are 10 s (API), 30 s (dispatcher), 60 s (relay)', () => {
    expect(TIMEOUTS).toEqual({ api: 10, dispatcher: 30, relay: 60 });
  });

  test.each(FUNCTIONS)('%s: JSON logs filtered by RUST_LOG only, to its own KMS-encrypted log group', (crate) => {
    const p = fnProps(crate);
    const groupId = logicalId(s.stack, s.stack.functions[crate].logGroup);
    expect(p.Environment.Variables.RUST_LOG).toEqual({ Ref: 'LogLevel' });
    expect(p.LoggingConfig).toEqual({
      LogFormat: 'JSON',
      ApplicationLogLevel: 'TRACE',
      SystemLogLevel: 'WARN',
      LogGroup: { Ref: groupId },
    });
    const group = s.template.findResources('AWS::Logs::LogGroup')[groupId];
    expect(group.Properties.RetentionInDays).toBe(90);
    expect(group.Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [logicalId(s.stack, s.stack.logsKey), 'Arn'] });
    expect(group.DeletionPolicy).toBe('Retain');
  });

  test('LogLevel is a parameter with the levels tracing and Lambda both accept', () => {
    s.template.hasParameter('LogLevel', {
      Type: 'String',
      Default: 'INFO',
      AllowedValues: ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'],
    });
  });

  test.each(FUNCTIONS)('%s: environment is exactly the variables config.rs reads for it', (crate) => {
    const vars = fnProps(crate).Environment.Variables;
    expect(vars).toEqual(ENV[crate]());
    for (const name of Object.keys(vars)) {
      expect(KNOWN_VARIABLES).toContain(name);
    }
  });

  test('no function is given the inline pseudonymisation key (tests and local runs only)', () => {
    for (const crate of FUNCTIONS) {
      expect(fnProps(crate).Environment.Variables.CPIS_PSEUDONYM_KEY).toBeUndefined();
    }
  });

  test.each(FUNCTIONS)('%s alarms on errors and on throttles', (crate) => {
    const fnId = logicalId(s.stack, s.stack.functions[crate].function);
    const alarms = Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter((a) =>
      refersTo(a.Properties.Dimensions ?? [], fnId),
    );
    expect(alarms.map((a) => a.Properties.MetricName).sort()).toEqual(['Errors', 'Throttles']);
    for (const a of alarms) {
      expect(a.Properties.Threshold).toBe(0);
      expect(a.Properties.ComparisonOperator).toBe('GreaterThanThreshold');
      expect(a.Properties.AlarmActions).toEqual([{ Ref: logicalId(s.stack, s.stack.opsTopic) }]);
    }
  });

  test.each(FUNCTIONS)('%s alarms on any error-level log line', (crate) => {
    const logGroupId = logicalId(s.stack, s.stack.functions[crate].logGroup);
    const filters = Object.values(s.template.findResources('AWS::Logs::MetricFilter')).filter((f) =>
      refersTo(f.Properties.LogGroupName, logGroupId),
    );
    expect(filters).toHaveLength(1);
    const filter = filters[0].Properties;
    expect(filter.FilterPattern).toBe('{ $.level = "ERROR" }');
    const [transform] = filter.MetricTransformations;
    const alarms = Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter(
      (a) => a.Properties.MetricName === transform.MetricName && a.Properties.Namespace === transform.MetricNamespace,
    );
    expect(alarms).toHaveLength(1);
    expect(alarms[0].Properties.Threshold).toBe(0);
    expect(alarms[0].Properties.AlarmActions).toEqual([{ Ref: logicalId(s.stack, s.stack.opsTopic) }]);
  });

  test('each function waits for its own policy before it is created', () => {
    for (const crate of FUNCTIONS) {
      const fn = s.template.findResources('AWS::Lambda::Function')[
        logicalId(s.stack, s.stack.functions[crate].function)
      ];
      expect(fn.DependsOn).toEqual([logicalId(s.stack, s.stack.functions[crate].policy)]);
    }
  });

  test.each(FUNCTIONS)('%s: a live alias on its published version; old versions are kept for rollback', (crate) => {
    const fnId = logicalId(s.stack, s.stack.functions[crate].function);
    const aliases = Object.values(s.template.findResources('AWS::Lambda::Alias')).filter((a) =>
      refersTo(a.Properties.FunctionName, fnId),
    );
    expect(aliases).toHaveLength(1);
    const alias = aliases[0].Properties;
    expect(alias.Name).toBe('live');
    const versions = s.template.findResources('AWS::Lambda::Version');
    const versionId = Object.keys(versions).find((k) => refersTo(alias.FunctionVersion, k));
    expect(versionId).toBeDefined();
    expect(versions[versionId!].Properties.FunctionName).toEqual({ Ref: fnId });
    expect(versions[versionId!].DeletionPolicy).toBe('Retain');
  });

  test('nothing invokes $LATEST: every invoke permission is on a live alias', () => {
    const aliasIds = Object.keys(s.template.findResources('AWS::Lambda::Alias'));
    const permissions = Object.values(s.template.findResources('AWS::Lambda::Permission'));
    expect(permissions.length).toBeGreaterThan(0);
    for (const p of permissions) {
      expect(aliasIds.some((id) => refersTo(p.Properties.FunctionName, id))).toBe(true);
    }
  });
});
