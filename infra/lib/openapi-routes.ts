import { readFileSync } from 'fs';
import * as path from 'path';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { ApiRoute } from './constructs/http-api';

/**
 * The OpenAPI description the Rust routers are tested against: it says, once, which function
 * serves each operation (`x-cpis-function`) and which operations need a bearer token.
 */
export const OPENAPI_PATH = path.join(__dirname, '..', '..', 'crates', 'http', 'openapi.json');

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'] as const;

interface Operation {
  readonly operationId?: string;
  readonly security?: Record<string, string[]>[];
  readonly 'x-cpis-function'?: string;
}

interface OpenApi {
  readonly security?: Record<string, string[]>[];
  readonly paths: Record<string, Record<string, Operation>>;
}

export interface DocumentedOperation {
  readonly method: string;
  readonly path: string;
  readonly operationId: string;
  /** The crate (`functions/<name>`) that serves it. */
  readonly function: string;
  /** True when the description asks for no bearer token (`security: []`). */
  readonly public: boolean;
}

export function documentedOperations(spec: OpenApi = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'))): DocumentedOperation[] {
  const out: DocumentedOperation[] = [];
  for (const [p, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!(METHODS as readonly string[]).includes(method)) continue;
      const where = `${method.toUpperCase()} ${p}`;
      const fn = op['x-cpis-function'];
      if (typeof fn !== 'string') throw new Error(`${OPENAPI_PATH}: ${where} names no x-cpis-function`);
      const security = op.security ?? spec.security ?? [];
      out.push({
        method: method.toUpperCase(),
        path: p,
        operationId: op.operationId ?? where,
        function: fn,
        public: !security.some((requirement) => 'bearerAuth' in requirement),
      });
    }
  }
  return out;
}

/** One API Gateway route per documented operation, to the `live` alias of the function it names. */
export function routesFromOpenApi(handlers: Record<string, lambda.IFunction>, operations = documentedOperations()): ApiRoute[] {
  return operations.map((op) => {
    const handler = handlers[op.function];
    if (!handler) {
      throw new Error(`${op.method} ${op.path}: x-cpis-function ${op.function} is not an HTTP function of the stack`);
    }
    return {
      method: op.method as apigwv2.HttpMethod,
      path: op.path,
      handler,
      public: op.public,
    };
  });
}
