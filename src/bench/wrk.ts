// wrk: run it (pinned to the load core) and read its report.
import { runToEnd } from './procs.js';

export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  seconds: number;
  bytesRead: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  /** Latency percentiles of wrk's --latency distribution, in ms (under -c connections, so queueing included). */
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  /** The slowest request, ms (wrk's "Latency ... Max" column). */
  maxMs: number | undefined;
  command: string;
}

export interface WrkOptions {
  wrk: string;
  url: string;
  gzip: boolean;
  threads: number;
  connections: number;
  seconds: number;
  timeoutSeconds: number;
  cpus: string | undefined;
  taskset: string | undefined;
}

const TIME_UNITS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 };

function duration(text: string | undefined): number | undefined {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text ?? '');
  return m ? Number(m[1]) * TIME_UNITS[m[2]!]! : undefined;
}

export function wrkArgs(o: WrkOptions): string[] {
  return [
    o.wrk,
    `-t${o.threads}`,
    `-c${o.connections}`,
    `-d${o.seconds}s`,
    '--latency',
    '--timeout',
    `${o.timeoutSeconds}s`,
    ...(o.gzip ? ['-H', 'Accept-Encoding: gzip'] : []),
    o.url,
  ];
}

/** Parses wrk 4's report. Throws when the essential line (Requests/sec) is missing. */
export function parseWrk(out: string, command = 'wrk'): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!rps) throw new Error(`could not read wrk's report:\n${out}`);
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read/m.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const pct = (p: string) => duration(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
  return {
    requestsPerSecond: Number(rps[1]),
    requests: total ? Number(total[1]) : 0,
    seconds: total ? (Number(total[2]) * TIME_UNITS[total[3]!]!) / 1000 : 0,
    bytesRead: total ? Number(total[4]) * SIZE_UNITS[total[5]!]! : 0,
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    maxMs: duration(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out)?.[1]),
    command,
  };
}

export function wrkErrors(r: WrkResult): number {
  const s = r.socketErrors;
  return s.connect + s.read + s.write + s.timeout + r.non2xx;
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = wrkArgs(o);
  const out = await runToEnd('wrk', args, o.cpus, o.taskset, (o.seconds + o.timeoutSeconds + 30) * 1000);
  const shown = (o.cpus !== undefined && o.taskset ? `taskset -c ${o.cpus} ` : '') + args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ').replace(o.wrk, 'wrk');
  return parseWrk(out, shown);
}
