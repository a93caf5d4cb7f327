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

/**
 * Retained data to deploy onto instead of creating it: after `cdk destroy` (the tables, the
 * data key and the pseudonymisation secret are retained) or after a point-in-time restore to
 * new table names (README, "Runbook"). All four, or none.
 */
export interface ExistingData {
  readonly tableName: string;
  readonly auditTableName: string;
  /** The retained `DataKey`: it encrypts both tables (and their restores) and the secret. */
  readonly dataKeyArn: string;
  /** The retained `PseudonymKey` secret's full ARN (with its six-character suffix). */
  readonly pseudonymSecretArn: string;
}

export const EXISTING_DATA_CONTEXT = {
  tableName: 'cpis:existingTableName',
  auditTableName: 'cpis:existingAuditTableName',
  dataKeyArn: 'cpis:existingDataKeyArn',
  pseudonymSecretArn: 'cpis:existingPseudonymSecretArn',
} as const;

/** Reads the four `cpis:existing*` context values (see `ExistingData`). */
export function existingDataFrom(get: (key: string) => unknown): ExistingData | undefined {
  const values = Object.fromEntries(
    Object.entries(EXISTING_DATA_CONTEXT).map(([field, key]) => [field, get(key)]),
  ) as Record<keyof ExistingData, unknown>;
  const given = Object.entries(values).filter(([, v]) => v !== undefined);
  if (given.length === 0) return undefined;
  if (given.length !== 4) {
    throw new Error(
      `deploying onto retained data needs all of ${Object.values(EXISTING_DATA_CONTEXT).join(', ')}, or none`,
    );
  }
  const check = (field: keyof ExistingData, pattern: RegExp, what: string) => {
    const v = values[field];
    if (typeof v !== 'string' || !pattern.test(v)) {
      throw new Error(`${EXISTING_DATA_CONTEXT[field]} must be ${what}, not ${JSON.stringify(v)}`);
    }
    return v;
  };
  const tableName = /^[A-Za-z0-9_.-]{3,255}$/;
  return {
    tableName: check('tableName', tableName, 'a DynamoDB table name'),
    auditTableName: check('auditTableName', tableName, 'a DynamoDB table name'),
    dataKeyArn: check('dataKeyArn', /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]{36}$/, 'a KMS key ARN'),
    pseudonymSecretArn: check(
      'pseudonymSecretArn',
      /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/,
      'the secret\'s complete ARN (ending in its six-character suffix)',
    ),
  };
}

/**
 * MESH on AWS (issue 13): the councils' HL7 v3 files. Off unless both are given; then the stack
 * adds the mesh-poll function and gives the dispatcher the ASN files' leg. The secret is the
 * operator's, created before the deploy and imported here by its complete ARN (README, "MESH on
 * AWS"): MESH credentials are issued by NHS England at onboarding, and a stack-made secret would
 * hold a placeholder that every cold start refused until someone replaced it.
 */
export interface MeshContext {
  /** `cpis:meshSecretArn`: the secret's complete ARN (with its six-character suffix). */
  readonly secretArn: string;
  /** `cpis:meshUrl`: the MESH API's base URL; https, or plain http on the loopback for a sandbox. */
  readonly url: string;
  /** `Mex-WorkflowID`s; defaults as crates/lambda/src/settings/mesh.rs (the real ones are not public). */
  readonly workflows: MeshWorkflows;
}

export interface MeshWorkflows {
  readonly upload: string;
  readonly ack: string;
  readonly asn: string;
}

/** The defaults of `cpis serve --mesh-workflow-*` and of the functions' settings. */
export const DEFAULT_MESH_WORKFLOWS: MeshWorkflows = {
  upload: 'CPIS_LA_UPLOAD',
  ack: 'CPIS_LA_UPLOAD_ACK',
  asn: 'CPIS_ASN',
};

export const MESH_CONTEXT = {
  secretArn: 'cpis:meshSecretArn',
  url: 'cpis:meshUrl',
  upload: 'cpis:meshWorkflowUpload',
  ack: 'cpis:meshWorkflowAck',
  asn: 'cpis:meshWorkflowAsn',
} as const;

/** Reads the `cpis:mesh*` context values (see `MeshContext`); `undefined` when MESH is off. */
export function meshFrom(get: (key: string) => unknown): MeshContext | undefined {
  const secretArn = get(MESH_CONTEXT.secretArn);
  const url = get(MESH_CONTEXT.url);
  const workflowKeys = [MESH_CONTEXT.upload, MESH_CONTEXT.ack, MESH_CONTEXT.asn];
  if (secretArn === undefined && url === undefined) {
    const stray = workflowKeys.filter((k) => get(k) !== undefined);
    if (stray.length > 0) throw new Error(`${stray.join(', ')} without ${MESH_CONTEXT.secretArn} and ${MESH_CONTEXT.url}: MESH is off`);
    return undefined;
  }
  if (secretArn === undefined || url === undefined) {
    throw new Error(`MESH needs both ${MESH_CONTEXT.secretArn} and ${MESH_CONTEXT.url}, or neither`);
  }
  if (typeof secretArn !== 'string' || !/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/.test(secretArn)) {
    throw new Error(`${MESH_CONTEXT.secretArn} must be the secret's complete ARN (ending in its six-character suffix), not ${JSON.stringify(secretArn)}`);
  }
  const loopback = /^http:\/\/(127\.0\.0\.1|localhost)(:\d{1,5})?\/?$/;
  if (typeof url !== 'string' || !(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/.test(url) || loopback.test(url))) {
    throw new Error(`${MESH_CONTEXT.url} must be the MESH API's https base URL (plain http only on the loopback, for a sandbox), not ${JSON.stringify(url)}`);
  }
  const workflow = (key: string, fallback: string) => {
    const value = get(key) ?? fallback;
    if (typeof value !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(value)) {
      throw new Error(`${key} must be 1 to 100 letters, digits, '_', '-' or '.', not ${JSON.stringify(value)}`);
    }
    return value;
  };
  const workflows = {
    upload: workflow(MESH_CONTEXT.upload, DEFAULT_MESH_WORKFLOWS.upload),
    ack: workflow(MESH_CONTEXT.ack, DEFAULT_MESH_WORKFLOWS.ack),
    asn: workflow(MESH_CONTEXT.asn, DEFAULT_MESH_WORKFLOWS.asn),
  };
  if (workflows.upload === workflows.ack) {
    throw new Error(`${MESH_CONTEXT.ack} must differ from the upload workflow (the poller would read its own acknowledgements)`);
  }
  return { secretArn, url: url.replace(/\/$/, ''), workflows };
}
