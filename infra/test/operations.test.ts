import { API_LATENCY_P99_MS } from '../lib/constructs/operations';
import { logicalId, refersTo, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const alarmProps = (alarm: { node: { defaultChild?: unknown } }) =>
  s.template.findResources('AWS::CloudWatch::Alarm')[logicalId(s.stack, alarm)].Properties;
const opsTopic = () => ({ Ref: logicalId(s.stack, s.stack.opsTopic) });
const apiId = () => logicalId(s.stack, s.stack.httpApi.api);

function expectNotifies(p: { AlarmActions: unknown; OKActions: unknown }) {
  expect(p.AlarmActions).toEqual([opsTopic()]);
  expect(p.OKActions).toEqual([opsTopic()]);
}

describe('HTTP API alarms', () => {
  test('any 5xx in 5 minutes: AWS/ApiGateway 5xx of this API', () => {
    const p = alarmProps(s.stack.operations.api5xxAlarm);
    expect(p.Namespace).toBe('AWS/ApiGateway');
    expect(p.MetricName).toBe('5xx');
    expect(p.Dimensions).toEqual([{ Name: 'ApiId', Value: { Ref: apiId() } }]);
    expect(p.Statistic).toBe('Sum');
    expect(p.Period).toBe(300);
    expect(p.Threshold).toBe(0);
    expect(p.ComparisonOperator).toBe('GreaterThanThreshold');
    expectNotifies(p);
  });

  test(`p99 latency above ${API_LATENCY_P99_MS} ms for three 5-minute periods`, () => {
    const p = alarmProps(s.stack.operations.apiLatencyAlarm);
    expect(p.Namespace).toBe('AWS/ApiGateway');
    expect(p.MetricName).toBe('Latency');
    expect(p.Dimensions).toEqual([{ Name: 'ApiId', Value: { Ref: apiId() } }]);
    expect(p.ExtendedStatistic).toBe('p99');
    expect(p.Period).toBe(300);
    expect(p.EvaluationPeriods).toBe(3);
    expect(p.Threshold).toBe(API_LATENCY_P99_MS);
    expect(API_LATENCY_P99_MS).toBeLessThan(10_000); // below the API functions' timeout
    expectNotifies(p);
  });
});

describe('DynamoDB throttling', () => {
  const metricsOf = (p: { Metrics: { Id: string; Expression?: string; MetricStat?: any }[] }) => {
    const [expression] = p.Metrics.filter((m) => m.Expression);
    const stats = p.Metrics.filter((m) => m.MetricStat).map((m) => ({
      id: m.Id,
      name: m.MetricStat.Metric.MetricName,
      namespace: m.MetricStat.Metric.Namespace,
      dims: Object.fromEntries(
        (m.MetricStat.Metric.Dimensions as { Name: string; Value: unknown }[]).map((d) => [d.Name, d.Value]),
      ),
      stat: m.MetricStat.Stat,
    }));
    return { expression: expression.Expression!, stats };
  };

  test.each([
    ['service table (and gsi1, gsi2)', () => s.stack.tables.table, ['gsi1', 'gsi2']],
    ['audit table', () => s.stack.tables.auditTable, []],
  ] as const)('%s: any read or write throttle event in 5 minutes', (_name, table, indexes) => {
    const alarms = s.stack.operations.throttleAlarms.map(alarmProps).filter((p) =>
      refersTo(p.Metrics, logicalId(s.stack, table())),
    );
    expect(alarms).toHaveLength(1);
    const [p] = alarms;
    const { expression, stats } = metricsOf(p);
    const tableRef = { Ref: logicalId(s.stack, table()) };
    const expected = [undefined, ...indexes].flatMap((index) =>
      ['ReadThrottleEvents', 'WriteThrottleEvents'].map((name) => ({
        name,
        dims: index ? { TableName: tableRef, GlobalSecondaryIndexName: index } : { TableName: tableRef },
      })),
    );
    expect(stats.map(({ name, dims }) => ({ name, dims }))).toEqual(expect.arrayContaining(expected));
    expect(stats).toHaveLength(expected.length);
    for (const m of stats) {
      expect(m.namespace).toBe('AWS/DynamoDB');
      expect(m.stat).toBe('Sum');
    }
    // The expression adds every one of them.
    expect(expression.split(' + ').sort()).toEqual(stats.map((m) => m.id).sort());
    expect(p.Threshold).toBe(0);
    expect(p.ComparisonOperator).toBe('GreaterThanThreshold');
    expectNotifies(p);
  });
});

describe('SMS spend', () => {
  test('SNS SMSMonthToDateSpentUSD at or above the SmsSpendAlarmUsd parameter', () => {
    const p = alarmProps(s.stack.operations.smsSpendAlarm);
    expect(p.Namespace).toBe('AWS/SNS');
    expect(p.MetricName).toBe('SMSMonthToDateSpentUSD');
    expect(p.Dimensions).toBeUndefined();
    expect(p.Statistic).toBe('Maximum');
    expect(p.Threshold).toEqual({ Ref: 'SmsSpendAlarmUsd' });
    expect(p.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
    s.template.hasParameter('SmsSpendAlarmUsd', { Type: 'Number', Default: 40 });
    expectNotifies(p);
  });
});

describe('budget', () => {
  test('a monthly cost budget from MonthlyBudgetUsd: 80% actual and 100% forecast to the ops topic', () => {
    const budgets = Object.values(s.template.findResources('AWS::Budgets::Budget'));
    expect(budgets).toHaveLength(1);
    const p = budgets[0].Properties;
    expect(p.Budget).toEqual({
      BudgetType: 'COST',
      TimeUnit: 'MONTHLY',
      BudgetLimit: { Amount: { Ref: 'MonthlyBudgetUsd' }, Unit: 'USD' },
    });
    expect(p.NotificationsWithSubscribers.map((n: any) => [n.Notification.NotificationType, n.Notification.Threshold])).toEqual([
      ['ACTUAL', 80],
      ['FORECASTED', 100],
    ]);
    for (const n of p.NotificationsWithSubscribers) {
      expect(n.Subscribers).toEqual([{ SubscriptionType: 'SNS', Address: opsTopic() }]);
    }
  });

  test('AWS Budgets may publish to the ops topic and use its key, for this account only', () => {
    const policies = Object.values(s.template.findResources('AWS::SNS::TopicPolicy')).filter((p) =>
      refersTo(p.Properties.Topics, logicalId(s.stack, s.stack.opsTopic)),
    );
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const publish = statements.find((st: any) => st.Principal?.Service === 'budgets.amazonaws.com');
    expect(publish.Action).toBe('sns:Publish');
    expect(publish.Condition).toEqual({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } });
    const key = s.template.findResources('AWS::KMS::Key')[logicalId(s.stack, s.stack.messagingKey)];
    const use = key.Properties.KeyPolicy.Statement.find((st: any) => st.Principal?.Service === 'budgets.amazonaws.com');
    expect(use.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    expect(use.Condition).toEqual({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } });
  });
});

describe('dashboard', () => {
  test('one dashboard showing the state of every alarm in the stack', () => {
    const dashboards = Object.values(s.template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    const body = dashboards[0].Properties.DashboardBody;
    const alarmIds = Object.keys(s.template.findResources('AWS::CloudWatch::Alarm'));
    expect(alarmIds.length).toBe(31);
    for (const id of alarmIds) {
      expect(refersTo(body, id)).toBe(true);
    }
  });

  test('and graphs the API, the functions, the queues, the tables, SMS spend and the H6 watch', () => {
    const body = JSON.stringify(Object.values(s.template.findResources('AWS::CloudWatch::Dashboard'))[0].Properties.DashboardBody);
    for (const metric of [
      '5xx',
      'Latency',
      'Errors',
      'Throttles',
      'Duration',
      'ApproximateAgeOfOldestMessage',
      'ApproximateNumberOfMessagesVisible',
      'WriteThrottleEvents',
      'SMSMonthToDateSpentUSD',
      'INSIGHT_RULE_METRIC',
    ]) {
      expect(body).toContain(metric);
    }
  });
});
