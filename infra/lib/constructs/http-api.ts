import { RemovalPolicy } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

/**
 * The access-log line. It names the route (`GET /FHIR/R4/CareTeam`), never
 * the path or the query string (which carry NHS numbers on the FHIR routes),
 * and never a body.
 */
export const ACCESS_LOG_FORMAT: Record<string, string> = {
  requestId: '$context.requestId',
  requestTime: '$context.requestTime',
  routeKey: '$context.routeKey',
  status: '$context.status',
  sourceIp: '$context.identity.sourceIp',
  responseLatency: '$context.responseLatency',
  integrationLatency: '$context.integrationLatency',
  integrationError: '$context.integrationErrorMessage',
  authorizerError: '$context.authorizer.error',
};

export interface ApiRoute {
  readonly method: apigwv2.HttpMethod;
  readonly path: string;
  /** The function's `live` alias (a rollback moves the alias, not the route). */
  readonly handler: lambda.IFunction;
  /** Only `GET /health`: no authorizer. */
  readonly public?: boolean;
}

export interface CustomDomain {
  readonly domainName: string;
  readonly certificateArn: string;
}

export interface CpisHttpApiProps {
  readonly jwtIssuer: string;
  readonly jwtAudiences: string[];
  readonly routes: ApiRoute[];
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  readonly logsKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** When set, the default execute-api endpoint is disabled. */
  readonly customDomain?: CustomDomain;
}

/**
 * HTTP API (payload v2, `$default` stage): a JWT authorizer on every route
 * but `GET /health`, stage throttling, and access logs without bodies or
 * query strings in a KMS-encrypted log group.
 */
export class CpisHttpApi extends Construct {
  public readonly api: apigwv2.HttpApi;
  public readonly stage: apigwv2.HttpStage;
  public readonly accessLogs: logs.LogGroup;
  public readonly domainName?: apigwv2.DomainName;

  constructor(scope: Construct, id: string, props: CpisHttpApiProps) {
    super(scope, id);

    const authorizer = new HttpJwtAuthorizer('JwtAuthorizer', props.jwtIssuer, {
      jwtAudience: props.jwtAudiences,
      identitySource: ['$request.header.Authorization'],
    });

    this.api = new apigwv2.HttpApi(this, 'Api', {
      apiName: 'cpis',
      description: 'cpis: Child Protection - Information Sharing',
      createDefaultStage: false,
      defaultAuthorizer: authorizer,
      disableExecuteApiEndpoint: props.customDomain !== undefined,
    });

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      encryptionKey: props.logsKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    if (props.customDomain) {
      this.domainName = new apigwv2.DomainName(this, 'DomainName', {
        domainName: props.customDomain.domainName,
        certificate: acm.Certificate.fromCertificateArn(
          this,
          'Certificate',
          props.customDomain.certificateArn,
        ),
        securityPolicy: apigwv2.SecurityPolicy.TLS_1_2,
      });
    }

    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: apigw.AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FORMAT)),
      },
      domainMapping: this.domainName ? { domainName: this.domainName } : undefined,
    });

    const integrations = new Map<lambda.IFunction, HttpLambdaIntegration>();
    const integrationFor = (handler: lambda.IFunction) => {
      let integration = integrations.get(handler);
      if (!integration) {
        // Named after the function construct: handlers are aliases, all called `live`.
        const name = `${handler.node.scope?.node.id ?? ''}${handler.node.id}`;
        integration = new HttpLambdaIntegration(`${name}Integration`, handler, {
          payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
        });
        integrations.set(handler, integration);
      }
      return integration;
    };

    for (const route of props.routes) {
      const created = this.api.addRoutes({
        path: route.path,
        methods: [route.method],
        integration: integrationFor(route.handler),
        authorizer: route.public ? new apigwv2.HttpNoneAuthorizer() : undefined,
      });
      if (route.public) {
        for (const r of created) {
          NagSuppressions.addResourceSuppressions(r, [
            {
              id: 'AwsSolutions-APIG4',
              reason:
                'GET /health is the one unauthenticated route: a liveness probe that reads nothing and returns no data.',
            },
          ]);
        }
      }
    }
  }

  /** The base URL callers use. */
  public get url(): string {
    return this.domainName
      ? `https://${this.domainName.name}/`
      : (this.stage.url as string);
  }
}
