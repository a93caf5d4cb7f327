import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { CpisHttpApi } from '../constructs/http-api';
import { OperationsAlarms, operationsDashboard } from '../constructs/operations';
import { DeadLetterQueue, ResilientQueue } from '../constructs/resilient-queue';
import { CpisFunction } from '../constructs/rust-function';
import { ServiceTables } from '../constructs/service-tables';
import { StackParameters } from './parameters';
import { CHECK_VOLUME, MESH_POLL, OUTBOX_AGE_ALARM_SECONDS } from './constants';

// Builders, not constructs: each creates its resources directly in the stack's scope, so the
// logical IDs (and so the deployed resources, retained tables included) are those the stack had
// before it was split by concern. A Construct per concern would add a path segment to every
// logical ID and make CloudFormation replace them all.

export interface MonitoringProps {
  readonly params: StackParameters;
  readonly api: CpisHttpApi;
  readonly tables: ServiceTables;
  readonly opsTopic: sns.Topic;
  readonly asnQueue: ResilientQueue;
  readonly snsDlq: DeadLetterQueue;
  readonly functions: Record<string, CpisFunction>;
  readonly attendanceCheck: CpisFunction;
  /** With MESH on. */
  readonly meshPoll?: CpisFunction;
}

/**
 * The operator's alarms beyond each function's and queue's own, and the dashboard, which shows
 * every alarm of the stack: build it last.
 */
