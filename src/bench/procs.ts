// Child processes of the benchmark: pinned with taskset, each in its own process group, all killed at
// the end (or on error, Ctrl-C, or exit), plus the tools check and free ports.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Where servers and load run; with a single core nothing is pinned. */
export interface Pinning {
  enabled: boolean;
  /** taskset -c list of the servers under test. */
  server: string;
  /** taskset -c list of the load (wrk, scraper), the simulator and the bench itself. */
  load: string;
  cores: number;
}

export function detectPinning(): Pinning {
  const cores = os.availableParallelism();
  return { enabled: cores >= 2, server: '0', load: '1', cores };
}

/** The executable's full path on $PATH, or undefined. */
export function which(cmd: string): string | undefined {
  if (cmd.includes('/')) return isExecutable(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves each tool to a path or throws one error naming every missing tool and its Debian package. */
export function requireTools(tools: { name: string; candidates: string[]; debianPackage: string }[]): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const t of tools) {
    const hit = t.candidates.map(which).find((p) => p !== undefined);
    if (hit) found[t.name] = hit;
    else missing.push(`  ${t.candidates[0]} not found on PATH: install it with \`apt-get install ${t.debianPackage}\``);
  }
  if (missing.length) throw new Error(`the benchmark needs tools that are missing:\n${missing.join('\n')}`);
  return found;
}

/** A free TCP port on the host (listen on port 0, close; the port is then passed to a child). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => (port ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** VmRSS and VmHWM (peak) of a process, in bytes. */
export function readRss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    if (!m) throw new Error(`${key} missing from /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/** Pins this process (all its threads) to the given cores; false if that failed. */
export function pinSelf(cpus: string, taskset: string): boolean {
  const r = spawnSync(taskset, ['-a', '-p', '-c', cpus, String(process.pid)], { encoding: 'utf8' });
  return r.status === 0;
}

const MAX_KEPT = 16 * 2 ** 20;
const live = new Set<Child>();

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** One child process in its own process group, with its output kept (bounded) and line watchers. */
export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<Exit>;
  private out = '';
  private err = '';
  private done = false;
  private watchers: ((line: string) => void)[] = [];
  private partial = { stdout: '', stderr: '' };

  constructor(
    readonly name: string,
    readonly command: string[],
    env: Record<string, string> = {},
  ) {
    this.proc = spawn(command[0]!, command.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    live.add(this);
    this.exited = new Promise<Exit>((resolve) => {
      this.proc.once('error', (error) => {
        this.done = true;
        live.delete(this);
        resolve({ code: null, signal: null, error });
      });
      this.proc.once('close', (code, signal) => {
        this.done = true;
        live.delete(this);
        resolve({ code, signal });
      });
    });
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => this.take('stdout', d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => this.take('stderr', d));
  }

  /** The pid of the process; with `taskset -c N cmd` it is cmd's (taskset execs it). */
  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.proc.pid;
  }

  get running(): boolean {
    return !this.done;
  }

  get stdout(): string {
    return this.out;
  }

  /** The last lines of stderr and stdout, for error messages. */
  tail(lines = 20): string {
    const last = (s: string) => s.split('\n').filter(Boolean).slice(-lines).join('\n');
    return [last(this.err), last(this.out)].filter(Boolean).join('\n');
  }

  private take(stream: 'stdout' | 'stderr', data: string): void {
    if (stream === 'stdout') this.out = (this.out + data).slice(-MAX_KEPT);
    else this.err = (this.err + data).slice(-MAX_KEPT);
    if (!this.watchers.length) return;
    const text = this.partial[stream] + data;
    const lines = text.split('\n');
    this.partial[stream] = lines.pop() ?? '';
    for (const line of lines) for (const w of [...this.watchers]) w(line);
  }

  /** Resolves with the first non-undefined `pick(line)` of a line on stdout or stderr. */
  waitForLine<T>(pick: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        this.watchers = this.watchers.filter((w) => w !== watch);
        fn();
      };
      const watch = (line: string) => {
        const v = pick(line);
        if (v !== undefined) finish(() => resolve(v));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${this.name}: no expected output within ${timeoutMs} ms\n${this.tail()}`))), timeoutMs);
      this.watchers.push(watch);
      void this.exited.then((e) => finish(() => reject(new Error(`${this.name} exited early (${describeExit(e)})\n${this.tail()}`))));
    });
  }

  /** Freezes the process group (SIGSTOP): it uses no CPU until resumed. */
  pause(): void {
    signalGroup(this, 'SIGSTOP');
  }

  resume(): void {
    signalGroup(this, 'SIGCONT');
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.done) return;
    signalGroup(this, 'SIGCONT'); // a frozen process would not act on SIGTERM
    signalGroup(this, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(this, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function signalGroup(c: Child, signal: NodeJS.Signals): void {
  const pid = c.proc.pid;
  if (pid === undefined || !c.running) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export function describeExit(e: Exit): string {
  if (e.error) return e.error.message;
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

/** Starts `command`, under `taskset -c cpus` when pinning is on. */
export function startChild(name: string, command: string[], cpus: string | undefined, taskset: string | undefined, env: Record<string, string> = {}): Child {
  const full = cpus !== undefined && taskset ? [taskset, '-c', cpus, ...command] : command;
  return new Child(name, full, env);
}

/** Runs a command to its end; rejects on a non-zero exit or after `timeoutMs`. */
export async function runToEnd(name: string, command: string[], cpus: string | undefined, taskset: string | undefined, timeoutMs: number): Promise<string> {
  const c = startChild(name, command, cpus, taskset);
  const timer = setTimeout(() => void c.stop(), timeoutMs);
  const e = await c.exited;
  clearTimeout(timer);
  if (e.code !== 0) throw new Error(`${name} failed (${describeExit(e)}): ${command.join(' ')}\n${c.tail()}`);
  return c.stdout;
}

/** Stops every child still running (SIGTERM, then SIGKILL). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(3000)));
}

/** Last resort on process exit: SIGKILL every process group still alive (synchronous). */
export function killAllNow(): void {
  for (const c of live) signalGroup(c, 'SIGKILL');
}

/** Clock ticks per second of /proc/stat and /proc/<pid>/stat (USER_HZ; 100 on Linux). */
export const USER_HZ = 100;

/** user + nice + system ticks of every CPU (irq/softirq left out: no process is charged for them). */
export function machineTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user, nice, system] = line.trim().split(/\s+/).slice(1, 4).map(Number);
  return (user ?? 0) + (nice ?? 0) + (system ?? 0);
}

/** utime + stime of a process (with `children`, plus those of its reaped children); 0 once it is gone. */
export function processTicks(pid: number | 'self', children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // f[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17.
    return f[11]! + f[12]! + (children ? f[13]! + f[14]! : 0);
  } catch {
    return 0;
  }
}

/**
 * CPU used by processes other than ours (this one, its reaped children, and `pids`) between
 * start() and the returned function's call, in cores (1 = one core busy all the time).
 */
export function foreignCpu(pids: number[]): () => number {
  const ours = () => processTicks('self', true) + pids.reduce((n, p) => n + processTicks(p), 0);
  const m0 = machineTicks();
  const o0 = ours();
  const t0 = performance.now();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const foreign = machineTicks() - m0 - (ours() - o0);
    return Math.max(0, foreign / USER_HZ / seconds);
  };
}
