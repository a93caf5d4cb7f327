import { CfnCondition, CfnParameter, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { CpisHttpApi } from '../constructs/http-api';
import { CpisFunction } from '../constructs/rust-function';
import { ServiceTables } from '../constructs/service-tables';
import { StackParameters } from './parameters';

// A builder, not a construct, like the others (lib/stack/): the logical IDs stay the stack's.

/**
 * The portal's routes on the HTTP API: `GET /portal` and every `GET` and `POST` under it, all
 * outside the JWT authorizer. The portal admits each page's callers by its own session (made by
 * an OpenID Connect sign-in), fails closed on any other path or method, and is the one place its
 * routes are listed (crates/http/src/routes.rs, PORTAL_ROUTES): here they are a prefix only.
 */
export const PORTAL_ROUTES: [apigwv2.HttpMethod, string][] = [
  [apigwv2.HttpMethod.GET, '/portal'],
  [apigwv2.HttpMethod.GET, '/portal/{proxy+}'],
  [apigwv2.HttpMethod.POST, '/portal/{proxy+}'],
];

export interface PortalProps {
  readonly params: StackParameters;
  readonly api: CpisHttpApi;
  readonly portal: CpisFunction;
  readonly dispatcher: CpisFunction;
  readonly dataKey: kms.IKey;
  readonly tables: ServiceTables;
}

/** The portal's items: every partition key it deletes under (crates/aws/src/dynamo/portal.rs). */
export const PORTAL_LEADING_KEYS = ['PORTAL#*'];

/** The portal's sign-in settings, its client secret, its routes, and where ASNs link to. */
export function portalSignIn(stack: Stack, p: PortalProps) {
  const { api, portal, dispatcher, dataKey, tables } = p;
  // Sign-out and a sign-in attempt taken delete an item: the portal's own, never the service's
  // data (whose retention is TTL's and the relay's purge).
  portal.allow(
    new iam.PolicyStatement({
      sid: 'PortalItemsDelete',
      actions: ['dynamodb:DeleteItem'],
      resources: [tables.table.tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': PORTAL_LEADING_KEYS } },
    }),
  );
  const issuer = new CfnParameter(stack, 'PortalOidcIssuer', {
    type: 'String',
    allowedPattern: '^https://.+$',
    description:
      'CPIS_OIDC_ISSUER: the OpenID Connect issuer people sign in to the portal with (NHS CIS2 for clinicians, a council\'s own identity provider), exactly as its discovery document gives it.',
  });
  const clientId = new CfnParameter(stack, 'PortalOidcClientId', {
    type: 'String',
    minLength: 1,
    description:
      'CPIS_OIDC_CLIENT_ID: the portal\'s client id at the issuer. Register <ApiUrl>portal/sign-in/callback as its redirect URI; put the client secret in the PortalOidcClientSecret secret.',
  });
  const scopes = new CfnParameter(stack, 'PortalOidcScopes', {
    type: 'String',
    default: '',
    description: 'CPIS_OIDC_SCOPES: scopes besides openid, space-separated (CIS2: profile nationalrbacaccess selectedrole).',
  });
  const userinfo = new CfnParameter(stack, 'PortalOidcUserinfo', {
    type: 'String',
    default: 'false',
    allowedValues: ['true', 'false'],
    description: 'CPIS_OIDC_USERINFO: also read the issuer\'s UserInfo endpoint (CIS2 gives roles only there).',
  });
  const claims = new CfnParameter(stack, 'PortalOidcClaims', {
    type: 'String',
    default: '',
    description:
      'CPIS_OIDC_CLAIMS: how the issuer\'s claims map to the claims contract, FIELD=SOURCE comma-separated (README, "Production sign-in"). Default: each from the claim of its own name.',
  });
  const label = new CfnParameter(stack, 'PortalOidcLabel', {
    type: 'String',
    default: 'Sign in with your organisation\'s account',
    description: 'CPIS_OIDC_LABEL: the sign-in button\'s text.',
  });

  // The operator puts the issuer's client secret here after the first deploy
  // (`aws secretsmanager put-secret-value`); until then the issuer refuses the portal's token
  // requests and nobody can sign in. Read once per cold start.
  const clientSecret = new secretsmanager.Secret(stack, 'PortalOidcClientSecret', {
    description: 'cpis: the portal\'s OpenID Connect client secret at its issuer (CPIS_OIDC_CLIENT_SECRET_ARN).',
    encryptionKey: dataKey,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  NagSuppressions.addResourceSuppressions(clientSecret, [
    {
      id: 'AwsSolutions-SMG4',
      reason:
        'The issuer issues this secret: it is rotated there (a new client secret put here with put-secret-value), not by a Secrets Manager rotation function, which cannot change it at the issuer.',
    },
    {
      id: 'HIPAA.Security-SecretsManagerRotationEnabled',
      reason: 'See AwsSolutions-SMG4: the client secret is rotated at its issuer.',
    },
  ]);
  // The key's Decrypt via Secrets Manager the portal already has, as a pseudonym reader.
  portal.allow(
    new iam.PolicyStatement({
      sid: 'OidcClientSecret',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [clientSecret.secretArn],
    }),
  );

  const environment: Record<string, string> = {
    CPIS_OIDC_ISSUER: issuer.valueAsString,
    CPIS_OIDC_CLIENT_ID: clientId.valueAsString,
    CPIS_OIDC_CLIENT_SECRET_ARN: clientSecret.secretArn,
    // The issuer sends browsers back to <ApiUrl>portal/sign-in/callback.
    CPIS_OIDC_REDIRECT_BASE: api.url,
    CPIS_OIDC_SCOPES: scopes.valueAsString,
    CPIS_OIDC_USERINFO: userinfo.valueAsString,
    CPIS_OIDC_CLAIMS: claims.valueAsString,
    CPIS_OIDC_LABEL: label.valueAsString,
  };
  for (const [name, value] of Object.entries(environment)) {
    portal.function.addEnvironment(name, value);
  }

  const integration = new HttpLambdaIntegration('PortalliveIntegration', portal.alias, {
    payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
  });
  for (const [method, path] of PORTAL_ROUTES) {
    const routes = api.api.addRoutes({
      path,
      methods: [method],
      integration,
      authorizer: new apigwv2.HttpNoneAuthorizer(),
    });
    for (const route of routes) {
      NagSuppressions.addResourceSuppressions(route, [
        {
          id: 'AwsSolutions-APIG4',
          reason:
            'The portal\'s pages are for browsers, which carry no bearer token: each page admits its callers by the portal\'s own session (HttpOnly, SameSite=Strict, Secure cookie; made by an OpenID Connect sign-in), with the same tenancy and audit as the API route it mirrors, and fails closed.',
        },
      ]);
    }
  }

  // Each SMS and email links to an ASN's page: the deployed portal's, unless ViewUrl says
  // otherwise (a domain of the operator's in front of it).
  const viewUrl = p.params.viewUrl;
  const viewUrlGiven = new CfnCondition(stack, 'ViewUrlGiven', {
    expression: Fn.conditionNot(Fn.conditionEquals(viewUrl.valueAsString, '')),
  });
  dispatcher.function.addEnvironment(
    'CPIS_VIEW_URL',
    Fn.conditionIf(viewUrlGiven.logicalId, viewUrl.valueAsString, `${api.url}portal/notifications`).toString(),
  );

  return { clientSecret };
}
