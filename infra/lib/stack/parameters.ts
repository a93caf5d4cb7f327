import { CfnParameter, Stack } from 'aws-cdk-lib';
import { CHECK_VOLUME } from './constants';

// Builders, not constructs: each creates its resources directly in the stack's scope, so the
// logical IDs (and so the deployed resources, retained tables included) are those the stack had
// before it was split by concern. A Construct per concern would add a path segment to every
// logical ID and make CloudFormation replace them all.

/** Every CloudFormation parameter of the stack (JwtIssuer and JwtAudiences only without an issuer of its own). */
export function stackParameters(stack: Stack, ownIssuer: boolean) {
  // ---- Parameters ---------------------------------------------------------------------------
  // The one issuer the JWT authorizer trusts: the stack's own Cognito user pool, or the one
  // the JwtIssuer parameter names (docs/claims.md: the claims either must carry).
  const jwtIssuer = ownIssuer
    ? undefined
    : new CfnParameter(stack, 'JwtIssuer', {
        type: 'String',
        description:
          'The one token issuer trusted for councils and care settings (e.g. NHS England API Management); the iss claim must equal it.',
        allowedPattern: '^https://.+$',
      });
  const jwtAudiences = ownIssuer
    ? undefined
    : new CfnParameter(stack, 'JwtAudiences', {
        type: 'CommaDelimitedList',
        description: 'Accepted aud claim values, comma-separated.',
      });
  const logLevel = new CfnParameter(stack, 'LogLevel', {
    type: 'String',
    default: 'INFO',
    allowedValues: ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'],
    description:
      'RUST_LOG of every function. The enumeration watch (H6) and error lines are written at every level.',
  });
  const viewUrl = new CfnParameter(stack, 'ViewUrl', {
    type: 'String',
    default: '',
    allowedPattern: '^(https://.+)?$',
    description:
      'Optional CPIS_VIEW_URL: where the ASN pages are; each SMS and email links to <ViewUrl>/<ASN id> (the only link they carry). Default: the deployed portal\'s, <ApiUrl>portal/notifications.',
  });
  const visibilityTailDays = new CfnParameter(stack, 'VisibilityTailDays', {
    type: 'String',
    default: '365',
    allowedPattern: '^[0-9]{1,4}$',
    description: 'CPIS_VISIBILITY_TAIL_DAYS: days a CPP/LAC stays visible after its end date (0-3650).',
  });
  const opsEmail = new CfnParameter(stack, 'OpsEmail', {
    type: 'String',
    default: '',
    description: 'Optional: an email address subscribed to the operations alarm topic.',
  });
  const apiRateLimit = new CfnParameter(stack, 'ApiRateLimit', {
    type: 'Number',
    default: 50,
    minValue: 1,
    description: 'HTTP API stage steady-state rate limit (requests per second).',
  });
  const apiBurstLimit = new CfnParameter(stack, 'ApiBurstLimit', {
    type: 'Number',
    default: 100,
    minValue: 1,
    description: 'HTTP API stage burst limit (requests).',
  });
  const checkVolumeThreshold = new CfnParameter(stack, 'CheckVolumeThreshold', {
    type: 'Number',
    default: CHECK_VOLUME.threshold,
    minValue: 1,
    description: `Checks by one caller within ${CHECK_VOLUME.periodMinutes} minutes above which the possible-enumeration alarm fires (hazard H6).`,
  });

  const smsSpendAlarmUsd = new CfnParameter(stack, 'SmsSpendAlarmUsd', {
    type: 'Number',
    default: 40,
    minValue: 1,
    description:
      'SNS SMS spend this month (USD) at which the operations topic is told; set it below the account\'s SNS MonthlySpendLimit, where SMS stop.',
  });
  const monthlyBudgetUsd = new CfnParameter(stack, 'MonthlyBudgetUsd', {
    type: 'Number',
    default: 100,
    minValue: 1,
    description: 'Monthly cost budget of the account (USD): 80% actual and 100% forecast notify the operations topic.',
  });

  return {
    jwtIssuer,
    jwtAudiences,
    logLevel,
    viewUrl,
    visibilityTailDays,
    opsEmail,
    apiRateLimit,
    apiBurstLimit,
    checkVolumeThreshold,
    smsSpendAlarmUsd,
    monthlyBudgetUsd,
  };
}

export type StackParameters = ReturnType<typeof stackParameters>;
