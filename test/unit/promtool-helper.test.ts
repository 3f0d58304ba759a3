import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';
import { isCI, PROMTOOL_MISSING_IN_CI, PROMTOOL_MISSING_SKIP, requirePromtool, type SkipContext } from '../helpers/promtool.js';

class Skipped extends Error {}

/** A stand-in for vitest's context: records the skip and stops the caller, as vitest does. */
function fakeContext() {
  const notes: Array<string | undefined> = [];
  const ctx: SkipContext = {
    skip(note?: string): never {
      notes.push(note);
      throw new Skipped(note);
    },
  };
  return { ctx, notes };
}

const there = () => true;
const missing = () => false;

describe('requirePromtool', () => {
  it('returns when promtool runs, in CI or not', () => {
    for (const env of [{}, { CI: 'true' }]) {
      const { ctx, notes } = fakeContext();
      expect(() => requirePromtool(ctx, { promtoolRuns: there, env })).not.toThrow();
      expect(notes).toEqual([]);
    }
  });

  it('fails in CI when promtool is missing, saying what to install', () => {
    for (const CI of ['true', '1', 'yes', 'TRUE']) {
      const { ctx, notes } = fakeContext();
      expect(() => requirePromtool(ctx, { promtoolRuns: missing, env: { CI } }), CI).toThrow(PROMTOOL_MISSING_IN_CI);
      expect(notes, CI).toEqual([]);
    }
    expect(PROMTOOL_MISSING_IN_CI).toContain("Debian's prometheus");
  });

  it('skips (never passes) outside CI when promtool is missing', () => {
    for (const env of [{}, { CI: '' }, { CI: 'false' }, { CI: 'False' }]) {
      const { ctx, notes } = fakeContext();
      expect(() => requirePromtool(ctx, { promtoolRuns: missing, env }), JSON.stringify(env)).toThrow(Skipped);
      expect(notes).toEqual([PROMTOOL_MISSING_SKIP]);
    }
  });

  it('reads CI the way CI systems set it', () => {
    expect(isCI({})).toBe(false);
    expect(isCI({ CI: '' })).toBe(false);
    expect(isCI({ CI: 'false' })).toBe(false);
    expect(isCI({ CI: 'true' })).toBe(true);
    expect(isCI({ CI: '1' })).toBe(true);
  });

  it('by default probes the real promtool and reads process.env', () => {
    const { ctx } = fakeContext();
    let outcome: string;
    try {
      requirePromtool(ctx);
      outcome = 'ran';
    } catch (e) {
      outcome = e instanceof Skipped ? 'skipped' : 'failed';
    }
    // with promtool installed it runs; without, CI fails and a workstation skips
    expect(['ran', isCI() ? 'failed' : 'skipped']).toContain(outcome);
  });
});

describe('with vitest itself', () => {
  it('a promtool check without promtool, outside CI (reported as skipped)', (ctx) => {
    // the test must end up skipped: not passed, not failed
    ctx.onTestFinished(({ task }) => {
      if (task.result?.state !== 'skip') throw new Error(`expected the test to be skipped, it ended as ${task.result?.state}`);
    });
    requirePromtool(ctx, { promtoolRuns: missing, env: {} });
    throw new Error('unreachable: requirePromtool should have skipped');
  });
});

describe('every promtool check in the tests', () => {
  it('goes through requirePromtool, with no silent pass when promtool is missing', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else if (e.name.endsWith('.ts')) files.push(join(dir, e.name));
      }
    };
    walk(join(ROOT, 'test'));
    const users = files.filter((f) => /spawn(Sync)?\(\s*'promtool'/.test(readFileSync(f, 'utf8')));
    expect(users.map((f) => relative(ROOT, f)).sort()).toEqual(expect.arrayContaining(['test/integration/cli.test.ts', 'test/unit/rules.test.ts']));
    for (const f of users) {
      const text = readFileSync(f, 'utf8');
      if (f.endsWith(join('helpers', 'promtool.ts'))) continue;
      expect(text, relative(ROOT, f)).toContain('requirePromtool(ctx');
      expect(text, relative(ROOT, f)).not.toMatch(/process\.env\.CI[^\n]*toBeFalsy/);
      expect(text, relative(ROOT, f)).not.toMatch(/spawnSync\(\s*'promtool',\s*\[\s*'--version'/);
    }
  });
});
