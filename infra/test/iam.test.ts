import { AUDIT_TABLE_CHANGES, AUDIT_TABLE_REMOVALS } from '../lib/constructs/service-tables';
import { readFileSync } from 'fs';
import * as path from 'path';
import { AUDIT_WRITERS, CHANNEL_STATUS_ACTIONS, PSEUDONYM_READERS, SERVICE_TABLE_ACTIONS, TOPIC_SYNC_ACTIONS } from '../lib/cpis-stack';
import {
  actionsOn,
  asList,
  COUNCIL_TOPICS_ARN,
  FUNCTIONS,
  logicalId,
  refersTo,
  statementsOf,
  synth,
  Synthesised,
} from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const tableId = () => logicalId(s.stack, s.stack.tables.table);
const auditId = () => logicalId(s.stack, s.stack.tables.auditTable);
const queueId = () => logicalId(s.stack, s.stack.asnQueue.queue);
const secretId = () => logicalId(s.stack, s.stack.pseudonymSecret);

/** Every Allow statement's actions, flattened, for one function. */
function allActions(crate: string): string[] {
  return statementsOf(s, crate)
    .filter((st) => st.Effect === 'Allow')
    .flatMap((st) => asList(st.Action));
}

const EXPECTED_TABLE: Record<string, string[]> = {
  'plan-upload': [
    'dynamodb:BatchGetItem',
    'dynamodb:BatchWriteItem',
    'dynamodb:GetItem',
    'dynamodb:PutItem',
    'dynamodb:Query',
    'dynamodb:UpdateItem',
  ],
  'attendance-check': ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
  'history-query': ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'],
  'notification-dispatch': ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem'],
  'outbox-relay': ['dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
  portal: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
};
/** DeleteItem on the portal's own items only (sign-out, a sign-in attempt taken). */
const PORTAL_DELETE = 'dynamodb:DeleteItem';

describe('service table', () => {
  test.each(FUNCTIONS)('%s has exactly the DynamoDB actions its ports call', (crate) => {
    const onTable = actionsOn(s, crate, tableId()).filter((a) => a.startsWith('dynamodb:'));
    expect(onTable.filter((a) => crate !== 'portal' || a !== PORTAL_DELETE)).toEqual(EXPECTED_TABLE[crate]);
    expect(SERVICE_TABLE_ACTIONS[crate].slice().sort()).toEqual(EXPECTED_TABLE[crate]);
  });

  test.each(FUNCTIONS)('%s gets them on the table and its indexes only', (crate) => {
    const st = statementsOf(s, crate).find((x) => x.Sid === 'ServiceTable')!;
    expect(st.Resource).toEqual([
      { 'Fn::GetAtt': [tableId(), 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableId(), 'Arn'] }, '/index/*']] },
    ]);
  });

  test('history-query cannot write the service table', () => {
    const writes = actionsOn(s, 'history-query', tableId()).filter((a) =>
      /^dynamodb:(Put|Update|Delete|BatchWrite|PartiQL(Insert|Update|Delete)|ConditionCheck)/.test(a),
    );
    expect(writes).toEqual([]);
    expect(actionsOn(s, 'history-query', tableId()).filter((a) => a.startsWith('dynamodb:'))).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:GetItem',
      'dynamodb:Query',
    ]);
  });

  test('no function may Scan (but the relay, for the daily purge), DeleteItem, use PartiQL or any dynamodb:* wildcard', () => {
    for (const crate of FUNCTIONS) {
      const dynamo = allActions(crate).filter((a) => a.startsWith('dynamodb:'));
      for (const a of dynamo) {
        if (crate === 'portal' && a === PORTAL_DELETE) continue; // below: its own items only
        expect(a).not.toMatch(/\*|DeleteItem|PartiQL|Table$/);
        if (crate !== 'outbox-relay') expect(a).not.toMatch(/Scan/);
      }
    }
  });
});

