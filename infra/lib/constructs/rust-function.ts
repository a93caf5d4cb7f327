import * as path from 'path';
import { DockerImage, DockerRunOptions, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { RustFunction } from 'cargo-lambda-cdk';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

/** The alias every trigger invokes. */
export const LIVE_ALIAS = 'live';

/** Where the placeholder `bootstrap` lives (tests and cfn-lint only). */
export const PLACEHOLDER_CODE_DIR = path.join(__dirname, '..', '..', 'assets', 'placeholder');

/**
 * Stands in for cargo-lambda-cdk's Docker fallback. Without cargo-lambda on
 * PATH the library would quietly build in an unpinned `latest` image; a
 * deployment of this service must come from a toolchain the operator chose,
 * so the fallback fails with what to install instead.
 */
export class NoDockerBundling extends DockerImage {
  constructor() {
    super('cpis/no-docker-bundling');
  }

  public override run(_options?: DockerRunOptions): void {
    throw new Error(
      'cpis builds its functions with a local cargo-lambda only, and `cargo lambda --version` failed: ' +
        'install cargo-lambda with Zig (`pip3 install cargo-lambda`) and put it on PATH. ' +
        'Docker bundling is disabled on purpose (see infra/lib/constructs/rust-function.ts).',
    );
  }
}

/**
 * Functions built with a Cargo profile of their own instead of `release`: the portal serves
 * people's pages at human pace and mesh-poll reads councils' files every 5 minutes; neither is
 * the check path, and both are built for size to stay well within the 8 MB budget (the
 * workspace Cargo.toml's `[profile.size]`, which keeps the LA Upload file's XML reader at
 * release's speed; BENCHMARKS.md, 5).
 */
export const CARGO_PROFILES: Readonly<Record<string, string>> = { 'mesh-poll': 'size', portal: 'size' };

/**
 * The flags added to `cargo lambda build`: the workspace's default-members hide functions/*, so
 * name the package; and the function's own profile, if it has one (cargo-lambda-cdk then adds no
 * `--release`).
 */
export function cargoLambdaFlags(crateName: string): string[] {
  const profile = CARGO_PROFILES[crateName];
  return ['--package', crateName, ...(profile ? ['--profile', profile] : [])];
}

export interface CpisFunctionProps {
  /** Crate name under `functions/`; it is also the binary name. */
  readonly crateName: string;
  readonly description: string;
  readonly timeout: Duration;
  readonly memorySize?: number;
  /** Reserved concurrency: 1 for a function whose invocations must never overlap (mesh-poll). */
  readonly reservedConcurrentExecutions?: number;
  /** Exactly the variables `crates/aws/src/config.rs` reads (plus RUST_LOG). */
  readonly environment: Record<string, string>;
  /** The Cargo workspace manifest (`<repo>/Cargo.toml`). */
  readonly manifestPath: string;
  /** `arm64` (Graviton) for deployments; `x86_64` where a build host cannot cross-compile. */
  readonly architecture: lambda.Architecture;
  /**
   * Use `lambda.Code.fromAsset` of a placeholder directory instead of building
   * with cargo-lambda. Tests and `npm run lint:cfn` set it so that synthesis
   * needs neither cargo-lambda nor Zig; deployments never do.
   */
  readonly placeholderCode: boolean;
  readonly logsKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** Errors and throttles alarm to this topic. */
  readonly alarmTopic: sns.ITopic;
}

/**
 * One Rust Lambda function (`provided.al2023`, arm64 unless asked): its own
 * KMS-encrypted log group with retention, JSON logs at the level RUST_LOG sets, X-Ray
 * active tracing, a role that starts empty (every permission is an explicit
 * statement added by the stack), and alarms on errors, throttles and
 * error-level log lines (failures a handler survives, such as a delivery whose
 * audit event could not be written, do not count as invocation errors).
 */
export class CpisFunction extends Construct {
  public readonly function: lambda.Function;
  /**
   * `live`: what the API, the queue and the schedule invoke. Each deploy that changes the
   * code or configuration publishes a version and moves `live` to it; older versions are
   * kept, so a rollback is `aws lambda update-alias --name live --function-version <n>`.
   */
  public readonly alias: lambda.Alias;
  public readonly role: iam.Role;
  public readonly policy: iam.ManagedPolicy;
  public readonly logGroup: logs.LogGroup;
  public readonly errorsAlarm: cloudwatch.Alarm;
  public readonly throttlesAlarm: cloudwatch.Alarm;
  public readonly errorLogsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: CpisFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      encryptionKey: props.logsKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // No AWS managed policy and no inline policy: every permission, logging
    // included, is an explicit statement in this function's own customer
    // managed policy (see `allow`).
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `cpis ${props.crateName}`,
    });
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description: `cpis ${props.crateName}: explicit permissions`,
      roles: [this.role],
    });
    this.allow(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn, `${this.logGroup.logGroupArn}:log-stream:*`],
      }),
    );
    this.allow(
      new iam.PolicyStatement({
        sid: 'XRay',
        actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
        resources: ['*'],
      }),
    );

    const common = {
      description: props.description,
      architecture: props.architecture,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      // Lambda would add X-Ray's statement to an inline policy; it is in `policy` instead.
      role: this.role.withoutPolicyUpdates(),
      environment: props.environment,
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      // RUST_LOG alone chooses what is written (crates/telemetry/src/lib.rs, which also keeps
      // the H6 record at every level). Lambda's own filter would drop that INFO record at
      // WARN, so it lets everything through.
      applicationLogLevelV2: lambda.ApplicationLogLevel.TRACE,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      // Old versions stay after a deploy: they are the rollback targets.
      currentVersionOptions: { removalPolicy: RemovalPolicy.RETAIN },
    };

    this.function = props.placeholderCode
      ? new lambda.Function(this, 'Function', {
          ...common,
          runtime: lambda.Runtime.PROVIDED_AL2023,
          handler: 'bootstrap',
          code: lambda.Code.fromAsset(PLACEHOLDER_CODE_DIR),
        })
      : new RustFunction(this, 'Function', {
          ...common,
          runtime: 'provided.al2023',
          manifestPath: props.manifestPath,
          binaryName: props.crateName,
          bundling: {
            architecture: props.architecture,
            // Built at the workspace root (shared target/ and Cargo.lock), by package.
            cargoLambdaFlags: cargoLambdaFlags(props.crateName),
            forcedDockerBundling: false,
            dockerImage: new NoDockerBundling(),
          },
        });

    // Lambda makes the function depend on its role, which the GetAtt of the
    // role already does (cfn-lint W3005). What the function must wait for is
    // its policy: a cold start before it exists would fail to read its data.
    const cfnFunction = this.function.node.defaultChild as lambda.CfnFunction;
    cfnFunction.addOverride('DependsOn', [(this.policy.node.defaultChild as iam.CfnManagedPolicy).logicalId]);

    this.alias = new lambda.Alias(this, 'Live', {
      aliasName: LIVE_ALIAS,
      version: this.function.currentVersion,
    });

    const action = new cwActions.SnsAction(props.alarmTopic);
    this.errorsAlarm = new cloudwatch.Alarm(this, 'ErrorsAlarm', {
      alarmDescription: `${props.crateName}: invocation errors`,
      metric: this.function.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.throttlesAlarm = new cloudwatch.Alarm(this, 'ThrottlesAlarm', {
      alarmDescription: `${props.crateName}: throttled invocations`,
      metric: this.function.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // tracing's JSON lines carry `"level":"ERROR"`; Lambda's JSON log format keeps them as they are.
    const errorLogs = this.logGroup.addMetricFilter('ErrorLogs', {
      filterPattern: logs.FilterPattern.stringValue('$.level', '=', 'ERROR'),
      metricNamespace: 'cpis',
      metricName: `${props.crateName}-error-logs`,
      metricValue: '1',
    });
    this.errorLogsAlarm = new cloudwatch.Alarm(this, 'ErrorLogsAlarm', {
      alarmDescription: `${props.crateName}: error-level log lines`,
      metric: errorLogs.metric({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of [this.errorsAlarm, this.throttlesAlarm, this.errorLogsAlarm]) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }

    NagSuppressions.addResourceSuppressions(
      this.policy,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource "*"), and log streams are named by Lambda at run time (":log-stream:*" of this function\'s own log group).',
          appliesTo: [
            'Resource::*',
            { regex: '/^Resource::<.*Logs[0-9A-F]+\\.Arn>:log-stream:\\*$/g' },
          ],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.function, [
      {
        id: 'HIPAA.Security-LambdaInsideVPC',
        reason:
          'The functions reach only AWS regional endpoints (DynamoDB, SQS, SNS, Secrets Manager) over TLS with IAM; there is nothing in a VPC to reach, and a VPC would add NAT gateways or interface endpoints without reducing exposure.',
      },
      {
        id: 'HIPAA.Security-LambdaConcurrency',
        reason:
          'Load is bounded upstream instead: HTTP API stage throttling for the API functions, the SQS event source maximum concurrency for the dispatcher, one schedule a minute for the relay. Reserved concurrency would fail deployment in new accounts (default account concurrency of 10). mesh-poll, deployed only with MESH, reserves 1 so that two polls never overlap.',
      },
      {
        id: 'HIPAA.Security-LambdaDLQ',
        reason:
          'No function is invoked asynchronously with an event worth keeping: API functions are synchronous, the dispatcher is fed by an SQS event source mapping (the queue has its own DLQ), and the scheduled events of the relay and mesh-poll carry nothing (a missed run is repeated at the next, and the work is held in DynamoDB or in the MESH inbox).',
      },
    ]);
  }

  /** Adds an explicit statement to this function's policy. */
  public allow(statement: iam.PolicyStatement): void {
    this.policy.addStatements(statement);
  }
}
