import * as lambda from 'aws-cdk-lib/aws-lambda';

/** `-c cpis:architecture=…`: arm64 (Graviton) unless a build host can only produce x86_64. */
export function architectureFrom(value: unknown): lambda.Architecture {
  if (value === undefined || value === 'arm64') return lambda.Architecture.ARM_64;
  if (value === 'x86_64') return lambda.Architecture.X86_64;
  throw new Error(`cpis:architecture must be arm64 (the default) or x86_64, not ${JSON.stringify(value)}`);
}

/**
 * Regions a deployment may use without an explicit override. London is the one AWS region in
 * the UK; children's safeguarding data stays there unless the deploying organisation's data
 * protection impact assessment says otherwise, and then the override names that region.
 */
export const ALLOWED_REGIONS: readonly string[] = ['eu-west-2'];

/** The region when `-c cpis:region` is absent. Never the AWS profile's, which defaults to us-east-1. */
export const DEFAULT_REGION = 'eu-west-2';

/** `-c cpis:region=…`, else the default. */
export function regionFrom(value: unknown): string {
  if (value === undefined) return DEFAULT_REGION;
  if (typeof value !== 'string' || !/^[a-z]{2}(-[a-z]+)+-[0-9]$/.test(value)) {
    throw new Error(`cpis:region must be an AWS region name such as ${DEFAULT_REGION}, not ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Throws unless `region` is a concrete region on the allow-list, or the one region that
 * `-c cpis:allowRegion=<region>` names (repeating the name makes the override deliberate).
 * An environment-agnostic stack (region unknown at synthesis) is refused: it would deploy
 * wherever the caller's profile points.
 */
export function assertRegionAllowed(region: string | undefined, allowRegion: unknown): void {
  if (region === undefined || region.startsWith('${Token[')) {
    throw new Error(`the cpis stack needs a concrete region (default ${DEFAULT_REGION}); give it env.region`);
  }
  if (ALLOWED_REGIONS.includes(region) || allowRegion === region) return;
  throw new Error(
    `refusing region ${region}: cpis deploys to ${ALLOWED_REGIONS.join(', ')} unless ` +
      `-c cpis:allowRegion=${region} records a decision (a DPIA) to hold the data there`,
  );
}