test('the portal may DeleteItem only its own items (partition keys PORTAL#...), on the service table only', () => {
  const deletes = statementsOf(s, 'portal').filter((st) => asList(st.Action).includes(PORTAL_DELETE));
  expect(deletes).toHaveLength(1);
  expect(deletes[0].Resource).toEqual({ 'Fn::GetAtt': [tableId(), 'Arn'] });
  expect(deletes[0].Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['PORTAL#*'] } });
  expect(asList(deletes[0].Action)).toEqual([PORTAL_DELETE]);
});

describe('audit table (append-only)', () => {
  test.each(FUNCTIONS)('%s may at most PutItem on the audit table', (crate) => {
    const onAudit = actionsOn(s, crate, auditId()).filter((a) => a.startsWith('dynamodb:'));
    expect(onAudit).toEqual(AUDIT_WRITERS.includes(crate) ? ['dynamodb:PutItem'] : []);
  });

  test('nothing can update or delete the audit table', () => {
    for (const crate of FUNCTIONS) {
      const onAudit = actionsOn(s, crate, auditId());
      for (const forbidden of ['dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:*']) {
        expect(onAudit).not.toContain(forbidden);
      }
    }
    // Nor any other role or policy in the stack: the functions may put, the break-glass
    // role may change the table's definition, nobody may touch an event.
    const breakGlass = logicalId(s.stack, s.stack.tables.breakGlassRole);
    let breakGlassStatements = 0;
    for (const type of ['AWS::IAM::ManagedPolicy', 'AWS::IAM::Policy']) {
      for (const p of Object.values(s.template.findResources(type))) {
        for (const st of p.Properties.PolicyDocument.Statement) {
          if (st.Effect !== 'Allow' || !refersTo(st.Resource, auditId())) continue;
          if (refersTo(p.Properties.Roles, breakGlass)) {
            breakGlassStatements += 1;
            expect(asList(st.Action).sort()).toEqual(
              ['dynamodb:DescribeTable', 'dynamodb:GetResourcePolicy', ...AUDIT_TABLE_CHANGES, ...AUDIT_TABLE_REMOVALS].sort(),
            );
          } else {
            expect(asList(st.Action)).toEqual(['dynamodb:PutItem']);
          }
        }
      }
    }
    expect(breakGlassStatements).toBe(1);
  });

  test('the audit writers are the three API functions, the portal, the dispatcher and, with MESH, mesh-poll (the relay audits nothing)', () => {
    expect(AUDIT_WRITERS.slice().sort()).toEqual([
      'attendance-check',
      'history-query',
      'mesh-poll',
      'notification-dispatch',
      'plan-upload',
      'portal',
    ]);
  });
});

describe('SQS', () => {
  test('attendance-check and outbox-relay may only SendMessage to the ASN queue', () => {
    for (const crate of ['attendance-check', 'outbox-relay']) {
      expect(actionsOn(s, crate, queueId()).filter((a) => a.startsWith('sqs:'))).toEqual(['sqs:SendMessage']);
    }
  });

  test('the dispatcher consumes the ASN queue and cannot send to it', () => {
    expect(actionsOn(s, 'notification-dispatch', queueId()).filter((a) => a.startsWith('sqs:'))).toEqual([
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:GetQueueAttributes',
      'sqs:ReceiveMessage',
    ]);
  });

  test('plan-upload and history-query have no SQS access', () => {
    for (const crate of ['plan-upload', 'history-query']) {
      expect(allActions(crate).filter((a) => a.startsWith('sqs:'))).toEqual([]);
    }
  });
});

