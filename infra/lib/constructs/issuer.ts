import { readFileSync } from 'fs';
import * as path from 'path';
import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

/** The claims contract, written once (docs/claims.json; docs/claims.md says it in prose). */
export interface ClaimsContract {
  readonly roles: string[];
  readonly claims: Record<
    string,
    {
      readonly required_for: string[];
      /** Roles that may carry the claim without needing it. */
      readonly optional_for?: string[];
      /** A claim given only together with this one. */
      readonly together_with?: string;
      readonly values?: string[];
      readonly pattern?: string;
      readonly max_length?: number;
    }
  >;
  readonly issuer: { readonly sample: string };
  readonly examples: Record<string, Record<string, string>>;
}

export const CLAIMS_CONTRACT_PATH = path.join(__dirname, '..', '..', '..', 'docs', 'claims.json');

export function claimsContract(): ClaimsContract {
  return JSON.parse(readFileSync(CLAIMS_CONTRACT_PATH, 'utf8')) as ClaimsContract;
}

/** One app client: a council's or a care setting's system, and the claims its tokens carry. */
export interface IssuerClient {
  /** The app client's name (letters, digits, `-`), unique in the pool, e.g. `council-E09000033`. */
  readonly name: string;
  /** Every claim of docs/claims.json but `sub`, which Cognito sets to the client id. */
  readonly claims: Record<string, string>;
}

export interface IssuerConfig {
  /** The Cognito domain prefix of the token endpoint: `https://<prefix>.auth.<region>.amazoncognito.com/oauth2/token`. */
  readonly domainPrefix: string;
  readonly clients: IssuerClient[];
}

/** The resource server and its one scope: tokens for this API ask for `cpis/api`. */
export const RESOURCE_SERVER = { identifier: 'cpis', scope: 'api' } as const;

/** Access tokens live an hour (Cognito's default); a client fetches a new one with its secret. */
export const ACCESS_TOKEN_VALIDITY = Duration.hours(1);

/**
 * Checks a client list against the contract: what the trigger would put into a token must be
 * exactly what `CallerClaims::principal` accepts. Throws with the client's name otherwise.
 */
export function validateIssuerConfig(config: IssuerConfig, contract: ClaimsContract = claimsContract()): void {
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(config.domainPrefix) || /aws|amazon|cognito/.test(config.domainPrefix)) {
    throw new Error(
      `cpis:issuerDomainPrefix must be lower-case letters, digits and hyphens without aws, amazon or cognito, not ${JSON.stringify(config.domainPrefix)}`,
    );
  }
  if (config.clients.length === 0) throw new Error('cpis:issuerClients lists no app client');
  const names = new Set<string>();
  for (const client of config.clients) {
    const where = `cpis:issuerClients: ${JSON.stringify(client.name)}`;
    if (typeof client.name !== 'string' || !/^[A-Za-z0-9-]{1,100}$/.test(client.name)) {
      throw new Error(`${where}: a name is letters, digits and hyphens`);
    }
    if (names.has(client.name)) throw new Error(`${where}: named twice`);
    names.add(client.name);
    const claims = client.claims ?? {};
    if ('sub' in claims) throw new Error(`${where}: sub is the client id, set by Cognito`);
    const role = claims.role;
    if (!contract.roles.includes(role)) throw new Error(`${where}: role must be one of ${contract.roles.join(', ')}`);
    for (const [name, spec] of Object.entries(contract.claims)) {
      if (name === 'sub') continue;
      const value = claims[name];
      const required = spec.required_for.includes(role);
      const optional = spec.optional_for?.includes(role) ?? false;
      if (value === undefined) {
        if (required) throw new Error(`${where}: a ${role} needs ${name}`);
        continue;
      }
      if (!required && !optional) throw new Error(`${where}: a ${role} carries no ${name}`);
      if (spec.together_with && claims[spec.together_with] === undefined) {
        throw new Error(`${where}: ${name} is given with ${spec.together_with}`);
      }
      if (typeof value !== 'string') throw new Error(`${where}: ${name} is a string`);
      if (spec.values && !spec.values.includes(value)) throw new Error(`${where}: ${name} must be one of ${spec.values.join(', ')}`);
      if (spec.pattern && !new RegExp(spec.pattern).test(value)) throw new Error(`${where}: ${name} must match ${spec.pattern}`);
      if (spec.max_length !== undefined && (value.trim().length === 0 || value.length > spec.max_length)) {
        throw new Error(`${where}: ${name} is 1 to ${spec.max_length} characters`);
      }
    }
    for (const name of Object.keys(claims)) {
      if (!(name in contract.claims)) throw new Error(`${where}: ${name} is not a cpis claim (docs/claims.json)`);
    }
  }
}

