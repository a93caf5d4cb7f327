import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';

export interface DeadLetterQueueProps {
  readonly key: kms.IKey;
  readonly alarmTopic: sns.ITopic;
  readonly description: string;
}

/**
 * A dead-letter queue: KMS (customer-managed key), TLS only, 14 days'
 * retention, and an alarm as soon as it holds one message.
 */
export class DeadLetterQueue extends Construct {
  public readonly queue: sqs.Queue;
  public readonly depthAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: DeadLetterQueueProps) {
    super(scope, id);
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      dataKeyReuse: Duration.hours(1),
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.depthAlarm = new cloudwatch.Alarm(this, 'DepthAlarm', {
      alarmDescription: `${props.description}: a message was dead-lettered`,
      metric: this.queue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const action = new cwActions.SnsAction(props.alarmTopic);
    this.depthAlarm.addAlarmAction(action);
    this.depthAlarm.addOkAction(action);
    NagSuppressions.addResourceSuppressions(this.queue, [
      { id: 'AwsSolutions-SQS3', reason: 'This queue is itself a dead-letter queue.' },
    ]);
  }
}

export interface ResilientQueueProps {
  readonly key: kms.IKey;
  readonly alarmTopic: sns.ITopic;
  readonly description: string;
  /** The consumer function's timeout: the visibility timeout is 6 times it. */
  readonly consumerTimeout: Duration;
  readonly maxReceiveCount?: number;
  /** Alarm when the oldest message is older than this (default 300 s). */
  readonly maxMessageAge?: Duration;
}

/**
 * A work queue with its dead-letter queue: KMS with a customer-managed key,
 * TLS only, visibility timeout 6 × the consumer's timeout (AWS's guidance for
 * Lambda event sources), `maxReceiveCount` 5, and alarms on dead-lettered
 * messages and on the age of the oldest message.
 */
export class ResilientQueue extends Construct {
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: DeadLetterQueue;
  public readonly ageAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: ResilientQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new DeadLetterQueue(this, 'Dlq', {
      key: props.key,
      alarmTopic: props.alarmTopic,
      description: `${props.description} DLQ`,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      dataKeyReuse: Duration.hours(1),
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(props.consumerTimeout.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: {
        queue: this.deadLetterQueue.queue,
        maxReceiveCount: props.maxReceiveCount ?? 5,
      },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const maxAge = props.maxMessageAge ?? Duration.seconds(300);
    this.ageAlarm = new cloudwatch.Alarm(this, 'OldestMessageAlarm', {
      alarmDescription: `${props.description}: oldest message older than ${maxAge.toSeconds()} s`,
      metric: this.queue.metricApproximateAgeOfOldestMessage({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      threshold: maxAge.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const action = new cwActions.SnsAction(props.alarmTopic);
    this.ageAlarm.addAlarmAction(action);
    this.ageAlarm.addOkAction(action);
  }
}
