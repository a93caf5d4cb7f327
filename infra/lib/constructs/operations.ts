import { Duration } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as budgets from 'aws-cdk-lib/aws-budgets';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';

/**
 * p99 latency (ms) of the HTTP API above which, for three 5-minute periods running, the
 * operator is told. A check answers in well under a second; the functions time out at 10 s,
 * and a clinician waiting seconds for a flag is on the way to hazard H11.
 */
export const API_LATENCY_P99_MS = 2000;

export interface OperationsAlarmsProps {
  readonly api: apigwv2.HttpApi;
  /** Tables and the names of their global secondary indexes. */
  readonly tables: { readonly table: dynamodb.ITable; readonly indexes: string[] }[];
  readonly alarmTopic: sns.ITopic;
  /** USD month to date (a parameter's value) at which the SMS spend alarm fires. */
  readonly smsSpendAlarmUsd: number;
  /** USD a month (a parameter's value) for the account's cost budget. */
  readonly monthlyBudgetUsd: number;
}

/**
 * What an operator needs beyond each function's and queue's own alarms: the API's server
 * errors and latency, DynamoDB throttling, SMS spend (SNS stops sending SMS at the account's
 * spend limit without an error anyone sees), and a cost budget.
 */
export class OperationsAlarms extends Construct {
  public readonly api5xxAlarm: cloudwatch.Alarm;
  public readonly apiLatencyAlarm: cloudwatch.Alarm;
  public readonly throttleAlarms: cloudwatch.Alarm[] = [];
  public readonly smsSpendAlarm: cloudwatch.Alarm;
  public readonly budget: budgets.CfnBudget;

  constructor(scope: Construct, id: string, props: OperationsAlarmsProps) {
    super(scope, id);
    const action = new cwActions.SnsAction(props.alarmTopic);
    const notify = (alarm: cloudwatch.Alarm) => {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
      return alarm;
    };

    // Every 5xx is a council or a clinician left without an answer (H11).
    this.api5xxAlarm = notify(
      new cloudwatch.Alarm(this, 'Api5xxAlarm', {
        alarmDescription: 'HTTP API: server errors (5xx); a council or clinician got no answer',
        metric: props.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    this.apiLatencyAlarm = notify(
      new cloudwatch.Alarm(this, 'ApiLatencyAlarm', {
        alarmDescription: `HTTP API: p99 latency above ${API_LATENCY_P99_MS} ms for 15 minutes`,
        metric: props.api.metricLatency({ period: Duration.minutes(5), statistic: 'p99' }),
        threshold: API_LATENCY_P99_MS,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    // On-demand tables still throttle (a hot partition, a sudden jump past twice the previous
    // peak); a throttled write is an upload, a check or an audit event retried or lost.
    props.tables.forEach(({ table, indexes }, t) => {
      const metrics: Record<string, cloudwatch.IMetric> = {};
      const throttles = (name: string, dims: Record<string, string>) =>
        new cloudwatch.Metric({
          namespace: 'AWS/DynamoDB',
          metricName: name,
          dimensionsMap: dims,
          period: Duration.minutes(5),
          statistic: 'Sum',
        });
      // Ids unique across tables: the dashboard graphs both expressions together.
      metrics[`t${t}r`] = throttles('ReadThrottleEvents', { TableName: table.tableName });
      metrics[`t${t}w`] = throttles('WriteThrottleEvents', { TableName: table.tableName });
      indexes.forEach((index, i) => {
        const dims = { TableName: table.tableName, GlobalSecondaryIndexName: index };
        metrics[`t${t}i${i}r`] = throttles('ReadThrottleEvents', dims);
        metrics[`t${t}i${i}w`] = throttles('WriteThrottleEvents', dims);
      });
      const id = table.node.id;
      this.throttleAlarms.push(
        notify(
          new cloudwatch.Alarm(this, `${id}ThrottleAlarm`, {
            alarmDescription: `DynamoDB ${id}: throttled reads or writes (table or index)`,
            metric: new cloudwatch.MathExpression({
              expression: Object.keys(metrics).join(' + '),
              usingMetrics: metrics,
              period: Duration.minutes(5),
              label: 'throttle events',
            }),
            threshold: 0,
            comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluationPeriods: 1,
            treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          }),
        ),
      );
    });

    // SNS reports SMS spend per account and region, with no dimension.
    this.smsSpendAlarm = notify(
      new cloudwatch.Alarm(this, 'SmsSpendAlarm', {
        alarmDescription:
          'SNS SMS spend this month reached the SmsSpendAlarmUsd parameter: at the account\'s MonthlySpendLimit SNS stops sending SMS to duty teams, silently',
        metric: new cloudwatch.Metric({
          namespace: 'AWS/SNS',
          metricName: 'SMSMonthToDateSpentUSD',
          period: Duration.minutes(5),
          statistic: 'Maximum',
        }),
        threshold: props.smsSpendAlarmUsd,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    // The whole account's cost: deploy cpis in an account of its own (README, "Deploy").
    this.budget = new budgets.CfnBudget(this, 'MonthlyBudget', {
      budget: {
        budgetType: 'COST',
        timeUnit: 'MONTHLY',
        budgetLimit: { amount: props.monthlyBudgetUsd, unit: 'USD' },
      },
      notificationsWithSubscribers: [
        { type: 'ACTUAL', threshold: 80 },
        { type: 'FORECASTED', threshold: 100 },
      ].map(({ type, threshold }) => ({
        notification: {
          notificationType: type,
          comparisonOperator: 'GREATER_THAN',
          threshold,
          thresholdType: 'PERCENTAGE',
        },
        subscribers: [{ subscriptionType: 'SNS', address: props.alarmTopic.topicArn }],
      })),
    });
  }
}

/**
 * One dashboard: every alarm's state first, then the signals behind them.
 */
export function operationsDashboard(
  scope: Construct,
  props: {
    readonly name: string;
    readonly alarms: cloudwatch.IAlarm[];
    readonly api: apigwv2.HttpApi;
    readonly functions: { readonly name: string; readonly fn: { metricErrors(o?: cloudwatch.MetricOptions): cloudwatch.Metric; metricThrottles(o?: cloudwatch.MetricOptions): cloudwatch.Metric; metricDuration(o?: cloudwatch.MetricOptions): cloudwatch.Metric } }[];
    readonly extraGraphs: cloudwatch.IWidget[];
  },
): cloudwatch.Dashboard {
  const dashboard = new cloudwatch.Dashboard(scope, 'OpsDashboard', {
    dashboardName: props.name,
    defaultInterval: Duration.hours(3),
  });
  dashboard.addWidgets(
    new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: props.alarms, width: 24, height: 6 }),
  );
  const period = Duration.minutes(5);
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'API requests and errors',
      left: [props.api.metricCount({ period }), props.api.metricClientError({ period }), props.api.metricServerError({ period })],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'API latency',
      left: ['p50', 'p99'].map((statistic) => props.api.metricLatency({ period, statistic })),
      width: 12,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Function errors and throttles',
      left: props.functions.flatMap(({ name, fn }) => [
        fn.metricErrors({ period, label: `${name} errors` }),
        fn.metricThrottles({ period, label: `${name} throttles` }),
      ]),
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Function duration p99',
      left: props.functions.map(({ name, fn }) => fn.metricDuration({ period, statistic: 'p99', label: name })),
      width: 12,
    }),
  );
  dashboard.addWidgets(...props.extraGraphs);
  return dashboard;
}