/** `-c cpis:issuer=cognito -c cpis:issuerDomainPrefix=… -c cpis:issuerClients=<file.json or JSON>`. */
export function issuerFromContext(
  issuer: unknown,
  domainPrefix: unknown,
  clients: unknown,
  readFile: (p: string) => string = (p) => readFileSync(p, 'utf8'),
): IssuerConfig | undefined {
  if (issuer === undefined || issuer === 'none') {
    if (domainPrefix !== undefined || clients !== undefined) {
      throw new Error('cpis:issuerDomainPrefix and cpis:issuerClients need -c cpis:issuer=cognito');
    }
    return undefined;
  }
  if (issuer !== 'cognito') throw new Error(`cpis:issuer must be cognito or none, not ${JSON.stringify(issuer)}`);
  if (typeof domainPrefix !== 'string') throw new Error('cpis:issuer=cognito needs -c cpis:issuerDomainPrefix=<prefix>');
  let list: unknown = clients;
  if (typeof clients === 'string') {
    list = JSON.parse(clients.trim().startsWith('[') ? clients : readFile(clients));
  }
  if (!Array.isArray(list)) throw new Error('cpis:issuer=cognito needs -c cpis:issuerClients=<a JSON file of app clients>');
  const config = { domainPrefix, clients: list as IssuerClient[] };
  validateIssuerConfig(config);
  return config;
}

export interface CognitoIssuerProps extends IssuerConfig {
  readonly logsKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
}

/**
 * An issuer the stack can trust for its first councils and care settings: a Cognito user pool
 * with no users, one app client per council or care-setting system (client credentials, a
 * secret each), and a pre token generation trigger (event V3_0, the one version that reaches
 * client-credentials access tokens; it needs the Essentials feature plan) that adds the client's
 * cpis claims. Cognito sets `sub` to the client id and, in access tokens, writes `client_id`
 * rather than `aud`: API Gateway then checks `client_id` against the authorizer's audiences,
 * which are the app clients' ids.
 */
export class CognitoIssuer extends Construct {
  public readonly userPool: cognito.UserPool;
  public readonly clients: Record<string, cognito.UserPoolClient> = {};
  public readonly claimParameters: Record<string, ssm.StringParameter> = {};
  public readonly trigger: lambda.Function;
  public readonly domain: cognito.UserPoolDomain;
  /** `https://cognito-idp.<region>.amazonaws.com/<user pool id>`: the JWT authorizer's issuer. */
  public readonly issuerUrl: string;
  public readonly tokenUrl: string;

