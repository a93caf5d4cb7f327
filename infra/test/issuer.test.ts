import { readFileSync } from 'fs';
import * as path from 'path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import {
  claimsContract,
  IssuerConfig,
  issuerFromContext,
  RESOURCE_SERVER,
  validateIssuerConfig,
} from '../lib/constructs/issuer';
import { logicalId, refersTo, synth, Synthesised } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const trigger = require('../lib/issuer/pre-token-generation.js') as {
  claimsFor(event: unknown, find: (id: string) => Promise<unknown>): Promise<Record<string, string>>;
  respond(event: object, claims: Record<string, string>): { response: unknown };
  CLAIMS: string[];
};

const contract = claimsContract();
const withoutSub = (claims: Record<string, string>) =>
  Object.fromEntries(Object.entries(claims).filter(([k]) => k !== 'sub'));

/** One client per role, each with the contract's example claims. */
const CONFIG: IssuerConfig = {
  domainPrefix: 'cpis-example',
  clients: [
    { name: 'council-E09000033', claims: withoutSub(contract.examples.council) },
    { name: 'ed-RJ1', claims: withoutSub(contract.examples.system) },
    { name: 'clinician-app-RJ1', claims: withoutSub(contract.examples.clinician) },
  ],
};

let plain: Synthesised;
let s: Synthesised;
beforeAll(() => {
  plain = synth();
  s = synth({ issuer: CONFIG });
});

const only = (x: Synthesised, type: string) => {
  const found = Object.entries(x.template.findResources(type));
  expect(found).toHaveLength(1);
  return { id: found[0][0], props: found[0][1].Properties };
};

describe('without the issuer (the default)', () => {
  test('no user pool, and the authorizer trusts the JwtIssuer and JwtAudiences parameters', () => {
    plain.template.resourceCountIs('AWS::Cognito::UserPool', 0);
    plain.template.resourceCountIs('AWS::SSM::Parameter', 0);
    expect(only(plain, 'AWS::ApiGatewayV2::Authorizer').props.JwtConfiguration).toEqual({
      Issuer: { Ref: 'JwtIssuer' },
      Audience: { Ref: 'JwtAudiences' },
    });
  });
});