export function monitoring(stack: Stack, p: MonitoringProps) {
  const { api, tables, opsTopic, asnQueue, snsDlq, attendanceCheck } = p;
  const { smsSpendAlarmUsd, monthlyBudgetUsd, checkVolumeThreshold } = p.params;
  const operations = new OperationsAlarms(stack, 'Operations', {
    api: api.api,
    tables: [
      { table: tables.table, indexes: ['gsi1', 'gsi2'] },
      { table: tables.auditTable, indexes: [] },
    ],
    alarmTopic: opsTopic,
    smsSpendAlarmUsd: smsSpendAlarmUsd.valueAsNumber,
    monthlyBudgetUsd: monthlyBudgetUsd.valueAsNumber,
  });

  // ---- Enumeration watch (hazard H6) ------------------------------------------------------------
  // attendance-check logs one `care_setting_check` event per answered check with the caller and
  // its organisation (never the child). Contributor Insights ranks callers by those lines, and
  // the alarm fires when the busiest one passes the threshold: detection for review against the
  // audit trail, since refusing a clinician's check is itself a hazard.
  const checkVolumeRule = new cloudwatch.CfnInsightRule(stack, 'CheckVolumeRule', {
    ruleName: `${stack.stackName}-check-volume`,
    ruleState: 'ENABLED',
    ruleBody: stack.toJsonString({
      Schema: { Name: 'CloudWatchLogRule', Version: 1 },
      LogGroupNames: [attendanceCheck.logGroup.logGroupName],
      LogFormat: 'JSON',
      Contribution: {
        Keys: ['$.fields.organisation', '$.fields.caller'],
        // The line's stable event name (crates/telemetry/src/event.rs), not its message text.
        Filters: [{ Match: '$.fields.event', In: ['care_setting_check'] }],
      },
      AggregateOn: 'Count',
    }),
  });
  const checkVolumeAlarm = new cloudwatch.Alarm(stack, 'CheckVolumeAlarm', {
    alarmDescription:
      'attendance-check: one caller made more checks than the CheckVolumeThreshold parameter allows (possible enumeration, hazard H6); review the caller in the audit trail',
    metric: new cloudwatch.MathExpression({
      expression: `INSIGHT_RULE_METRIC('${checkVolumeRule.attrRuleName}', 'MaxContributorValue')`,
      period: Duration.minutes(CHECK_VOLUME.periodMinutes),
      label: 'checks by the busiest caller',
    }),
    threshold: checkVolumeThreshold.valueAsNumber,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  checkVolumeAlarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
  checkVolumeAlarm.addOkAction(new cwActions.SnsAction(opsTopic));

  // ---- Feed freshness (hazard H2): a council whose uploads stopped --------------------------------
  // outbox-relay prints StaleFeeds every minute (embedded metric format, not
  // through the log filter). Missing data means the relay itself stopped:
  // then nobody knows whether feeds are fresh, so it alarms too.
  const staleFeedsAlarm = new cloudwatch.Alarm(stack, 'StaleFeedsAlarm', {
    alarmDescription:
      'outbox-relay: a council has sent no accepted full snapshot for longer than CPIS_FEED_STALE_AFTER_HOURS (48 h by default), so its plans go stale both ways (hazard H2); the relay log names the council. Also fires if the relay stops reporting.',
    metric: new cloudwatch.Metric({
      namespace: 'CPIS',
      metricName: 'StaleFeeds',
      dimensionsMap: { Service: 'cpis' },
      statistic: 'Maximum',
      period: Duration.minutes(15),
    }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  });
  staleFeedsAlarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
  staleFeedsAlarm.addOkAction(new cwActions.SnsAction(opsTopic));

  // ---- The outbox: undelivered ASNs (if the relay stops, the queue-age alarm sees nothing) ------
  // outbox-relay prints OldestUndeliveredAsnAge every sweep: the oldest ASN it found undelivered
  // with its claim lapsed (0 when none). An undelivered ASN is re-claimed every 5 minutes (the
  // relay's lease), so a 10-minute maximum always includes it. Missing data means the relay
  // stopped, and then nobody re-queues anything: that alarms too.
  const relayMetric = (metricName: string, period: Duration) =>
    new cloudwatch.Metric({
      namespace: 'CPIS',
      metricName,
      dimensionsMap: { Service: 'cpis' },
      statistic: 'Maximum',
      period,
    });
  const outboxAgeAlarm = new cloudwatch.Alarm(stack, 'OutboxAgeAlarm', {
    alarmDescription: `outbox-relay: an ASN is still undelivered ${OUTBOX_AGE_ALARM_SECONDS / 60} minutes after the access (its duty team has not been told; see the dispatcher's errors and the SNS DLQ), or the relay has stopped reporting`,
    metric: relayMetric('OldestUndeliveredAsnAge', Duration.minutes(10)),
    threshold: OUTBOX_AGE_ALARM_SECONDS,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  });

  // ---- Councils that a flag or an ASN cannot reach ------------------------------------------
  // Counted each sweep over the councils with a feed (an accepted full snapshot on record): no
  // directory entry, or no subscription on cpis-la-<ODS> that is confirmed and (SMS) not opted
  // out. The relay's warning lines name the ODS codes. Missing data is not breaching here: a
  // failed check writes an error line (its own alarm), and a stopped relay is the alarm above.
  const noDirectoryAlarm = new cloudwatch.Alarm(stack, 'CouncilsWithoutDirectoryEntryAlarm', {
    alarmDescription:
      'outbox-relay: a council with a feed has no directory entry, so its flags carry no phone number and its ASNs reach no duty team; the relay log names it',
    metric: relayMetric('CouncilsWithoutDirectoryEntry', Duration.minutes(15)),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  const noChannelAlarm = new cloudwatch.Alarm(stack, 'CouncilsWithoutConfirmedChannelAlarm', {
    alarmDescription:
      'outbox-relay: a council with a feed has no confirmed duty-team subscription that is not opted out (email never confirmed or unsubscribed, SMS STOP, or no channels in its entry), so its ASNs wait in its inbox only; the relay log names it',
    metric: relayMetric('CouncilsWithoutConfirmedChannel', Duration.minutes(15)),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  for (const alarm of [outboxAgeAlarm, noDirectoryAlarm, noChannelAlarm]) {
    alarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
    alarm.addOkAction(new cwActions.SnsAction(opsTopic));
  }

  const graph = (title: string, metrics: cloudwatch.IMetric[]) =>
    new cloudwatch.GraphWidget({ title, left: metrics, width: 8 });

  // ---- MESH (with MESH on): the councils' files -------------------------------------------------
  // mesh-poll prints one EMF line per poll (functions/mesh-poll/src/lib.rs, poll_metrics):
  // MeshPollSucceeded is 1 for a poll that went through the inbox and 0 for one that stopped.
  // Their sum over the window is 0 when every poll failed, and missing when none ran (the
  // schedule or the function is gone): both breach. Failed polls also fail their invocations
  // (the function's errors alarm); this one says the councils' files have stopped moving.
  const meshMetric = (metricName: string, statistic: string, period: Duration) =>
    new cloudwatch.Metric({ namespace: 'CPIS', metricName, dimensionsMap: { Service: 'cpis' }, statistic, period });
  let meshPollAlarm: cloudwatch.Alarm | undefined;
  const meshGraphs: cloudwatch.IWidget[] = [];
  if (p.meshPoll) {
    meshPollAlarm = new cloudwatch.Alarm(stack, 'MeshPollAlarm', {
      alarmDescription: `mesh-poll: no successful poll of the CP-IS MESH mailbox for ${MESH_POLL.alarmMinutes} minutes (MESH unreachable or refusing, the store failing, or the poller stopped): councils' upload files wait unacknowledged; see mesh-poll's errors and log`,
      metric: meshMetric('MeshPollSucceeded', 'Sum', Duration.minutes(MESH_POLL.alarmMinutes)),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    meshPollAlarm.addAlarmAction(new cwActions.SnsAction(opsTopic));
    meshPollAlarm.addOkAction(new cwActions.SnsAction(opsTopic));
    const fiveMinutes = Duration.minutes(MESH_POLL.everyMinutes);
    meshGraphs.push(
      graph('MESH: successful polls', [meshMetric('MeshPollSucceeded', 'Sum', fiveMinutes)]),
      graph('MESH: files received, acknowledged, from unlinked mailboxes; reports', [
        meshMetric('MeshFilesReceived', 'Sum', fiveMinutes),
        meshMetric('MeshFilesAcknowledged', 'Sum', fiveMinutes),
        meshMetric('MeshFilesUnlinked', 'Maximum', fiveMinutes),
        meshMetric('MeshReports', 'Sum', fiveMinutes),
      ]),
    );
  }

  // ---- Dashboard: every alarm of the stack, then the signals behind them -----------------------
  const allAlarms = stack.node.findAll().filter((c): c is cloudwatch.Alarm => c instanceof cloudwatch.Alarm);
  const dashboard = operationsDashboard(stack, {
    name: `${stack.stackName}-operations`,
    alarms: allAlarms,
    api: api.api,
    functions: Object.entries(p.functions).map(([name, f]) => ({ name, fn: f.function })),
    extraGraphs: [
      graph('ASN queue: oldest message (s) and dead letters', [
        asnQueue.ageAlarm.metric,
        asnQueue.deadLetterQueue.depthAlarm.metric,
        snsDlq.depthAlarm.metric,
      ]),
      graph('DynamoDB throttle events', operations.throttleAlarms.map((a) => a.metric)),
      graph('SMS spend this month (USD)', [operations.smsSpendAlarm.metric]),
      graph('Checks by the busiest caller (H6)', [checkVolumeAlarm.metric]),
      graph('Councils with a stale feed (H2)', [staleFeedsAlarm.metric]),
      graph('Oldest undelivered ASN (s)', [outboxAgeAlarm.metric]),
      graph('Councils without a directory entry or a confirmed channel', [noDirectoryAlarm.metric, noChannelAlarm.metric]),
      ...meshGraphs,
    ],
  });

  return {
    operations,
    dashboard,
    relayAlarms: { outboxAge: outboxAgeAlarm, withoutDirectoryEntry: noDirectoryAlarm, withoutConfirmedChannel: noChannelAlarm },
    meshPollAlarm,
  };
}
