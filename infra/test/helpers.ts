import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { MeshContext } from '../lib/context';
import { CpisStack, CpisStackProps } from '../lib/cpis-stack';
import { applyNag } from '../lib/nag';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const CDK_JSON = require('../cdk.json') as { context: Record<string, unknown> };

export interface Synthesised {
  readonly app: App;
  readonly stack: CpisStack;
  readonly template: Template;
}

/**
 * The stack as `bin/cpis.ts` builds it (cdk-nag included), with placeholder
 * code so that no test needs cargo-lambda or Zig.
 */
export function synth(props: CpisStackProps = {}, context: Record<string, unknown> = {}): Synthesised {
  // The same feature flags as `cdk synth` (cdk.json), so tests see the deployed template.
  const app = new App({ context: { ...CDK_JSON.context, ...context } });
  const stack = new CpisStack(app, 'Cpis', {
    env: { account: '111122223333', region: 'eu-west-2' },
    placeholderCode: true,
    ...props,
  });
  applyNag(app);
  const template = Template.fromStack(stack);
  return { app, stack, template };
}

export function logicalId(stack: Stack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as never);
}

/** True when a CloudFormation value (an ARN, a Join, a GetAtt) refers to the resource. */
export function refersTo(value: unknown, id: string): boolean {
  return JSON.stringify(value).includes(`"${id}"`);
}

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
  Sid?: string;
}

export function asList<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/**
 * Every statement granted to a function's role, from every policy attached
 * to it (managed or inline), so a test sees all of what the function may do.
 */
export function statementsOf(s: Synthesised, crateName: string): Statement[] {
  const fn = s.stack.functions[crateName];
  const roleId = logicalId(s.stack, fn.role);
  const statements: Statement[] = [];
  for (const type of ['AWS::IAM::ManagedPolicy', 'AWS::IAM::Policy']) {
    for (const res of Object.values(s.template.findResources(type))) {
      const roles = (res.Properties.Roles ?? []) as unknown[];
      if (roles.some((r) => refersTo(r, roleId))) {
        statements.push(...(res.Properties.PolicyDocument.Statement as Statement[]));
      }
    }
  }
  const role = s.template.findResources('AWS::IAM::Role')[roleId];
  for (const p of (role.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]) {
    statements.push(...p.PolicyDocument.Statement);
  }
  return statements;
}

/** The Allow actions a function has on a resource (by logical id). */
export function actionsOn(s: Synthesised, crateName: string, resourceId: string): string[] {
  const actions = new Set<string>();
  for (const st of statementsOf(s, crateName)) {
    if (st.Effect !== 'Allow') continue;
    if (asList(st.Resource).some((r) => r === '*' || refersTo(r, resourceId))) {
      asList(st.Action).forEach((a) => actions.add(a));
    }
  }
  return [...actions].sort();
}

export const FUNCTIONS = [
  'plan-upload',
  'attendance-check',
  'history-query',
  'notification-dispatch',
  'outbox-relay',
  'portal',
];

/** MESH on, as `-c cpis:meshSecretArn=… -c cpis:meshUrl=…` gives it (default workflows). */
export const MESH: MeshContext = {
  secretArn: 'arn:aws:secretsmanager:eu-west-2:111122223333:secret:cpis/mesh-AbCdEf',
  url: 'https://msg.intspineservices.nhs.uk',
  workflows: { upload: 'CPIS_LA_UPLOAD', ack: 'CPIS_LA_UPLOAD_ACK', asn: 'CPIS_ASN' },
};

/** Every function of a stack with MESH on. */
export const MESH_FUNCTIONS = [...FUNCTIONS, 'mesh-poll'];

/** `arn:<partition>:sns:<region>:<account>:cpis-la-*` as the template writes it. */
export const COUNCIL_TOPICS_ARN = {
  'Fn::Join': [
    '',
    ['arn:', { Ref: 'AWS::Partition' }, ':sns:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':cpis-la-*'],
  ],
};

/** `arn:<partition>:sns:<region>:<account>:cpis-la-` (CPIS_SNS_TOPIC_ARN_PREFIX). */
export const COUNCIL_TOPIC_PREFIX = {
  'Fn::Join': [
    '',
    ['arn:', { Ref: 'AWS::Partition' }, ':sns:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':cpis-la-'],
  ],
};
