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

  test('the defaults are the embedded watch\'s (crates/domain/src/volume.rs)', () => {
    const volume = repo('crates', 'domain', 'src', 'volume.rs');
    const defaults = volume.slice(volume.indexOf('impl Default for VolumePolicy'));
    expect(defaults).toMatch(new RegExp(`threshold: ${CHECK_VOLUME.threshold},`));
    expect(defaults).toMatch(new RegExp(`window: Duration::minutes\\(${CHECK_VOLUME.periodMinutes}\\)`));
  });
});