describe('with -c cpis:issuer=cognito', () => {
  test('a user pool on the Essentials plan with the trigger at event version V3_0', () => {
    const pool = only(s, 'AWS::Cognito::UserPool').props;
    expect(pool.UserPoolTier).toBe('ESSENTIALS');
    expect(pool.LambdaConfig.PreTokenGenerationConfig).toEqual({
      LambdaArn: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.issuer!.trigger), 'Arn'] },
      LambdaVersion: 'V3_0',
    });
    expect(pool.AdminCreateUserConfig.AllowAdminCreateUserOnly).toBe(true);
  });

  test('one resource server with the one scope, and one client-credentials app client per entry', () => {
    expect(only(s, 'AWS::Cognito::UserPoolResourceServer').props).toMatchObject({
      Identifier: RESOURCE_SERVER.identifier,
      Scopes: [{ ScopeName: RESOURCE_SERVER.scope }],
    });
    const clients = Object.values(s.template.findResources('AWS::Cognito::UserPoolClient')).map((c) => c.Properties);
    expect(clients.map((c) => c.ClientName).sort()).toEqual(CONFIG.clients.map((c) => c.name).sort());
    for (const c of clients) {
      expect(c.GenerateSecret).toBe(true);
      expect(c.AllowedOAuthFlows).toEqual(['client_credentials']);
      expect(c.AllowedOAuthFlowsUserPoolClient).toBe(true);
      // `<resource server identifier>/api`: the server's Ref is its identifier, `cpis`.
      expect(c.AllowedOAuthScopes).toEqual([
        { 'Fn::Join': ['', [{ Ref: only(s, 'AWS::Cognito::UserPoolResourceServer').id }, `/${RESOURCE_SERVER.scope}`]] },
      ]);
      // No user authentication flow is asked for (and the pool has no users to sign in).
      expect(c.ExplicitAuthFlows).toBeUndefined();
      expect(c.AllowedOAuthFlows).not.toContain('code');
    }
    expect(only(s, 'AWS::Cognito::UserPoolDomain').props.Domain).toBe(CONFIG.domainPrefix);
  });

  test('the authorizer trusts the pool: its issuer URL, and the app clients\' ids as audiences', () => {
    expect(s.template.toJSON().Parameters.JwtIssuer).toBeUndefined();
    expect(s.template.toJSON().Parameters.JwtAudiences).toBeUndefined();
    const poolId = logicalId(s.stack, s.stack.issuer!.userPool);
    const { Issuer, Audience } = only(s, 'AWS::ApiGatewayV2::Authorizer').props.JwtConfiguration;
    // ProviderURL is https://cognito-idp.<region>.amazonaws.com/<user pool id>, the tokens' iss.
    expect(Issuer).toEqual({ 'Fn::GetAtt': [poolId, 'ProviderURL'] });
    const clientIds = CONFIG.clients.map((c) => ({ Ref: logicalId(s.stack, s.stack.issuer!.clients[c.name]) }));
    expect(Audience).toEqual(clientIds);
  });

  test('the sample events\' issuer (docs/claims.json) has the form of the pool\'s, in eu-west-2', () => {
    expect(contract.issuer.sample).toMatch(/^https:\/\/cognito-idp\.eu-west-2\.amazonaws\.com\/eu-west-2_[A-Za-z0-9]{9}$/);
    for (const file of readdirEvents()) {
      const claims = JSON.parse(readFileSync(file, 'utf8')).requestContext?.authorizer?.jwt?.claims;
      if (claims) expect([path.basename(file), claims.iss]).toEqual([path.basename(file), contract.issuer.sample]);
    }
  });

  test('each client\'s claims are stored under its client id, where the trigger reads them', () => {
    const fn = s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, s.stack.issuer!.trigger)].Properties;
    const prefix = fn.Environment.Variables.CLAIMS_PARAMETER_PREFIX as string;
    expect(prefix).toBe('/cpis/Cpis/issuer-clients/');
    for (const client of CONFIG.clients) {
      const param = s.template.findResources('AWS::SSM::Parameter')[logicalId(s.stack, s.stack.issuer!.claimParameters[client.name])].Properties;
      expect(param.Name).toEqual({
        'Fn::Join': ['', [prefix, { Ref: logicalId(s.stack, s.stack.issuer!.clients[client.name]) }]],
      });
      expect(JSON.parse(param.Value)).toEqual(client.claims);
    }
    // The trigger may read those parameters, and nothing else but its own logs.
    const policy = Object.values(s.template.findResources('AWS::IAM::ManagedPolicy')).find((p) =>
      JSON.stringify(p.Properties.PolicyDocument).includes('ssm:GetParameter'),
    )!.Properties;
    const statements = policy.PolicyDocument.Statement as { Sid: string; Action: unknown; Resource: unknown }[];
    expect(statements.map((st) => st.Sid)).toEqual(['WriteOwnLogs', 'ReadClientClaims']);
    expect(statements[1].Action).toBe('ssm:GetParameter');
    expect(JSON.stringify(statements[1].Resource)).toContain(`:parameter${prefix}*`);
    expect(refersTo(policy.Roles, logicalId(s.stack, s.stack.issuer!.trigger.role!))).toBe(true);
    expect(fn.Code.ZipFile).toBe(readFileSync(path.join(__dirname, '..', 'lib', 'issuer', 'pre-token-generation.js'), 'utf8'));
    expect(fn.Handler).toBe('index.handler');
  });

  test('outputs: the issuer, the token URL and each client id', () => {
    const outputs = s.template.toJSON().Outputs;
    for (const name of ['IssuerUrl', 'IssuerTokenUrl', 'IssuerUserPoolId', 'IssuerClientcouncilE09000033']) {
      expect(outputs[name]).toBeDefined();
    }
    expect(JSON.stringify(outputs.IssuerTokenUrl.Value)).toContain('/oauth2/token');
  });

  test('cdk-nag stays clean with the issuer', () => {
    const NAG = Match.stringLikeRegexp('AwsSolutions-.*|HIPAA.Security-.*');
    const found = [
      ...Annotations.fromStack(s.stack).findError('*', NAG),
      ...Annotations.fromStack(s.stack).findWarning('*', NAG),
    ];
    expect(found.map((e) => `${e.id}: ${e.entry.data}`)).toEqual([]);
  });
});

describe('the trigger (lib/issuer/pre-token-generation.js)', () => {
  const event = (clientId: string, triggerSource = 'TokenGeneration_ClientCredentials') => ({
    version: '3',
    triggerSource,
    callerContext: { clientId },
    request: { userAttributes: {}, scopes: ['cpis/api'] },
    response: {},
  });
  const stored: Record<string, Record<string, string>> = {
    abc123: withoutSub(contract.examples.clinician),
  };
  const find = async (id: string) => stored[id] ?? null;

  test('it adds exactly the contract\'s claims but sub, which Cognito sets to the client id', async () => {
    expect(trigger.CLAIMS.slice().sort()).toEqual(Object.keys(contract.claims).filter((c) => c !== 'sub').sort());
    const claims = await trigger.claimsFor(event('abc123'), async () => ({ ...stored.abc123, sub: 'someone', admin: 'yes' }));
    expect(claims).toEqual(stored.abc123);
    const answered = trigger.respond(event('abc123'), claims);
    expect(answered.response).toEqual({
      claimsAndScopeOverrideDetails: { accessTokenGeneration: { claimsToAddOrOverride: stored.abc123 } },
    });
  });

  test('an unknown client, another trigger source or a client without a role gets no token', async () => {
    await expect(trigger.claimsFor(event('unknown'), find)).rejects.toThrow('no cpis claims');
    await expect(trigger.claimsFor(event('abc123', 'TokenGeneration_HostedAuth'), find)).rejects.toThrow(
      'client-credentials tokens only',
    );
    await expect(trigger.claimsFor(event('abc123'), async () => ({ ods_code: 'RJ1' }))).rejects.toThrow('no cpis claims');
    await expect(trigger.claimsFor({ ...event('abc123'), callerContext: {} }, find)).rejects.toThrow('no app client');
  });
});

