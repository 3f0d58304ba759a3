import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';

// .ci/run removes every temporary directory it makes (a Node 24 install of ~190 MB, the vitest
// reports) on every exit path. Running it for real takes many minutes, so the tools it calls are
// stubbed and TMPDIR points at an empty directory that must be empty again afterwards.

const LIB = join(ROOT, '.ci/lib.sh');
const RUN = join(ROOT, '.ci/run');

const scratch: string[] = [];
const groups: number[] = [];
afterEach(() => {
  for (const pid of groups.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ci-test-'));
  scratch.push(d);
  return d;
}

/** bash -c SCRIPT with .ci/lib.sh sourced and TMPDIR an empty directory. */
function lib(script: string) {
  const tmp = tempDir();
  const r = spawnSync('bash', ['-c', `source ${JSON.stringify(LIB)}\n${script}`], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp }, timeout: 20_000 });
  return { ...r, left: readdirSync(tmp) };
}

describe('.ci/lib.sh', () => {
  it('make_temp makes directories that cleanup_on_exit removes on a normal exit, keeping the status', () => {
    const r = lib('cleanup_on_exit; make_temp a; make_temp b; touch "$a/file"; [ -d "$a" ] && [ -d "$b" ] && [ "$a" != "$b" ] && echo made; exit 3');
    expect(r.stdout).toBe('made\n');
    expect(r.status).toBe(3);
    expect(r.left).toEqual([]);
  });

  it('removes them when set -u stops the script', () => {
    const r = lib('set -u; cleanup_on_exit; make_temp a; echo "$undefined_variable"');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('undefined_variable');
    expect(r.left).toEqual([]);
  });

  it('removes them when the script is killed with SIGTERM, SIGINT or SIGHUP', () => {
    for (const sig of ['TERM', 'INT', 'HUP']) {
      const r = lib(`cleanup_on_exit; make_temp a; kill -${sig} $$; sleep 5`);
      expect(r.signal ?? r.status, sig).not.toBe(0);
      expect(r.left, sig).toEqual([]);
    }
  });

  it('a subshell does not remove them early, and the script still sees them', () => {
    const r = lib('cleanup_on_exit; make_temp a; ( true ); x=$(true); [ -d "$a" ] && echo alive');
    expect(r.stdout).toBe('alive\n');
    expect(r.left).toEqual([]);
  });
});

/** A directory of stub commands for .ci/run: each logs its arguments and succeeds at once. */
function stubs(slowNpmTest = false): string {
  const bin = tempDir();
  const stub = (name: string, body = '') =>
    writeFileSync(join(bin, name), `#!/usr/bin/env bash\necho "${name} $*" >> ${JSON.stringify(join(bin, 'calls.log'))}\n${body}\nexit 0\n`);
  stub('npm', slowNpmTest ? `if [ "$1" = test ]; then touch ${JSON.stringify(join(bin, 'in-npm-test'))}; sleep 2; fi` : '');
  stub('node', 'if [ "$1" = --version ]; then echo v0.0.0-stub; fi');
  stub('promtool');
  stub('openssl');
  stub('apt-get');
  for (const f of readdirSync(bin)) chmodSync(join(bin, f), 0o755);
  return bin;
}

function startRun(bin: string, tmp: string) {
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp };
  // a real `npm ci` here would wipe node_modules under the running tests: make sure of the stubs
  const which = spawnSync('bash', ['-c', 'command -v npm node promtool'], { env, encoding: 'utf8' });
  expect(which.stdout.trim().split('\n')).toEqual(['npm', 'node', 'promtool'].map((c) => join(bin, c)));
  const proc = spawn(RUN, [], { cwd: ROOT, detached: true, env, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.push(proc.pid!);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', () => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return { proc, exited, output: () => out };
}

describe('.ci/run', () => {
  it('leaves no temporary directory behind and still ends with "N passed, N failed"', async () => {
    const bin = stubs();
    const tmp = tempDir();
    const run = startRun(bin, tmp);
    await run.exited;
    // it did make its temporary directories (the reports dir, the Node 24 prefix)...
    const calls = readFileSync(join(bin, 'calls.log'), 'utf8');
    expect(calls).toMatch(new RegExp(`npm install .*--prefix ${tmp}/tmp\\.`));
    expect(calls).toMatch(new RegExp(`npm test .*--outputFile=${tmp}/tmp\\.[^/]+/node20\\.json`));
    // ...and removed them
    expect(readdirSync(tmp)).toEqual([]);
    expect(run.output().trimEnd().split('\n').at(-1)).toMatch(/^\d+ passed, \d+ failed$/);
  }, 60_000);

  it('removes them when it is stopped with SIGTERM in the middle of the tests', async () => {
    const bin = stubs(true);
    const tmp = tempDir();
    const run = startRun(bin, tmp);
    const deadline = Date.now() + 30_000;
    while (!existsSync(join(bin, 'in-npm-test')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(tmp)).toHaveLength(1); // the reports directory
    run.proc.kill('SIGTERM');
    const end = await run.exited;
    expect(end.signal ?? end.code).not.toBe(0);
    expect(readdirSync(tmp)).toEqual([]);
  }, 60_000);

  it('makes every temporary directory with make_temp, after installing the EXIT trap', () => {
    const text = readFileSync(RUN, 'utf8');
    const code = text.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');
    expect(code).not.toMatch(/\bmktemp\b/);
    const trap = code.indexOf('cleanup_on_exit');
    expect(code.indexOf('source .ci/lib.sh')).toBeGreaterThanOrEqual(0);
    expect(trap).toBeGreaterThan(code.indexOf('source .ci/lib.sh'));
    expect(code.indexOf('make_temp')).toBeGreaterThan(trap);
  });
});
