import { readFileSync } from 'fs';
import * as path from 'path';
import { CHECK_VOLUME, OUTBOX_AGE_ALARM_SECONDS } from '../lib/cpis-stack';
import { FUNCTIONS, logicalId, refersTo, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const repo = (...parts: string[]) => readFileSync(path.join(__dirname, '..', '..', ...parts), 'utf8');

/** The check line's stable event name, read as data from crates/telemetry/src/event.rs. */
const careSettingCheckEvent = () =>
  /pub const CARE_SETTING_CHECK: &str = "([a-z_]+)";/.exec(repo('crates', 'telemetry', 'src', 'event.rs'))![1];

describe('enumeration watch (hazard H6)', () => {
  const rule = () => {
    const rules = Object.values(s.template.findResources('AWS::CloudWatch::InsightRule'));
    expect(rules).toHaveLength(1);
    return rules[0].Properties;
  };

  test('a Contributor Insights rule ranks callers of attendance-check by their check log lines', () => {
    const { RuleState, RuleBody } = rule();
    expect(RuleState).toBe('ENABLED');
    const body = JSON.stringify(RuleBody);
    expect(refersTo(RuleBody, logicalId(s.stack, s.stack.functions['attendance-check'].logGroup))).toBe(true);
    for (const other of ['plan-upload', 'history-query', 'notification-dispatch', 'outbox-relay']) {
      expect(refersTo(RuleBody, logicalId(s.stack, s.stack.functions[other].logGroup))).toBe(false);
    }
    for (const part of ['$.fields.organisation', '$.fields.caller', '$.fields.event', careSettingCheckEvent(), 'Count']) {
      expect(body).toContain(part);
    }
  });

  test('the rule matches the line the check use case writes, by its stable event name', () => {
    const usecase = repo('crates', 'http', 'src', 'usecase.rs');
    expect(usecase).toMatch(/tracing::info!\(\s*target: CHECK_LOG_TARGET,\s*event = event::CARE_SETTING_CHECK,\s*caller,\s*organisation,/);
  });

  test('the alarm fires on the busiest caller above the CheckVolumeThreshold parameter, to the ops topic', () => {
    const ruleId = Object.keys(s.template.findResources('AWS::CloudWatch::InsightRule'))[0];
    const alarms = Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter((a) =>
      refersTo(a.Properties.Metrics ?? [], ruleId),
    );
    expect(alarms).toHaveLength(1);
    const alarm = alarms[0].Properties;
    const expression = JSON.stringify(alarm.Metrics);
    expect(expression).toContain('INSIGHT_RULE_METRIC');
    expect(expression).toContain('MaxContributorValue');
    expect(expression).toContain(`"Period":${CHECK_VOLUME.periodMinutes * 60}`);
    expect(alarm.Threshold).toEqual({ Ref: 'CheckVolumeThreshold' });
    expect(alarm.ComparisonOperator).toBe('GreaterThanThreshold');
    expect(alarm.AlarmActions).toEqual([{ Ref: logicalId(s.stack, s.stack.opsTopic) }]);
    expect(s.template.toJSON().Parameters.CheckVolumeThreshold.Default).toBe(CHECK_VOLUME.threshold);
  });

  test('changing LogLevel keeps the alarm fed: it changes RUST_LOG and nothing else', () => {
    // LogLevel is a parameter, so every value gives this same template: find every use of it.
    const uses: string[] = [];
    const walk = (node: unknown, at: string) => {
      if (Array.isArray(node)) node.forEach((v, i) => walk(v, `${at}[${i}]`));
      else if (node && typeof node === 'object') {
        if (JSON.stringify(node) === '{"Ref":"LogLevel"}') uses.push(at);
        else Object.entries(node).forEach(([k, v]) => walk(v, `${at}.${k}`));
      }
    };
    walk(s.template.toJSON().Resources, '');
    expect(uses.length).toBe(FUNCTIONS.length);
    for (const use of uses) {
      expect(use).toMatch(/\.Properties\.Environment\.Variables\.RUST_LOG$/);
    }
    // Lambda's own level filter lets the INFO record through whatever LogLevel is.
    const fn = s.template.findResources('AWS::Lambda::Function')[
      logicalId(s.stack, s.stack.functions['attendance-check'].function)
    ];
    expect(fn.Properties.LoggingConfig.ApplicationLogLevel).toBe('TRACE');
  });

  test('and RUST_LOG at any level keeps the module that writes the record at INFO (crates/telemetry/src/lib.rs)', () => {
    // The record is written in crates/http/src/usecase.rs with a fixed target.
    const crateName = /name\s*=\s*"([^"]+)"/.exec(repo('crates', 'http', 'Cargo.toml'))![1].replace(/-/g, '_');
    const usecase = repo('crates', 'http', 'src', 'usecase.rs');
    expect(usecase).toContain(`const CHECK_LOG_TARGET: &str = "${crateName}::care";`);
    const telemetry = repo('crates', 'telemetry', 'src', 'lib.rs');
    expect(telemetry).toContain(`pub const ENUMERATION_WATCH_TARGET: &str = "${crateName}::care";`);
    expect(telemetry).toContain('fn the_enumeration_watch_record_is_written_at_every_log_level()');
    expect(telemetry).toMatch(/for level in \["TRACE", "DEBUG", "INFO", "WARN", "ERROR"\]/);
    expect(s.template.toJSON().Parameters.LogLevel.AllowedValues).toEqual(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']);
  });

  test('the defaults are the embedded watch\'s (crates/domain/src/volume.rs)', () => {
    const volume = repo('crates', 'domain', 'src', 'volume.rs');
    const defaults = volume.slice(volume.indexOf('impl Default for VolumePolicy'));
    expect(defaults).toMatch(new RegExp(`threshold: ${CHECK_VOLUME.threshold},`));
    expect(defaults).toMatch(new RegExp(`window: Duration::minutes\\(${CHECK_VOLUME.periodMinutes}\\)`));
  });
});

describe('feed freshness (hazard H2) and the daily purge', () => {
  test('StaleFeeds, as outbox-relay prints it, alarms at one council and when the relay goes silent', () => {
    const alarms = Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter(
      (a) => a.Properties.MetricName === 'StaleFeeds',
    );
    expect(alarms).toHaveLength(1);
    const p = alarms[0].Properties;
    expect(p.Namespace).toBe('CPIS');
    expect(p.Dimensions).toEqual([{ Name: 'Service', Value: 'cpis' }]);
    expect(p.Threshold).toBe(1);
    expect(p.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
    expect(p.TreatMissingData).toBe('breaching');
    expect(p.AlarmActions).toHaveLength(1);
    // The signal the alarm watches is the line the relay writes, not a log filter.
    const relay = repo('functions', 'outbox-relay', 'src', 'lib.rs');
    for (const part of ['"Namespace": "CPIS"', '"Name": "StaleFeeds"', '"Dimensions": [["Service"]]', '"Service": "cpis"']) {
      expect(relay).toContain(part);
    }
    expect(repo('functions', 'outbox-relay', 'src', 'minute.rs')).toContain('println!("{}", crate::stale_feeds_metric(');
  });

  test('a daily rule invokes the relay with the purge task, which may scan and delete', () => {
    const rules = Object.values(s.template.findResources('AWS::Events::Rule')).filter((r) =>
      JSON.stringify(r.Properties.Targets ?? []).includes('purge'),
    );
    expect(rules).toHaveLength(1);
    expect(rules[0].Properties.ScheduleExpression).toBe('cron(30 2 * * ? *)');
    expect(JSON.parse(rules[0].Properties.Targets[0].Input)).toEqual({ task: 'purge' });
    const relay = repo('functions', 'outbox-relay', 'src', 'lib.rs');
    expect(relay).toContain('Some("purge") => Ok(Task::Purge)');
  });
});

describe('outbox-relay\'s own signals: the outbox\'s age and councils a notification cannot reach', () => {
  const relayLib = () => repo('functions', 'outbox-relay', 'src', 'lib.rs');
  // The minute's work (printed straight to stdout, at any LogLevel).
  const relayMinute = () => repo('functions', 'outbox-relay', 'src', 'minute.rs');
  const alarmsOn = (metricName: string) =>
    Object.values(s.template.findResources('AWS::CloudWatch::Alarm')).filter(
      (a) => a.Properties.MetricName === metricName,
    );
  const expectRelaySignal = (p: Record<string, unknown>) => {
    // The EMF line's directive: namespace CPIS, one dimension set [Service], Service=cpis
    // (crates/lambda/src/emf.rs, emf_line, which the relay and mesh-poll print through; their Rust
    // tests parse the lines).
    expect(p.Namespace).toBe('CPIS');
    expect(p.Dimensions).toEqual([{ Name: 'Service', Value: 'cpis' }]);
    expect(p.Statistic).toBe('Maximum');
    expect(p.AlarmActions).toEqual([{ Ref: logicalId(s.stack, s.stack.opsTopic) }]);
    expect(p.OKActions).toEqual([{ Ref: logicalId(s.stack, s.stack.opsTopic) }]);
    const emf = repo('crates', 'lambda', 'src', 'emf.rs');
    for (const part of ['"Namespace": "CPIS"', '"Dimensions": [["Service"]]', '"Service": "cpis"']) {
      expect(emf.slice(emf.indexOf('pub fn emf_line'))).toContain(part);
    }
    expect(relayLib()).toContain('use cpis_lambda::emf::emf_line;');
  };

  test('OldestUndeliveredAsnAge at the threshold, and the relay going silent, alarm', () => {
    const alarms = alarmsOn('OldestUndeliveredAsnAge');
    expect(alarms).toHaveLength(1);
    const p = alarms[0].Properties;
    expectRelaySignal(p);
    expect(p.Threshold).toBe(OUTBOX_AGE_ALARM_SECONDS);
    expect(p.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
    expect(p.TreatMissingData).toBe('breaching');
    // The period covers the relay's lease (an undelivered ASN is claimed again every 5 minutes).
    const lease = /pub const RELAY_LEASE: Duration = Duration::minutes\((\d+)\);/.exec(relayLib())![1];
    expect(p.Period).toBeGreaterThan(Number(lease) * 60);
    expect(relayLib()).toContain('("OldestUndeliveredAsnAge", "Seconds", seconds.into())');
    expect(relayLib()).toContain('fn the_outbox_age_line_gives_the_oldest_undelivered_asn_in_seconds_and_zero_when_none()');
    expect(relayMinute()).toContain('println!("{}", crate::outbox_age_metric(&report, now));');
    expect(logicalId(s.stack, s.stack.relayAlarms.outboxAge)).toBe(
      Object.keys(s.template.findResources('AWS::CloudWatch::Alarm')).find(
        (id) => s.template.toJSON().Resources[id].Properties.MetricName === 'OldestUndeliveredAsnAge',
      ),
    );
  });

  test.each([
    ['CouncilsWithoutDirectoryEntry', 'withoutDirectoryEntry'],
    ['CouncilsWithoutConfirmedChannel', 'withoutConfirmedChannel'],
  ] as const)('%s: one council alarms', (metricName, key) => {
    const alarms = alarmsOn(metricName);
    expect(alarms).toHaveLength(1);
    const p = alarms[0].Properties;
    expectRelaySignal(p);
    expect(p.Threshold).toBe(1);
    expect(p.ComparisonOperator).toBe('GreaterThanOrEqualToThreshold');
    expect(p.TreatMissingData).toBe('notBreaching');
    expect(s.template.toJSON().Resources[logicalId(s.stack, s.stack.relayAlarms[key])].Properties.MetricName).toBe(
      metricName,
    );
    expect(relayLib()).toContain(`"${metricName}",\n                "Count",`);
    expect(relayLib()).toContain('fn councils_with_a_feed_but_no_entry_or_no_confirmed_channel_are_counted()');
    expect(relayMinute()).toContain('println!("{}", crate::channel_gaps_metric(&gaps, now));');
  });

  test('the dashboard graphs all three signals', () => {
    const body = JSON.stringify(Object.values(s.template.findResources('AWS::CloudWatch::Dashboard'))[0].Properties.DashboardBody);
    for (const name of ['OldestUndeliveredAsnAge', 'CouncilsWithoutDirectoryEntry', 'CouncilsWithoutConfirmedChannel']) {
      expect(body).toContain(`\\"${name}\\"`);
    }
  });
});