describe('client claims are checked against docs/claims.json when the stack is synthesised', () => {
  const one = (claims: Record<string, string>) => ({ domainPrefix: 'cpis-example', clients: [{ name: 'c', claims }] });

  test('each role\'s example is accepted', () => {
    for (const role of contract.roles) {
      expect(() => validateIssuerConfig(one(withoutSub(contract.examples[role])))).not.toThrow();
    }
  });

  test('an optional claim may be left out', () => {
    const { job_role: _role, job_role_name: _name, ...clinician } = withoutSub(contract.examples.clinician);
    expect(() => validateIssuerConfig(one(clinician))).not.toThrow();
  });

  test.each([
    ['an unknown role', { ...withoutSub(contract.examples.council), role: 'admin' }, 'role must be one of'],
    ['a care setting without rbac', withoutSub({ ...contract.examples.system, rbac: undefined as never }), 'needs rbac'],
    ['rbac outside the contract', { ...withoutSub(contract.examples.system), rbac: 'B0264' }, 'rbac must be one of'],
    ['a council with rbac', { ...withoutSub(contract.examples.council), rbac: 'B0107' }, 'carries no rbac'],
    ['a lower-case ODS code', { ...withoutSub(contract.examples.council), ods_code: 'e09000033' }, 'ods_code must match'],
    ['sub', { ...contract.examples.council }, 'sub is the client id'],
    ['a claim cpis does not read', { ...withoutSub(contract.examples.council), email: 'x@example.org' }, 'not a cpis claim'],
    ['an org_name too long', { ...withoutSub(contract.examples.system), org_name: 'x'.repeat(201) }, 'org_name is 1 to 200'],
    ['a system with a job role', { ...withoutSub(contract.examples.system), job_role: 'R0110', job_role_name: 'n' }, 'carries no job_role'],
    ['a job role without its name', withoutSub({ ...contract.examples.clinician, job_role_name: undefined as never }), 'job_role is given with job_role_name'],
    ['a job role that is not an SDS code', { ...withoutSub(contract.examples.clinician), job_role: 'X0110' }, 'job_role must match'],
  ])('%s is refused', (_what, claims, message) => {
    const cleaned = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined)) as Record<string, string>;
    expect(() => validateIssuerConfig(one(cleaned))).toThrow(message);
  });

  test('and so is a bad domain prefix, a duplicate name or no client', () => {
    const ok = withoutSub(contract.examples.council);
    expect(() => validateIssuerConfig({ domainPrefix: 'cognito-cpis', clients: [{ name: 'c', claims: ok }] })).toThrow('issuerDomainPrefix');
    expect(() =>
      validateIssuerConfig({ domainPrefix: 'cpis', clients: [{ name: 'c', claims: ok }, { name: 'c', claims: ok }] }),
    ).toThrow('named twice');
    expect(() => validateIssuerConfig({ domainPrefix: 'cpis', clients: [] })).toThrow('no app client');
  });

  test('context: off by default; a file of clients, or inline JSON', () => {
    expect(issuerFromContext(undefined, undefined, undefined)).toBeUndefined();
    expect(() => issuerFromContext(undefined, 'cpis', undefined)).toThrow('need -c cpis:issuer=cognito');
    expect(() => issuerFromContext('auth0', 'cpis', '[]')).toThrow('cognito or none');
    const json = JSON.stringify(CONFIG.clients);
    const fromFile = issuerFromContext('cognito', 'cpis-example', 'clients.json', (p) => {
      expect(p).toBe('clients.json');
      return json;
    });
    expect(fromFile).toEqual(CONFIG);
    expect(issuerFromContext('cognito', 'cpis-example', json)).toEqual(CONFIG);
    expect(() => issuerFromContext('cognito', undefined, json)).toThrow('issuerDomainPrefix');
  });
});

function readdirEvents(): string[] {
  const dir = path.join(__dirname, '..', '..', 'events', 'apigw');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('fs').readdirSync(dir) as string[]).map((f) => path.join(dir, f));
}
