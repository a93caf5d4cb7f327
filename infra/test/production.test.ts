// Production mode builds with cargo-lambda. Here the stack is synthesised with
// bundling skipped (`aws:cdk:bundling-stacks: []`, what `cdk synth
// --exclusively`/`cdk ls` use), and cargo-lambda-cdk's "is cargo lambda
// installed?" probe is stubbed, so the test never runs cargo.
jest.mock('child_process', () => {
  const actual = jest.requireActual('child_process');
  return {
    ...actual,
    spawnSync: jest.fn((command: string, args: string[], options?: object) => {
      if (command === 'docker') throw new Error('the tests never run docker');
      return command === 'cargo'
        ? { status: 1, error: new Error('cargo is not run by the tests'), stdout: '', stderr: '' }
        : actual.spawnSync(command, args, options);
    }),
  };
});

import * as childProcess from 'child_process';
import * as path from 'path';
import { RustFunction } from 'cargo-lambda-cdk';
import { FUNCTIONS, logicalId, synth, Synthesised } from './helpers';

let s: Synthesised;
beforeAll(() => {
  s = synth({ placeholderCode: false }, { 'aws:cdk:bundling-stacks': [] });
});

describe('production functions (cargo-lambda-cdk)', () => {
  test.each(FUNCTIONS)('%s is a RustFunction built from the workspace, binary = crate name', (crate) => {
    const fn = s.stack.functions[crate].function;
    expect(fn).toBeInstanceOf(RustFunction);
    const p = s.template.findResources('AWS::Lambda::Function')[logicalId(s.stack, fn)].Properties;
    expect(p.Architectures).toEqual(['arm64']);
    expect(p.Runtime).toBe('provided.al2023');
    expect(p.Handler).toBe('bootstrap');
  });

  test('the manifest is the repository\'s Cargo workspace, which lists functions/*', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fs = require('fs') as typeof import('fs');
    const manifest = fs.readFileSync(path.join(__dirname, '..', '..', 'Cargo.toml'), 'utf-8');
    expect(manifest).toMatch(/members\s*=\s*\[[^\]]*"functions\/\*"/);
  });

  test('the production template differs from the test template only in code', () => {
    const placeholder = synth();
    const strip = (t: Record<string, any>) => {
      // A version's logical id carries a hash of its code; so do the references to it.
      const copy = JSON.parse(JSON.stringify(t).replace(/CurrentVersion[0-9A-F]{8}[0-9a-f]{32}/g, 'CurrentVersion'));
      for (const r of Object.values(copy.Resources) as any[]) {
        if (r.Type === 'AWS::Lambda::Function') delete r.Properties.Code;
        if (r.Metadata) {
          delete r.Metadata['aws:asset:path'];
          delete r.Metadata['aws:asset:is-bundled'];
          delete r.Metadata['aws:asset:property'];
        }
      }
      return copy;
    };
    expect(strip(s.template.toJSON())).toEqual(strip(placeholder.template.toJSON()));
  });

  test('without cargo-lambda, synthesis fails naming it and never falls back to Docker', () => {
    const spawn = childProcess.spawnSync as unknown as jest.Mock;
    spawn.mockClear();
    expect(() => synth({ placeholderCode: false })).toThrow(/install cargo-lambda.*Docker bundling is disabled/s);
    expect(spawn.mock.calls.some(([command]) => command === 'docker')).toBe(false);
  });
});
