import { Aws, CfnCondition, CfnParameter, Duration, Fn, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { DeadLetterQueue, ResilientQueue } from '../constructs/resilient-queue';
import { TIMEOUTS } from './constants';

// Builders, not constructs: each creates its resources directly in the stack's scope, so the
// logical IDs (and so the deployed resources, retained tables included) are those the stack had
// before it was split by concern. A Construct per concern would add a path segment to every
// logical ID and make CloudFormation replace them all.

/** The operations topic every alarm and the budget tell, with the optional OpsEmail subscription. */
export function operationsTopic(stack: Stack, messagingKey: kms.Key, opsEmail: CfnParameter) {
  // ---- Operations topic ------------------------------------------------------------------------
  const opsTopic = new sns.Topic(stack, 'OpsTopic', {
    displayName: 'cpis operations alarms',
    masterKey: messagingKey,
    enforceSSL: true,
  });
  opsTopic.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'BudgetsPublish',
      principals: [new iam.ServicePrincipal('budgets.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [opsTopic.topicArn],
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }),
  );
  const hasOpsEmail = new CfnCondition(stack, 'HasOpsEmail', {
    expression: Fn.conditionNot(Fn.conditionEquals(opsEmail.valueAsString, '')),
  });
  const opsSubscription = new sns.CfnSubscription(stack, 'OpsEmailSubscription', {
    topicArn: opsTopic.topicArn,
    protocol: 'email',
    endpoint: opsEmail.valueAsString,
  });
  opsSubscription.cfnOptions.condition = hasOpsEmail;

  return opsTopic;
}

/** The ASN queue, the SNS duty-team delivery DLQ, and the council topics' ARNs. */
export function messaging(stack: Stack, messagingKey: kms.Key, opsTopic: sns.Topic) {
  // ---- Messaging -----------------------------------------------------------------------------
  const asnQueue = new ResilientQueue(stack, 'AsnQueue', {
    key: messagingKey,
    alarmTopic: opsTopic,
    description: 'ASN queue',
    consumerTimeout: Duration.seconds(TIMEOUTS.dispatcher),
    maxReceiveCount: 5,
    maxMessageAge: Duration.seconds(300),
  });

  const topicArnPrefix = `arn:${Aws.PARTITION}:sns:${Aws.REGION}:${Aws.ACCOUNT_ID}:cpis-la-`;
  const councilTopics = `${topicArnPrefix}*`;

  const snsDlq = new DeadLetterQueue(stack, 'SnsDeliveryDlq', {
    key: messagingKey,
    alarmTopic: opsTopic,
    description: 'SNS duty-team delivery DLQ',
  });
  snsDlq.queue.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'CouncilTopicsRedrive',
      principals: [new iam.ServicePrincipal('sns.amazonaws.com')],
      actions: ['sqs:SendMessage'],
      resources: [snsDlq.queue.queueArn],
      conditions: { ArnLike: { 'aws:SourceArn': councilTopics } },
    }),
  );

  return { asnQueue, snsDlq, topicArnPrefix, councilTopics };
}
