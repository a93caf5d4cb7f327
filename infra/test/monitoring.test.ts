import { readFileSync } from 'fs';
import * as path from 'path';
import { CHECK_VOLUME } from '../lib/cpis-stack';
import { logicalId, refersTo, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth();
});

const repo = (...parts: string[]) => readFileSync(path.join(__dirname, '..', '..', ...parts), 'utf8');

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
    for (const part of ['$.fields.organisation', '$.fields.caller', '$.fields.message', 'care-setting check', 'Count']) {
      expect(body).toContain(part);
    }
  });

  test('the rule matches the line the check handler writes', () => {
    const care = repo('crates', 'http', 'src', 'care.rs');
    expect(care).toContain('tracing::info!(caller, organisation, "care-setting check")');
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
    expect(uses.length).toBe(5);
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
    // The record is written in crates/http/src/care.rs with tracing's default target, the module path.
    const crateName = /name\s*=\s*"([^"]+)"/.exec(repo('crates', 'http', 'Cargo.toml'))![1].replace(/-/g, '_');
    expect(`${crateName}::care`).toBe('cpis_http::care');
    // (The test above pins the exact line, which names no other target.)
    expect(repo('crates', 'http', 'src', 'care.rs')).toContain('tracing::info!(caller, organisation, "care-setting check")');
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
    expect(repo('functions', 'outbox-relay', 'src', 'main.rs')).toContain('println!("{}", outbox_relay::stale_feeds_metric(');
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
