import { Match } from 'aws-cdk-lib/assertions';
import { TIMEOUTS } from '../lib/cpis-stack';
import { COUNCIL_TOPICS_ARN, logicalId, refersTo, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const queues = () => s.template.findResources('AWS::SQS::Queue');
const asnQueueId = () => logicalId(s.stack, s.stack.asnQueue.queue);
const asnDlqId = () => logicalId(s.stack, s.stack.asnQueue.deadLetterQueue.queue);
const snsDlqId = () => logicalId(s.stack, s.stack.snsDeliveryDlq.queue);
const messagingKeyArn = () => ({ 'Fn::GetAtt': [logicalId(s.stack, s.stack.messagingKey), 'Arn'] });
const opsTopicRef = () => ({ Ref: logicalId(s.stack, s.stack.opsTopic) });

function alarmOn(metricName: string, queueId: string) {
  const found = Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter(
    (a) =>
      a.Properties.MetricName === metricName &&
      refersTo(a.Properties.Dimensions, queueId),
  );
  expect(found).toHaveLength(1);
  return found[0].Properties;
}

describe('ASN queue', () => {
  test('has a DLQ with maxReceiveCount >= 5', () => {
    const redrive = queues()[asnQueueId()].Properties.RedrivePolicy;
    expect(redrive.deadLetterTargetArn).toEqual({ 'Fn::GetAtt': [asnDlqId(), 'Arn'] });
    expect(redrive.maxReceiveCount).toBeGreaterThanOrEqual(5);
    expect(redrive.maxReceiveCount).toBe(5);
  });

  test('visibility timeout >= 6 x the dispatcher timeout, and the dispatcher timeout is 30 s', () => {
    const dispatcher = s.template.findResources('AWS::Lambda::Function')[
      logicalId(s.stack, s.stack.functions['notification-dispatch'].function)
    ];
    expect(dispatcher.Properties.Timeout).toBe(TIMEOUTS.dispatcher);
    expect(dispatcher.Properties.Timeout).toBe(30);
    const visibility = queues()[asnQueueId()].Properties.VisibilityTimeout;
    expect(visibility).toBeGreaterThanOrEqual(6 * dispatcher.Properties.Timeout);
    expect(visibility).toBeGreaterThanOrEqual(180);
  });

  test('feeds the dispatcher: batch size 10, ReportBatchItemFailures, bounded concurrency', () => {
    s.template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [asnQueueId(), 'Arn'] },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: Match.anyValue() },
    });
    // The live alias (<function name>:live, the name taken from the alias's ARN), never $LATEST.
    const [mapping] = Object.values(s.template.findResources('AWS::Lambda::EventSourceMapping'));
    const [name, suffix] = mapping.Properties.FunctionName['Fn::Join'][1];
    expect(suffix).toBe(':live');
    expect(refersTo(name, logicalId(s.stack, s.stack.functions['notification-dispatch'].alias))).toBe(true);
  });

  test('alarm when its DLQ holds any message', () => {
    const alarm = alarmOn('ApproximateNumberOfMessagesVisible', asnDlqId());
    expect(alarm.Threshold).toBe(0);
    expect(alarm.ComparisonOperator).toBe('GreaterThanThreshold');
    expect(alarm.AlarmActions).toEqual([opsTopicRef()]);
  });

  test('alarm when its oldest message is older than 300 s', () => {
    const alarm = alarmOn('ApproximateAgeOfOldestMessage', asnQueueId());
    expect(alarm.Threshold).toBe(300);
    expect(alarm.ComparisonOperator).toBe('GreaterThanThreshold');
    expect(alarm.AlarmActions).toEqual([opsTopicRef()]);
  });
});

describe('encryption and TLS', () => {
  test('every queue uses the customer-managed messaging key', () => {
    const all = Object.values(queues());
    expect(all).toHaveLength(3);
    for (const q of all) {
      expect(q.Properties.KmsMasterKeyId).toEqual(messagingKeyArn());
    }
  });

  test('every queue refuses requests without TLS', () => {
    const policies = Object.values(s.template.findResources('AWS::SQS::QueuePolicy'));
    for (const id of [asnQueueId(), asnDlqId(), snsDlqId()]) {
      const policy = policies.find((p) => p.Properties.Queues.some((q: unknown) => refersTo(q, id)));
      expect(policy).toBeDefined();
      expect(policy!.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 'sqs:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });

  test('the ops topic is KMS-encrypted and TLS-only', () => {
    s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: messagingKeyArn() });
    s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  test('the messaging key lets SNS and CloudWatch (alarms) use it, for this account only', () => {
    const key = s.template.findResources('AWS::KMS::Key')[logicalId(s.stack, s.stack.messagingKey)];
    for (const service of ['sns.amazonaws.com', 'cloudwatch.amazonaws.com']) {
      expect(key.Properties.KeyPolicy.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Principal: { Service: service },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        }),
      );
    }
  });
});

describe('council topics and the SNS delivery DLQ', () => {
  test('the SNS delivery DLQ accepts messages only from this account\'s cpis-la-* topics', () => {
    const policy = Object.values(s.template.findResources('AWS::SQS::QueuePolicy')).find((p) =>
      p.Properties.Queues.some((q: unknown) => refersTo(q, snsDlqId())),
    )!;
    expect(policy.Properties.PolicyDocument.Statement).toContainEqual({
      Sid: 'CouncilTopicsRedrive',
      Effect: 'Allow',
      Principal: { Service: 'sns.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: { 'Fn::GetAtt': [snsDlqId(), 'Arn'] },
      Condition: { ArnLike: { 'aws:SourceArn': COUNCIL_TOPICS_ARN } },
    });
  });

  test('alarm when a duty-team delivery is dead-lettered', () => {
    const alarm = alarmOn('ApproximateNumberOfMessagesVisible', snsDlqId());
    expect(alarm.Threshold).toBe(0);
    expect(alarm.AlarmActions).toEqual([opsTopicRef()]);
  });

  test('no council topic is created by the stack (plan-upload creates them at run time)', () => {
    s.template.resourceCountIs('AWS::SNS::Topic', 1);
  });

  test('the OpsEmail subscription exists only when OpsEmail is given', () => {
    s.template.hasParameter('OpsEmail', { Type: 'String', Default: '' });
    s.template.hasCondition('HasOpsEmail', {
      'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'OpsEmail' }, ''] }],
    });
    s.template.hasResource('AWS::SNS::Subscription', {
      Properties: { Protocol: 'email', Endpoint: { Ref: 'OpsEmail' }, TopicArn: opsTopicRef() },
      Condition: 'HasOpsEmail',
    });
  });

  test('every alarm notifies the ops topic, on alarm and on recovery', () => {
    const alarms = Object.values(s.template.findResources('AWS::CloudWatch::Alarm'));
    // 6 functions x (errors, throttles, error-level logs) + ASN DLQ + ASN age + SNS DLQ + check volume
    // + API 5xx + API latency + 2 tables' throttles + SMS spend + stale feeds + outbox age
    // + councils without a directory entry + councils without a confirmed channel
    expect(alarms).toHaveLength(31);
    for (const a of alarms) {
      expect(a.Properties.AlarmActions).toEqual([opsTopicRef()]);
      expect(a.Properties.OKActions).toEqual([opsTopicRef()]);
    }
  });
});

describe('outbox relay schedule', () => {
  test('an EventBridge rule invokes the relay every minute', () => {
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { Ref: logicalId(s.stack, s.stack.functions['outbox-relay'].alias) },
        }),
      ],
    });
  });
});
