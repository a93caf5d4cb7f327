import { Aws, Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { MeshContext } from '../context';
import { CpisFunction } from '../constructs/rust-function';
import { ServiceTables } from '../constructs/service-tables';
import { MESH_MAP_DELETE, MESH_POLL } from './constants';

// A builder, not a construct, like the others in lib/stack/: its resources sit in the stack's
// scope. Built only with MESH on (`-c cpis:meshSecretArn=… -c cpis:meshUrl=…`).

/** The operator's MESH secret, imported by its complete ARN (never created by the stack). */
export function meshSecret(stack: Stack, mesh: MeshContext): secretsmanager.ISecret {
  return secretsmanager.Secret.fromSecretCompleteArn(stack, 'MeshSecret', mesh.secretArn);
}

/** The variables the dispatcher's MESH leg reads (crates/lambda/src/settings/mesh.rs). */
export function dispatcherMeshEnvironment(mesh: MeshContext, secret: secretsmanager.ISecret): Record<string, string> {
  return {
    CPIS_MESH_URL: mesh.url,
    CPIS_MESH_SECRET_ARN: secret.secretArn,
    CPIS_MESH_WORKFLOW_ASN: mesh.workflows.asn,
  };
}

/** The variables mesh-poll reads beyond the tables and RUST_LOG. */
export function pollerMeshEnvironment(mesh: MeshContext, secret: secretsmanager.ISecret): Record<string, string> {
  return {
    CPIS_MESH_URL: mesh.url,
    CPIS_MESH_SECRET_ARN: secret.secretArn,
    CPIS_MESH_WORKFLOW_UPLOAD: mesh.workflows.upload,
    CPIS_MESH_WORKFLOW_ACK: mesh.workflows.ack,
  };
}

export interface MeshWiringProps {
  readonly secret: secretsmanager.ISecret;
  readonly dataKey: kms.IKey;
  readonly tables: ServiceTables;
  readonly meshPoll: CpisFunction;
  readonly dispatcher: CpisFunction;
}

/**
 * What MESH adds beyond the statements every function gets from its kind (the service table's
 * actions, the data key through DynamoDB, the audit table's PutItem): the secret for the poller
 * and the dispatcher, mesh-poll's scoped deletes for the operator's map, and its schedule.
 */
export function meshWiring(stack: Stack, p: MeshWiringProps): events.Rule {
  const { secret, dataKey, tables, meshPoll, dispatcher } = p;
  for (const fn of [meshPoll, dispatcher]) {
    fn.allow(
      new iam.PolicyStatement({
        sid: 'MeshSecret',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [secret.secretArn],
      }),
    );
    // For a secret the operator encrypted with the stack's data key (README, "MESH on AWS");
    // under the account's aws/secretsmanager key, GetSecretValue alone suffices.
    fn.allow(
      new iam.PolicyStatement({
        sid: 'DataKeyViaSecretsManager',
        actions: ['kms:Decrypt'],
        resources: [dataKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Aws.REGION}.amazonaws.com` } },
      }),
    );
  }
  // The operator's map: a relink or an unlink deletes the council's link and the mailbox's
  // holder, both in one transaction; never an item of a child.
  meshPoll.allow(
    new iam.PolicyStatement({
      sid: 'MailboxMapDelete',
      actions: MESH_MAP_DELETE.actions,
      resources: [tables.table.tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': MESH_MAP_DELETE.leadingKeys } },
    }),
  );
  return new events.Rule(stack, 'MeshPollSchedule', {
    description: `cpis: poll the CP-IS MESH mailbox every ${MESH_POLL.everyMinutes} minutes`,
    schedule: events.Schedule.rate(Duration.minutes(MESH_POLL.everyMinutes)),
    targets: [
      new targets.LambdaFunction(meshPoll.alias, {
        // A poll that did not run is the next one: nothing to retry or keep.
        retryAttempts: 0,
        maxEventAge: Duration.minutes(MESH_POLL.everyMinutes),
      }),
    ],
  });
}
