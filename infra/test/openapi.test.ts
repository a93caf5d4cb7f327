import { readFileSync } from 'fs';
import { join } from 'path';
import { synth, Synthesised } from './helpers';

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
  return Object.values(s.template.findResources('AWS::ApiGatewayV2::Route')).map((r) => ({
    key: r.Properties.RouteKey as string,
    authorization: r.Properties.AuthorizationType as string,
  }));
}

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