  constructor(scope: Construct, id: string, props: CognitoIssuerProps) {
    super(scope, id);
    validateIssuerConfig(props);
    const stack = Stack.of(this);
    const parameterPrefix = `/cpis/${stack.stackName}/issuer-clients/`;

    const logGroup = new logs.LogGroup(this, 'TriggerLogs', {
      retention: props.logRetention,
      encryptionKey: props.logsKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(this, 'TriggerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'cpis issuer: the pre token generation trigger',
    });
    const policy = new iam.ManagedPolicy(this, 'TriggerPolicy', {
      description: 'cpis issuer trigger: its logs, and the app clients\' claims',
      roles: [role],
      statements: [
        new iam.PolicyStatement({
          sid: 'WriteOwnLogs',
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [logGroup.logGroupArn, `${logGroup.logGroupArn}:log-stream:*`],
        }),
        // By name, not by reference: the parameters name the clients, which need the pool,
        // which needs this function.
        new iam.PolicyStatement({
          sid: 'ReadClientClaims',
          actions: ['ssm:GetParameter'],
          resources: [`arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:parameter${parameterPrefix}*`],
        }),
      ],
    });
    this.trigger = new lambda.Function(this, 'PreTokenGeneration', {
      description: 'cpis issuer: adds an app client\'s cpis claims to its access token (no child data)',
      // The runtime ships the AWS SDK v3 (@aws-sdk/client-ssm): the inline code needs no bundle.
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromInline(readFileSync(path.join(__dirname, '..', 'issuer', 'pre-token-generation.js'), 'utf8')),
      role: role.withoutPolicyUpdates(),
      timeout: Duration.seconds(5),
      memorySize: 256,
      environment: { CLAIMS_PARAMETER_PREFIX: parameterPrefix },
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
    });
    (this.trigger.node.defaultChild as lambda.CfnFunction).addOverride('DependsOn', [
      (policy.node.defaultChild as iam.CfnManagedPolicy).logicalId,
    ]);

    this.userPool = new cognito.UserPool(this, 'UserPool', {
      userPoolName: `${stack.stackName}-issuer`,
      // V3_0 trigger events (client-credentials token customisation) need Essentials or Plus.
      featurePlan: cognito.FeaturePlan.ESSENTIALS,
      selfSignUpEnabled: false,
      signInAliases: { username: true },
      // No users are ever created; these settings only close what a user could do.
      passwordPolicy: {
        minLength: 14,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(1),
      },
      mfa: cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.NONE,
      // Credentials, not data: it goes with the stack (deletion protection would make
      // `cdk destroy` fail), and a re-deploy issues new client ids and secrets (README).
      deletionProtection: false,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.userPool.addTrigger(
      cognito.UserPoolOperation.PRE_TOKEN_GENERATION_CONFIG,
      this.trigger,
      cognito.LambdaVersion.V3_0,
    );
    NagSuppressions.addResourceSuppressions(this.userPool, [
      {
        id: 'AwsSolutions-COG3',
        reason:
          'Threat protection (advanced security) watches user sign-ins and needs the Plus plan; this pool has no users, only app clients with secrets (client credentials).',
      },
      {
        id: 'AwsSolutions-COG8',
        reason:
          'Plus adds protections for user sign-in (compromised passwords, risky sign-ins); this pool has no users. Essentials is what client-credentials token customisation (trigger event V3_0) needs.',
      },
    ]);

    const apiScope = new cognito.ResourceServerScope({ scopeName: RESOURCE_SERVER.scope, scopeDescription: 'Call the cpis API' });
    const resourceServer = this.userPool.addResourceServer('ResourceServer', {
      identifier: RESOURCE_SERVER.identifier,
      userPoolResourceServerName: 'cpis API',
      scopes: [apiScope],
    });
    const oauthScope = cognito.OAuthScope.resourceServer(resourceServer, apiScope);
    this.domain = this.userPool.addDomain('Domain', { cognitoDomain: { domainPrefix: props.domainPrefix } });

    for (const client of props.clients) {
      const appClient = this.userPool.addClient(`Client${client.name.replace(/[^A-Za-z0-9]/g, '')}`, {
        userPoolClientName: client.name,
        generateSecret: true,
        // Client credentials only: no user can sign in through it.
        authFlows: {},
        oAuth: { flows: { clientCredentials: true }, scopes: [oauthScope] },
        accessTokenValidity: ACCESS_TOKEN_VALIDITY,
        enableTokenRevocation: true,
        preventUserExistenceErrors: true,
      });
      this.clients[client.name] = appClient;
      this.claimParameters[client.name] = new ssm.StringParameter(this, `Claims${client.name.replace(/[^A-Za-z0-9]/g, '')}`, {
        parameterName: `${parameterPrefix}${appClient.userPoolClientId}`,
        simpleName: false,
        description: `cpis claims of the app client ${client.name}`,
        stringValue: JSON.stringify(client.claims),
      });
    }

    this.issuerUrl = this.userPool.userPoolProviderUrl;
    this.tokenUrl = `${this.domain.baseUrl()}/oauth2/token`;

    NagSuppressions.addResourceSuppressions(
      policy,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Log streams are named by Lambda at run time (":log-stream:*" of the trigger\'s own log group); the claims parameters are named by client id, which Cognito assigns (".../issuer-clients/*" of this stack only).',
          appliesTo: [
            { regex: '/^Resource::<.*TriggerLogs[0-9A-F]+\\.Arn>:log-stream:\\*$/g' },
            { regex: '/^Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter\\/cpis\\/.*\\/issuer-clients\\/\\*$/g' },
          ],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.trigger, [
      {
        id: 'HIPAA.Security-LambdaInsideVPC',
        reason: 'The trigger reads SSM Parameter Store over TLS with IAM and touches no child data; there is nothing in a VPC to reach.',
      },
      {
        id: 'HIPAA.Security-LambdaConcurrency',
        reason: 'Cognito calls it once per token request, a few an hour per client; reserved concurrency would fail deployment in new accounts (10).',
      },
      {
        id: 'HIPAA.Security-LambdaDLQ',
        reason: 'Cognito invokes it synchronously: a failure refuses the token, and the client asks again.',
      },
    ]);
  }
}
