import { spawnSync } from 'child_process';
import { mkdtempSync, readFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { ALLOWED_REGIONS, assertRegionAllowed, DEFAULT_REGION, regionFrom } from '../lib/context';
import { synth } from './helpers';

/** Runs bin/cpis.ts as `cdk synth` would (placeholder code), with the given context and environment. */
function runApp(context: Record<string, string>, env: Record<string, string>) {
  const outdir = mkdtempSync(path.join(tmpdir(), 'cpis-region-'));
  const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', 'bin/cpis.ts'], {
    cwd: path.join(__dirname, '..'),
    env: {
      ...process.env,
      ...env,
      CDK_OUTDIR: outdir,
      CDK_CONTEXT_JSON: JSON.stringify({ 'cpis:placeholderCode': 'true', ...context }),
    },
    encoding: 'utf-8',
  });
  return { run, outdir };
}

describe('region', () => {
  test('the allow-list is London only, and it is the default', () => {
    expect(ALLOWED_REGIONS).toEqual(['eu-west-2']);
    expect(DEFAULT_REGION).toBe('eu-west-2');
    expect(regionFrom(undefined)).toBe('eu-west-2');
    expect(regionFrom('eu-west-1')).toBe('eu-west-1');
    for (const bad of ['', 'London', 'eu-west', true]) {
      expect(() => regionFrom(bad)).toThrow(/cpis:region/);
    }
  });

  test('the app targets eu-west-2 even when the AWS profile says us-east-1', () => {
    const { run, outdir } = runApp({}, { CDK_DEFAULT_REGION: 'us-east-1', CDK_DEFAULT_ACCOUNT: '111122223333' });
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.status).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf-8'));
    expect(manifest.artifacts.Cpis.environment).toBe('aws://111122223333/eu-west-2');
  }, 60_000);

  test.each(['us-east-1', 'eu-west-1', 'eu-central-1'])('a stack in %s is refused', (region) => {
    expect(() => synth({ env: { account: '111122223333', region } })).toThrow(
      new RegExp(`refusing region ${region}.*-c cpis:allowRegion=${region}`),
    );
  });

  test('an environment-agnostic stack is refused: it would deploy wherever the profile points', () => {
    expect(() => synth({ env: {} })).toThrow(/needs a concrete region/);
  });

  test('-c cpis:allowRegion=<region> allows that region and no other', () => {
    expect(() => synth({ env: { account: '111122223333', region: 'eu-west-1' } }, { 'cpis:allowRegion': 'eu-west-1' })).not.toThrow();
    expect(() => synth({ env: { account: '111122223333', region: 'us-east-1' } }, { 'cpis:allowRegion': 'eu-west-1' })).toThrow(
      /refusing region us-east-1/,
    );
    expect(() => assertRegionAllowed('eu-west-1', true)).toThrow(/refusing/);
  });
});