describe('SNS', () => {
  function snsStatements(crate: string) {
    return statementsOf(s, crate).filter((st) => asList(st.Action).some((a) => a.startsWith('sns:')));
  }

  test('the dispatcher may only Publish, and only to cpis-la-* topics', () => {
    const sts = snsStatements('notification-dispatch');
    expect(sts).toHaveLength(1);
    expect(asList(sts[0].Action)).toEqual(['sns:Publish']);
    expect(sts[0].Resource).toEqual(COUNCIL_TOPICS_ARN);
  });

  test('plan-upload has exactly what TopicSync calls, on cpis-la-* only, and cannot Publish', () => {
    const sts = snsStatements('plan-upload');
    expect(sts).toHaveLength(1);
    expect(asList(sts[0].Action).sort()).toEqual(
      [
        'sns:CreateTopic',
        'sns:ListSubscriptionsByTopic',
        'sns:Subscribe',
        'sns:Unsubscribe',
      ].sort(),
    );
    expect(TOPIC_SYNC_ACTIONS.slice().sort()).toEqual(asList(sts[0].Action).sort());
    expect(sts[0].Resource).toEqual(COUNCIL_TOPICS_ARN);
  });

  test('outbox-relay only reads: subscriptions of cpis-la-* topics, and the account\'s SMS opt-outs', () => {
    const sts = snsStatements('outbox-relay');
    expect(sts.map((st) => [asList(st.Action), st.Resource])).toEqual([
      [['sns:ListSubscriptionsByTopic'], COUNCIL_TOPICS_ARN],
      [['sns:ListPhoneNumbersOptedOut'], '*'],
    ]);
    // Exactly the calls crates/aws/src/sns_status.rs makes.
    const code = readFileSync(path.join(__dirname, '..', '..', 'crates', 'aws', 'src', 'sns_status.rs'), 'utf8');
    const calls = [...code.matchAll(/\.(list_[a-z_]+)\(\)/g)].map((m) => m[1]).sort();
    expect(calls).toEqual(['list_phone_numbers_opted_out', 'list_subscriptions_by_topic']);
    expect([...CHANNEL_STATUS_ACTIONS.onCouncilTopics, ...CHANNEL_STATUS_ACTIONS.account].sort()).toEqual(
      ['sns:ListPhoneNumbersOptedOut', 'sns:ListSubscriptionsByTopic'],
    );
  });

  test('no other function touches SNS', () => {
    for (const crate of ['attendance-check', 'history-query']) {
      expect(snsStatements(crate)).toEqual([]);
    }
  });

  test('the dispatcher can use the messaging key through SQS and SNS only', () => {
    const st = statementsOf(s, 'notification-dispatch').find((x) => x.Sid === 'MessagingKeyViaSqsAndSns')!;
    expect(asList(st.Action).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    expect(st.Resource).toEqual({ 'Fn::GetAtt': [logicalId(s.stack, s.stack.messagingKey), 'Arn'] });
    expect(JSON.stringify(st.Condition)).toContain('kms:ViaService');
  });
});

describe('secrets and keys', () => {
  test('only the API functions read the pseudonym secret, with GetSecretValue on it alone', () => {
    for (const crate of FUNCTIONS) {
      const onSecret = actionsOn(s, crate, secretId()).filter((a) => a.startsWith('secretsmanager:'));
      expect(onSecret).toEqual(PSEUDONYM_READERS.includes(crate) ? ['secretsmanager:GetSecretValue'] : []);
    }
  });

  test('every KMS grant is scoped to one key and, via kms:ViaService, to one purpose', () => {
    for (const crate of FUNCTIONS) {
      for (const st of statementsOf(s, crate)) {
        if (!asList(st.Action).some((a) => a.startsWith('kms:'))) continue;
        expect(st.Resource).not.toEqual('*');
        expect(JSON.stringify(st.Condition)).toContain('kms:ViaService');
      }
    }
  });

  test('no function has an AWS managed policy or an inline policy; roles are assumable by Lambda only', () => {
    for (const crate of FUNCTIONS) {
      const role = s.template.findResources('AWS::IAM::Role')[logicalId(s.stack, s.stack.functions[crate].role)];
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.Policies).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
    }
    s.template.resourceCountIs('AWS::IAM::Policy', 0);
  });

  test('no function has an action wildcard other than the KMS families', () => {
    for (const crate of FUNCTIONS) {
      for (const a of allActions(crate)) {
        if (a.includes('*')) {
          expect(['kms:GenerateDataKey*', 'kms:ReEncrypt*']).toContain(a);
        }
      }
    }
  });
});
