import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.js';

// `kill -TERM <pid of npm start>` must stop the exporter, not orphan it. npm forwards SIGTERM to
// its child only; when that child was `sh -c "node dist/main.js ..."`, sh died and the exporter
// was re-parented to PID 1 and kept serving. The start script now `exec`s node, so the signal
// reaches the exporter, which shuts down gracefully.
//
// `npm start` builds first (prestart). It runs in a scratch copy of the project (package.json and
// tsconfig copied, src, config and node_modules linked) so that its build writes a dist/ of its
// own, never the dist/ the other tests of this run are executing.

/** Process ids of the whole tree under `root`, root included, from /proc. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** Alive: has a /proc entry and is not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

let npm: ChildProcess | undefined;
const seen = new Set<number>();
const scratch: string[] = [];
afterEach(() => {
  // never leave a process behind: the whole group (orphans keep it), then each process seen
  if (npm?.pid !== undefined) {
    try {
      process.kill(-npm.pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  }
  for (const pid of seen) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  npm = undefined;
  seen.clear();
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true });
});

function projectCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'npm-start-'));
  scratch.push(dir);
  for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) copyFileSync(join(ROOT, f), join(dir, f));
  for (const d of ['src', 'config', 'node_modules']) symlinkSync(join(ROOT, d), join(dir, d));
  return dir;
}

describe('npm start', () => {
  it('kill -TERM on the npm process stops the exporter: no process of the tree is left', async () => {
    const dir = projectCopy();
    npm = spawn('npm', ['start', '--', '--web.listen-address', '127.0.0.1:0'], {
      cwd: dir,
      detached: true, // a process group of its own, for the cleanup
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
    });
    const npmPid = npm.pid!;
    seen.add(npmPid);
    let out = '';
    npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const logs: Array<Record<string, unknown>> = [];
    let err = '';
    let buf = '';
    npm.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // npm's and tsc's own output
        }
      }
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => npm!.on('exit', (code, signal) => r({ code, signal })));
    const diagnostics = () => `stdout:\n${out}\nstderr:\n${err}`;

    // up: built, then listening (the build takes most of the time)
    const deadline = Date.now() + 120_000;
    while (!logs.some((l) => l.msg === 'exporter listening')) {
      if (Date.now() > deadline || npm.exitCode !== null) throw new Error(`npm start did not reach 'exporter listening'\n${diagnostics()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const url = logs.find((l) => l.msg === 'exporter listening')!.url as string;
    expect((await fetch(`${url}/-/healthy`)).status).toBe(200);

    const pids = tree(npmPid);
    for (const p of pids) seen.add(p);
    const exporter = pids.find((p) => p !== npmPid && /\bdist\/main\.js\b/.test(cmdline(p)));
    expect(exporter, `no exporter under npm: ${pids.map((p) => `${p} ${cmdline(p)}`).join('; ')}`).toBeDefined();

    process.kill(npmPid, 'SIGTERM');

    const gone = Date.now() + 15_000;
    while (pids.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
    const left = pids.filter(alive).map((p) => `${p} ${cmdline(p)}`);
    expect(left, 'processes left 15 s after SIGTERM to npm').toEqual([]);
    // the exporter got the signal and shut down gracefully, and npm reports its exit code
    expect(logs.some((l) => l.msg === 'stopped'), diagnostics()).toBe(true);
    expect(await exited).toEqual({ code: 0, signal: null });
    // its build went to the copy, not to the dist/ the other tests run
    expect(existsSync(join(dir, 'dist/main.js'))).toBe(true);
  }, 150_000);
});
