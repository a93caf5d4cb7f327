import { readFileSync } from 'fs';
import { PORTAL_ROUTES } from '../lib/stack/portal';
import { join } from 'path';
import { documentedOperations, routesFromOpenApi } from '../lib/openapi-routes';
import { logicalId, refersTo, synth, Synthesised } from './helpers';

// The OpenAPI description the Rust router is tested against (crates/http/tests/openapi.rs).
const OPENAPI_PATH = join(__dirname, '..', '..', 'crates', 'http', 'openapi.json');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

interface Operation {
  security?: Record<string, string[]>[];
}

interface OpenApi {
  security?: Record<string, string[]>[];
  paths: Record<string, Record<string, Operation>>;
}

const spec = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as OpenApi;

/** `METHOD /path` for every documented operation, with whether it needs a bearer token. */
function documented(): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue;
      const security = op.security ?? spec.security ?? [];
      out.set(`${method.toUpperCase()} ${path}`, security.some((r) => 'bearerAuth' in r));
    }
  }
  return out;
}

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

function routes(): { key: string; authorization: string }[] {
  return Object.values(s.template.findResources('AWS::ApiGatewayV2::Route'))
    .map((r) => ({
      key: r.Properties.RouteKey as string,
      authorization: r.Properties.AuthorizationType as string,
    }))
    .filter((r) => !PORTAL_KEYS.includes(r.key));
}

/**
 * The portal's routes (lib/stack/portal.ts) are no API operation: HTML pages under /portal,
 * routed by prefix to the portal function, which lists its own routes once
 * (crates/http/src/routes.rs) and fails closed on any other; api.test.ts checks them.
 */
const PORTAL_KEYS = PORTAL_ROUTES.map(([method, path]) => `${method} ${path}`);

describe('HTTP API and OpenAPI description', () => {
  test('the description documents operations', () => {
    expect(documented().size).toBeGreaterThan(0);
  });

  test('the API Gateway routes are exactly the OpenAPI paths and methods', () => {
    const synthesised = routes().map((r) => r.key).sort();
    expect(synthesised).toEqual([...documented().keys()].sort());
    // No catch-all route that would serve what the description does not document.
    expect(synthesised.filter((k) => k.startsWith('ANY ') || k.includes('$default') || k.includes('{proxy+}'))).toEqual([]);
  });

  test('the JWT authorizer guards exactly the routes with bearer security', () => {
    const wanted = documented();
    for (const { key, authorization } of routes()) {
      expect([key, authorization]).toEqual([key, wanted.get(key) ? 'JWT' : 'NONE']);
    }
  });
});

describe('which function serves each operation: x-cpis-function, written once', () => {
  const HTTP_FUNCTIONS = ['plan-upload', 'attendance-check', 'history-query'];

  test('every operation names exactly one HTTP function of the stack', () => {
    const ops = documentedOperations();
    expect(ops.length).toBe(documented().size);
    for (const op of ops) {
      expect([op.operationId, HTTP_FUNCTIONS.includes(op.function)]).toEqual([op.operationId, true]);
    }
    // Each HTTP function serves something.
    expect([...new Set(ops.map((o) => o.function))].sort()).toEqual([...HTTP_FUNCTIONS].sort());
  });

  test('each route goes to the live alias of the function its operation names, one route per operation', () => {
    const integrations = s.template.findResources('AWS::ApiGatewayV2::Integration');
    const aliasIds = Object.fromEntries(
      HTTP_FUNCTIONS.map((f) => [f, logicalId(s.stack, s.stack.functions[f].alias as never)]),
    );
    const byKey = new Map<string, string>();
    for (const r of Object.values(s.template.findResources('AWS::ApiGatewayV2::Route'))) {
      if (PORTAL_KEYS.includes(r.Properties.RouteKey)) continue;
      const target = JSON.stringify(r.Properties.Target);
      const integrationId = Object.keys(integrations).find((id) => target.includes(`"${id}"`))!;
      const uri = integrations[integrationId].Properties.IntegrationUri;
      const served = HTTP_FUNCTIONS.filter((f) => refersTo(uri, aliasIds[f]));
      expect(served).toHaveLength(1);
      expect(byKey.has(r.Properties.RouteKey)).toBe(false);
      byKey.set(r.Properties.RouteKey, served[0]);
    }
    const wanted = new Map(documentedOperations().map((op) => [`${op.method} ${op.path}`, op.function]));
    expect([...byKey.entries()].sort()).toEqual([...wanted.entries()].sort());
  });

  test('an operation without x-cpis-function, or naming no HTTP function, stops synthesis', () => {
    const spec = { paths: { '/v1/x': { get: { operationId: 'x' } } } };
    expect(() => documentedOperations(spec)).toThrow('names no x-cpis-function');
    const other = documentedOperations({ paths: { '/v1/x': { get: { operationId: 'x', 'x-cpis-function': 'outbox-relay' } } } });
    expect(() => routesFromOpenApi({ 'plan-upload': s.stack.functions['plan-upload'].alias }, other)).toThrow(
      'not an HTTP function',
    );
  });
});
