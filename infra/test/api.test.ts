import { Match } from 'aws-cdk-lib/assertions';
import { PORTAL_ROUTES } from '../lib/stack/portal';
import { ACCESS_LOG_FORMAT } from '../lib/constructs/http-api';
import { logicalId, refersTo, synth, Synthesised } from './helpers';

const ROUTES: [string, string][] = [
  ['POST /v1/uploads', 'plan-upload'],
  ['POST /v1/uploads/rewind', 'plan-upload'],
  ['GET /v1/plans', 'plan-upload'],
  ['GET /v1/authority', 'plan-upload'],
  ['PUT /v1/authority', 'plan-upload'],
  ['GET /v1/notifications', 'plan-upload'],
  ['GET /v1/notifications/{id}', 'plan-upload'],
  ['POST /v1/notifications/{id}/ack', 'plan-upload'],
  ['POST /v1/checks', 'attendance-check'],
  ['GET /FHIR/R4/CareTeam', 'attendance-check'],
  ['GET /FHIR/R4/Flag', 'attendance-check'],
  ['POST /v1/history', 'history-query'],
  ['GET /FHIR/R4/AuditEvent', 'history-query'],
];

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

function route(routeKey: string) {
  const found = Object.values(s.template.findResources('AWS::ApiGatewayV2::Route')).filter(
    (r) => r.Properties.RouteKey === routeKey,
  );
  expect(found).toHaveLength(1);
  return found[0].Properties;
}

function integrationTarget(routeProps: { Target: unknown }): string {
  const integrations = s.template.findResources('AWS::ApiGatewayV2::Integration');
  const id = Object.keys(integrations).find((k) => refersTo(routeProps.Target, k));
  expect(id).toBeDefined();
  const integration = integrations[id!].Properties;
  expect(integration.IntegrationType).toBe('AWS_PROXY');
  expect(integration.PayloadFormatVersion).toBe('2.0');
  // The integration invokes the function's `live` alias, never $LATEST.
  const aliases = s.template.findResources('AWS::Lambda::Alias');
  const aliasId = Object.keys(aliases).find((k) => refersTo(integration.IntegrationUri, k));
  expect(aliasId).toBeDefined();
  const alias = aliases[aliasId!].Properties;
  expect(alias.Name).toBe('live');
  const fnIds = Object.keys(s.template.findResources('AWS::Lambda::Function'));
  expect(fnIds.filter((k) => refersTo(integration.IntegrationUri, k))).toEqual([]);
  const fnId = fnIds.find((k) => refersTo(alias.FunctionName, k));
  expect(fnId).toBeDefined();
  return fnId!;
}

const PORTAL_ROUTE_KEYS = PORTAL_ROUTES.map(([method, path]) => `${method} ${path}`);

describe('HTTP API routes', () => {
  test('exactly the issue\'s routes exist, plus GET /health', () => {
    const keys = Object.values(s.template.findResources('AWS::ApiGatewayV2::Route'))
      .map((r) => r.Properties.RouteKey)
      .sort();
    expect(keys).toEqual(
      [...ROUTES.map(([k]) => k), 'GET /health', 'GET /FHIR/R4/metadata', ...PORTAL_ROUTE_KEYS].sort(),
    );
  });

  test.each(ROUTES)('%s goes to %s behind the JWT authorizer', (routeKey, crate) => {
    const props = route(routeKey);
    expect(integrationTarget(props)).toBe(logicalId(s.stack, s.stack.functions[crate].function));
    expect(props.AuthorizationType).toBe('JWT');
    const authorizers = s.template.findResources('AWS::ApiGatewayV2::Authorizer');
    expect(Object.keys(authorizers)).toHaveLength(1);
    expect(props.AuthorizerId).toEqual({ Ref: Object.keys(authorizers)[0] });
  });

  test.each([
    ['GET /health', 'plan-upload'],
    // FHIR clients read the CapabilityStatement before they authenticate.
    ['GET /FHIR/R4/metadata', 'attendance-check'],
  ])('%s has no authorizer and goes to %s', (routeKey, crate) => {
    const props = route(routeKey);
    expect(props.AuthorizationType).toBe('NONE');
    expect(props.AuthorizerId).toBeUndefined();
    expect(integrationTarget(props)).toBe(logicalId(s.stack, s.stack.functions[crate].function));
  });

  test('one JWT authorizer: issuer and audiences are the JwtIssuer and JwtAudiences parameters', () => {
    s.template.hasParameter('JwtIssuer', { Type: 'String' });
    s.template.hasParameter('JwtAudiences', { Type: 'CommaDelimitedList' });
    s.template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Issuer: { Ref: 'JwtIssuer' }, Audience: { Ref: 'JwtAudiences' } },
    });
  });

  test.each(PORTAL_ROUTE_KEYS)('%s: the portal, outside the JWT authorizer (its own sessions)', (routeKey) => {
    const props = route(routeKey);
    expect(props.AuthorizationType).toBe('NONE');
    expect(props.AuthorizerId).toBeUndefined();
    expect(integrationTarget(props)).toBe(logicalId(s.stack, s.stack.functions['portal'].function));
  });

  test('API Gateway may invoke only the three API functions and the portal, through their live alias', () => {
    const targets = new Set(
      Object.values(s.template.findResources('AWS::Lambda::Permission'))
        .filter((p) => p.Properties.Principal === 'apigateway.amazonaws.com')
        .map((p) => JSON.stringify(p.Properties.FunctionName)),
    );
    const api = ['plan-upload', 'attendance-check', 'history-query', 'portal'].map((c) =>
      JSON.stringify({ Ref: logicalId(s.stack, s.stack.functions[c].alias) }),
    );
    expect([...targets].sort()).toEqual(api.sort());
  });
});

