// Real bundling, with cargo stubbed: cargo-lambda-cdk's probe (`cargo lambda --version`) succeeds
// and the build command it hands to bash is recorded instead of run, leaving a fake `bootstrap`
// where cargo-lambda would. So the test sees the exact command a deploy runs, in milliseconds.
const builds: { command: string; cwd?: string }[] = [];
jest.mock('child_process', () => {
  const actual = jest.requireActual('child_process');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('fs') as typeof import('fs');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const p = require('path') as typeof import('path');
  return {
    ...actual,
    spawnSync: jest.fn((command: string, args: string[], options?: { cwd?: string }) => {
      if (command === 'cargo' && args.join(' ') === 'lambda --version') {
        return { status: 0, stdout: Buffer.from('cargo-lambda 1.8.5'), stderr: Buffer.from('') };
      }
      if (command === 'bash' && args[0] === '-c' && args[1].startsWith('cargo lambda build')) {
        builds.push({ command: args[1], cwd: options?.cwd });
        const words = args[1].split(' ');
        const outDir = words[words.indexOf('--lambda-dir') + 1];
        fs.mkdirSync(outDir, { recursive: true });
        fs.writeFileSync(p.join(outDir, 'bootstrap'), args[1]);
        return { status: 0, stdout: Buffer.from(''), stderr: Buffer.from('') };
      }
      if (command === 'docker') {
        throw new Error('the tests never run docker');
      }
      return actual.spawnSync(command, args, options);
    }),
  };
});

import * as path from 'path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { CARGO_PROFILES } from '../lib/constructs/rust-function';
import { architectureFrom } from '../lib/context';
import { FUNCTIONS, logicalId, MESH, MESH_FUNCTIONS, synth } from './helpers';

const REPO = path.join(__dirname, '..', '..');

/** The build command of each function, by the package it names. */
function buildsOf(recorded: typeof builds): Record<string, string[]> {
  const byPackage: Record<string, string[]> = {};
  for (const { command } of recorded) {
    const words = command.split(' ');
    byPackage[words[words.indexOf('--package') + 1]] = words;
  }
  return byPackage;
}

describe('bundling with cargo-lambda', () => {
  test('each function is built by its own package, at the workspace root, for arm64', () => {
    builds.length = 0;
    const s = synth({ placeholderCode: false });
    expect(builds).toHaveLength(FUNCTIONS.length);
    const byPackage = buildsOf(builds);
    expect(Object.keys(byPackage).sort()).toEqual([...FUNCTIONS].sort());
    for (const crate of FUNCTIONS) {
      const words = byPackage[crate];
      expect(words.slice(0, 3)).toEqual(['cargo', 'lambda', 'build']);
      // --package is what the workspace's default-members = ["crates/*"] needs: --bin alone
      // finds no binary of that name in the default members.
      expect(words[words.indexOf('--package') + 1]).toBe(crate);
      expect(words[words.indexOf('--bin') + 1]).toBe(crate);
      // One optimised profile: `release`, or the function's own (which inherits from it).
      const profile = CARGO_PROFILES[crate];
      if (profile) {
        expect(words[words.indexOf('--profile') + 1]).toBe(profile);
        expect(words).not.toContain('--release');
      } else {
        expect(words).toContain('--release');
        expect(words).not.toContain('--profile');
      }
      expect(words).toContain('--arm64');
      expect(words).not.toContain('--x86-64');
      const fn = s.template.findResources('AWS::Lambda::Function')[
        logicalId(s.stack, s.stack.functions[crate].function)
      ];
      expect(fn.Properties.Architectures).toEqual(['arm64']);
    }
    for (const { cwd } of builds) {
      expect(cwd).toBe(REPO);
    }
  });

  test('with MESH on, mesh-poll is built the same way, by its own package', () => {
    builds.length = 0;
    synth({ placeholderCode: false, mesh: MESH });
    const byPackage = buildsOf(builds);
    expect(Object.keys(byPackage).sort()).toEqual([...MESH_FUNCTIONS].sort());
    const words = byPackage['mesh-poll'];
    expect(words[words.indexOf('--bin') + 1]).toBe('mesh-poll');
    expect(words).toContain('--arm64');
  });

  test('a function built with its own profile finds it in the workspace, inheriting release', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fs = require('fs') as typeof import('fs');
    const manifest = fs.readFileSync(path.join(REPO, 'Cargo.toml'), 'utf-8');
    for (const profile of Object.values(CARGO_PROFILES)) {
      const section = manifest.split(`\n[profile.${profile}]\n`)[1]?.split('\n[')[0];
      expect(section).toBeDefined();
      expect(section).toMatch(/^inherits = "release"$/m);
    }
  });

  test('the workspace root hides functions/* from a build that names no package', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fs = require('fs') as typeof import('fs');
    const manifest = fs.readFileSync(path.join(REPO, 'Cargo.toml'), 'utf-8');
    expect(manifest).toMatch(/default-members\s*=\s*\["crates\/\*"\]/);
    for (const crate of MESH_FUNCTIONS) {
      const own = fs.readFileSync(path.join(REPO, 'functions', crate, 'Cargo.toml'), 'utf-8');
      expect(own).toMatch(new RegExp(`name\\s*=\\s*"${crate}"`));
    }
  });

  test('-c cpis:architecture=x86_64 builds and runs every function on x86_64', () => {
    builds.length = 0;
    const s = synth({ placeholderCode: false, architecture: architectureFrom('x86_64') });
    expect(builds).toHaveLength(FUNCTIONS.length);
    for (const words of Object.values(buildsOf(builds))) {
      expect(words).toContain('--x86-64');
      expect(words).not.toContain('--arm64');
    }
    for (const crate of FUNCTIONS) {
      const fn = s.template.findResources('AWS::Lambda::Function')[
        logicalId(s.stack, s.stack.functions[crate].function)
      ];
      expect(fn.Properties.Architectures).toEqual(['x86_64']);
    }
  });

  test('cpis:architecture accepts arm64 (the default) and x86_64 only', () => {
    expect(architectureFrom(undefined)).toBe(lambda.Architecture.ARM_64);
    expect(architectureFrom('arm64')).toBe(lambda.Architecture.ARM_64);
    expect(architectureFrom('x86_64')).toBe(lambda.Architecture.X86_64);
    for (const bad of ['x86-64', 'amd64', 'ARM64', '', true]) {
      expect(() => architectureFrom(bad)).toThrow(/cpis:architecture/);
    }
  });
});
