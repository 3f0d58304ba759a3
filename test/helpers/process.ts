import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The built CLI (npm test and npm run test:e2e build first). */
export const MAIN = join(ROOT, 'dist/main.js');

export interface RunningExporter {
  proc: ChildProcess;
  /** Where the exporter listens, from its 'exporter listening' log line. */
  url: string;
  /** The embedded simulator's URL in demo mode. */
  simulatorUrl: string | undefined;
  /** Every JSON log line so far, parsed; grows while the process runs. */
  logs: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Starts `node <script> ...args` and resolves once the exporter logs that it listens. */
export function startExporter(args: string[], script = MAIN, cwd = ROOT): Promise<RunningExporter> {
  const proc = spawn(process.execPath, [script, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  let simulatorUrl: string | undefined;
  let buf = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`exporter did not start: ${JSON.stringify(logs)}`)), 30_000);
    proc.on('exit', (code) => reject(new Error(`exporter exited with ${code} before listening: ${JSON.stringify(logs)}`)));
    proc.stderr!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue; // not a log line
        }
        logs.push(j);
        if (typeof j.simulator === 'string') simulatorUrl = j.simulator;
        if (j.msg === 'exporter listening') {
          clearTimeout(t);
          // in demo mode the simulator's URL is logged right after; give it the same tick
          setImmediate(() => resolve({ proc, url: j.url as string, get simulatorUrl() { return simulatorUrl; }, logs, exited }));
        }
      }
    });
  });
}

/** Polls `fn` until it returns something other than undefined. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** A free TCP port on 127.0.0.1 (free when asked: another process may take it before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