describe('HTTP API stage', () => {
  test('one $default stage, auto-deployed, throttled from parameters', () => {
    s.template.resourceCountIs('AWS::ApiGatewayV2::Stage', 1);
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: {
        ThrottlingRateLimit: { Ref: 'ApiRateLimit' },
        ThrottlingBurstLimit: { Ref: 'ApiBurstLimit' },
      },
    });
    s.template.hasParameter('ApiRateLimit', { Type: 'Number', Default: 50 });
    s.template.hasParameter('ApiBurstLimit', { Type: 'Number', Default: 100 });
  });

  test('access logs name the route, never the path, the query string or a body', () => {
    const stage = Object.values(s.template.findResources('AWS::ApiGatewayV2::Stage'))[0].Properties;
    const format: string = stage.AccessLogSettings.Format;
    const fields = JSON.parse(format);
    expect(fields).toEqual(ACCESS_LOG_FORMAT);
    for (const wanted of [
      '$context.routeKey',
      '$context.status',
      '$context.requestId',
      '$context.identity.sourceIp',
      '$context.responseLatency',
      '$context.integrationErrorMessage',
      '$context.authorizer.error',
    ]) {
      expect(format).toContain(wanted);
    }
    for (const forbidden of ['$context.path', 'querystring', 'queryString', 'rawQueryString', 'body', '$input', '$request']) {
      expect(format.toLowerCase()).not.toContain(forbidden.toLowerCase());
    }
  });

  test('access logs go to a KMS-encrypted log group with retention', () => {
    const stage = Object.values(s.template.findResources('AWS::ApiGatewayV2::Stage'))[0].Properties;
    const groupId = logicalId(s.stack, s.stack.httpApi.accessLogs);
    expect(refersTo(stage.AccessLogSettings.DestinationArn, groupId)).toBe(true);
    s.template.hasResource('AWS::Logs::LogGroup', {
      Properties: {
        RetentionInDays: 365,
        KmsKeyId: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.logsKey), 'Arn'] },
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('without a custom domain the execute-api endpoint serves the API', () => {
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'HTTP',
      DisableExecuteApiEndpoint: false,
    });
    s.template.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
  });
});

describe('custom domain', () => {
  const certificateArn = 'arn:aws:acm:eu-west-2:111122223333:certificate/00000000-0000-0000-0000-000000000000';
  let d: Synthesised;
  beforeAll(() => {
    d = synth({ customDomain: { domainName: 'api.cpis.example.org', certificateArn } });
  });

  test('disables the default execute-api endpoint and maps the domain to $default', () => {
    d.template.hasResourceProperties('AWS::ApiGatewayV2::Api', { DisableExecuteApiEndpoint: true });
    d.template.hasResourceProperties('AWS::ApiGatewayV2::DomainName', {
      DomainName: 'api.cpis.example.org',
      DomainNameConfigurations: [
        Match.objectLike({ CertificateArn: certificateArn, SecurityPolicy: 'TLS_1_2', EndpointType: 'REGIONAL' }),
      ],
    });
    d.template.hasResourceProperties('AWS::ApiGatewayV2::ApiMapping', {
      Stage: '$default',
      DomainName: { Ref: Match.anyValue() },
    });
    const domainId = Object.keys(d.template.findResources('AWS::ApiGatewayV2::DomainName'))[0];
    d.template.hasOutput('ApiUrl', {
      Value: { 'Fn::Join': ['', ['https://', { Ref: domainId }, '/']] },
    });
  });
});
