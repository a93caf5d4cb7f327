import { Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { ApiRoute, CpisHttpApi, CustomDomain } from '../constructs/http-api';
import { CognitoIssuer, IssuerConfig } from '../constructs/issuer';
import { CpisFunction } from '../constructs/rust-function';
import { routesFromOpenApi } from '../openapi-routes';
import { StackParameters } from './parameters';

// Builders, not constructs: each creates its resources directly in the stack's scope, so the
// logical IDs (and so the deployed resources, retained tables included) are those the stack had
// before it was split by concern. A Construct per concern would add a path segment to every
// logical ID and make CloudFormation replace them all.

export interface HttpApiProps {
  readonly params: StackParameters;
  readonly issuerConfig?: IssuerConfig;
  readonly customDomain?: CustomDomain;
  readonly logsKey: kms.Key;
  readonly planUpload: CpisFunction;
  readonly attendanceCheck: CpisFunction;
  readonly historyQuery: CpisFunction;
}

/** The HTTP API, its routes from the OpenAPI description, and the optional issuer it trusts. */
export function httpApi(stack: Stack, p: HttpApiProps) {
  const { planUpload, attendanceCheck, historyQuery, logsKey } = p;
  const { jwtIssuer, jwtAudiences, apiRateLimit, apiBurstLimit } = p.params;
  // ---- HTTP API ------------------------------------------------------------------------------
  // Which function serves each route is written once, in the OpenAPI description
  // (x-cpis-function); an operation without one, or naming another function, stops synthesis.
  const routes: ApiRoute[] = routesFromOpenApi({
    'plan-upload': planUpload.alias,
    'attendance-check': attendanceCheck.alias,
    'history-query': historyQuery.alias,
  });
  const issuer = p.issuerConfig
    ? new CognitoIssuer(stack, 'Issuer', {
        ...p.issuerConfig,
        logsKey,
        logRetention: logs.RetentionDays.ONE_YEAR,
      })
    : undefined;
  const api = new CpisHttpApi(stack, 'HttpApi', {
    // Cognito access tokens carry client_id, not aud: API Gateway checks client_id against these.
    jwtIssuer: issuer ? issuer.issuerUrl : jwtIssuer!.valueAsString,
    jwtAudiences: issuer ? Object.values(issuer.clients).map((c) => c.userPoolClientId) : jwtAudiences!.valueAsList,
    routes,
    throttle: { rateLimit: apiRateLimit.valueAsNumber, burstLimit: apiBurstLimit.valueAsNumber },
    logsKey,
    logRetention: logs.RetentionDays.ONE_YEAR,
    customDomain: p.customDomain,
  });

  return { api, issuer };
}
