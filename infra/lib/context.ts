import * as lambda from 'aws-cdk-lib/aws-lambda';

/** `-c cpis:architecture=…`: arm64 (Graviton) unless a build host can only produce x86_64. */
export function architectureFrom(value: unknown): lambda.Architecture {
  if (value === undefined || value === 'arm64') return lambda.Architecture.ARM_64;
  if (value === 'x86_64') return lambda.Architecture.X86_64;
  throw new Error(`cpis:architecture must be arm64 (the default) or x86_64, not ${JSON.stringify(value)}`);
}
