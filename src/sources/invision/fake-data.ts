/**
 * Deterministic data of the InVision fake (upstream-apis.md section 4): the demo data flows, how
 * each run goes (drawn from a seeded hash of seed, flow id and run number when it starts) and the
 * Monitoring log, so tests can compute what the fake served from the seed, the runs and a time.
 */

import { hash } from '../../simulator/hash.js';

export { hash };

export const RUN_STATUSES = ['Pending', 'Running', 'Succeeded', 'Failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** A data flow and how its runs behave; each run draws its durations from the [min, max] ranges (ms). */
export interface InvisionFlow {
  id: string;
  name: string;
  pendingMs: [number, number];
  runningMs: [number, number];
  /** Share of runs that end Failed, 0..1. */
  failureShare: number;
  /** Share of runs left Running forever, as a crashed worker left them before InVision 2023.6; 0..1. */
  stuckShare: number;
}

/** The data flows the fake starts with: every run starts and ends within two minutes, but stuck ones. */
export const DEMO_DATAFLOWS: readonly InvisionFlow[] = [
  { id: 'df-nightly-load', name: 'Nightly load', pendingMs: [5_000, 15_000], runningMs: [40_000, 60_000], failureShare: 0, stuckShare: 0 },
  { id: 'df-hourly-sales', name: 'Hourly sales', pendingMs: [5_000, 10_000], runningMs: [20_000, 40_000], failureShare: 0, stuckShare: 0 },
  { id: 'df-budget-sync', name: 'Budget sync', pendingMs: [5_000, 15_000], runningMs: [20_000, 50_000], failureShare: 0.3, stuckShare: 0 },
  { id: 'df-legacy-export', name: 'Legacy export', pendingMs: [10_000, 15_000], runningMs: [30_000, 60_000], failureShare: 0, stuckShare: 0.25 },
];

/** How one run goes, decided when it starts (later changes to its flow do not touch it). */
export interface InvisionRunPlan {
  runId: string;
  dataflowId: string;
  /** The flow's name when the run started. */
  dataflowName: string;
  /** The flow's run number, from 1 (never reused, even if the flow is removed and added again). */
  seq: number;
  /** The fake's run number, from 1: orders runs started at the same millisecond. */
  number: number;
  startedAt: number;
  /** When it turns Running. */
  runningAt: number;
  /** When it ends; null for a stuck run, which never does. */
  finishesAt: number | null;
  outcome: 'Succeeded' | 'Failed' | 'Stuck';
}

function draw(h: number, [lo, hi]: [number, number]): number {
  return Math.min(hi, lo + Math.floor(h * (hi - lo + 1)));
}

function hex(h: number, digits: number): string {
  return Math.floor(h * 0x1_0000_0000).toString(16).padStart(8, '0').slice(0, digits);
}

/**
 * Plans the `seq`-th run of `flow`, the fake's `number`-th, started at `startedAt`. Durations and
 * outcome come from hash(seed, flow id, seq); the run id (GUID-shaped) also hashes the start time,
 * so a restarted simulator does not hand out the ids of its previous life, and ends in `number`,
 * so no two runs of one fake share one.
 */
export function planRun(seed: number, flow: InvisionFlow, seq: number, number: number, startedAt: number): InvisionRunPlan {
  const h = (what: string) => hash(`${seed}|run|${flow.id}|${seq}|${what}`);
  const idh = (k: number) => hash(`${seed}|run-id|${flow.id}|${seq}|${startedAt}|${k}`);
  const runId = `${hex(idh(0), 8)}-${hex(idh(1), 4)}-4${hex(idh(2), 3)}-${'89ab'[Math.floor(idh(3) * 4)]}${hex(idh(4), 3)}-${number.toString(16).padStart(12, '0')}`;
  const runningAt = startedAt + draw(h('pending'), flow.pendingMs);
  const end = runningAt + draw(h('running'), flow.runningMs);
  const o = h('outcome');
  const outcome = o < flow.stuckShare ? 'Stuck' : o < flow.stuckShare + flow.failureShare ? 'Failed' : 'Succeeded';
  return {
    runId, dataflowId: flow.id, dataflowName: flow.name, seq, number, startedAt, runningAt,
    finishesAt: outcome === 'Stuck' ? null : end, outcome,
  };
}

/** The status the API answers for a run at `now`. */
export function statusAt(run: InvisionRunPlan, now: number): RunStatus {
  if (now < run.runningAt) return 'Pending';
  if (run.finishesAt === null || now < run.finishesAt || run.outcome === 'Stuck') return 'Running';
  return run.outcome;
}

// ---- Monitoring log -------------------------------------------------------------------------

export const LOG_LEVELS = ['Error', 'Warning', 'Information', 'Verbose'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One row of GET api/v1/monitoring. */
export interface MonitoringRow {
  rowid: number;
  /** Free text; may hold quotes, non-ASCII and newlines. */
  data: string;
  level: LogLevel;
  /** yyyy.MM.dd HH:mm:ss, UTC. */
  timestamputc: string;
  logevent: string;
}

/**
 * Late rows: a share of rows (MONITORING_LATE_SHARE, chosen by hash of the seed and the row) is
 * listed only 1..120 s after its timestamp, as a log written by several workers is. A reader that
 * moves a [from, to) window along must re-read the last MONITORING_MAX_LATE_MS of it (and drop
 * rowids it has seen), or it loses those rows. Every other row is listed once its timestamp <= now.
 */
export const MONITORING_LATE_SHARE = 0.2;
export const MONITORING_MAX_LATE_MS = 120_000;
/** Rows older than this (by timestamp) are purged: the log keeps a week. */
export const MONITORING_RETENTION_MS = 7 * 86_400_000;
/**
 * rowid = (second the row was first listed) * ROWIDS_PER_SECOND + its rank among the rows listed
 * in that second. So rowid grows with the time a row was written, like a database identity column,
 * and a late row has a higher rowid than on-time rows with later timestamps.
 */
const ROWIDS_PER_SECOND = 10_000;

const SECOND = 1000;
const MINUTE = 60_000;

/** A time as the Monitoring API spells it: yyyy.MM.dd HH:mm:ss (UTC, milliseconds dropped). */
export function formatLogTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}.${p(d.getUTCMonth() + 1)}.${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

/** Parses yyyy.MM.dd HH:mm:ss (UTC) to epoch ms; undefined when the text is not exactly that or not a real time. */
export function parseLogTime(s: string): number | undefined {
  const m = /^(\d{4})\.(\d{2})\.(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  // Date.UTC rolls 2026.02.30 over to March; the round trip refuses it.
  return formatLogTime(ms) === s ? ms : undefined;
}

/** Everything the log is computed from. */
export interface MonitoringLog {
  seed: number;
  /** Every run the fake started (runs of removed flows too: the log keeps them). */
  runs: readonly InvisionRunPlan[];
  /** Whether some rows are listed late (FakeOptions.lateRevisions; default true). */
  lateRows: boolean;
}

export interface MonitoringQuery {
  /** Rows with timestamp >= fromMs ... */
  fromMs: number;
  /** ... and < toMs. */
  toMs: number;
  /** The time the log is read at. */
  now: number;
  logEventType?: string;
  logLevel?: LogLevel;
}

interface Entry {
  ts: number;
  visibleAt: number;
  /** Sort keys after visibleAt: background rows (0) before run rows (1), then a, then b. */
  group: 0 | 1;
  a: number;
  b: number;
  level: LogLevel;
  logevent: string;
  data: () => string;
  rowid?: number;
}

function lateBy(seed: number, key: string, lateRows: boolean): number {
  if (!lateRows || hash(`${seed}|late|${key}`) >= MONITORING_LATE_SHARE) return 0;
  return SECOND * (1 + Math.floor(hash(`${seed}|late-by|${key}`) * (MONITORING_MAX_LATE_MS / SECOND)));
}

const USERS = ['kari.nordmann', 'ola.hansen', 'bjørn.dæhlie', 'anne.o\'neil', 'svc-integration'];
const JOBS = ['Refresh currency rates', 'Rebuild cube "Sales"', 'Purge temp tables', 'Send budget reminders'];
const TABLES = ['dbo.BudgetLines', 'dbo.SalesFacts', 'stage.GLImport'];
const ERRORS = [
  'System.TimeoutException: The operation has timed out.',
  'System.Data.SqlClient.SqlException: Deadlock victim; rerun the transaction.',
  'Profitbase.InVision.WorkbookException: Workbook "Forecast 2026" failed to load: "Region" is not a dimension.',
];
const FAILURES = ['Step "Load ledger" failed: timeout expired', 'Step "Validate" failed: 12 rows rejected', 'Step "Export" failed: access denied to \\\\fileserver\\export'];

type Template = { share: number; level: LogLevel; logevent: string; text: (h: (w: string) => number) => string };
const pick = <T>(list: readonly T[], h: number): T => list[Math.floor(h * list.length)]!;

/** The rows the log has beside data flow runs; event names other than the documented two are assumed. */
const BACKGROUND: readonly Template[] = [
  { share: 0.3, level: 'Information', logevent: 'UserLogin', text: (h) => `User ${pick(USERS, h('user'))} signed in` },
  { share: 0.25, level: 'Verbose', logevent: 'WebApiRequest', text: (h) => `GET /api/pub/v1/workbooks answered 200 in ${5 + Math.floor(h('ms') * 400)} ms` },
  { share: 0.15, level: 'Information', logevent: 'ScheduledJob', text: (h) => `Scheduled job '${pick(JOBS, h('job'))}' completed in ${1 + Math.floor(h('s') * 90)} s` },
  { share: 0.15, level: 'Warning', logevent: 'ApplicationError', text: (h) => `Slow query on ${pick(TABLES, h('table'))}: ${2000 + Math.floor(h('ms') * 9000)} ms` },
  { share: 0.1, level: 'Error', logevent: 'ApplicationError', text: (h) => `Unhandled exception: ${pick(ERRORS, h('err'))}\n   at Profitbase.InVision.Execution.Worker.Run()` },
  { share: 0.05, level: 'Warning', logevent: 'UserLogin', text: (h) => `Failed sign-in for user ${pick(USERS, h('user'))}` },
];

/** The background rows written in the minute starting at `minute`: 1 to 4, at whole seconds. */
function backgroundMinute(seed: number, minute: number, lateRows: boolean): Entry[] {
  const n = 1 + Math.floor(hash(`${seed}|log|${minute}|n`) * 4);
  const out: Entry[] = [];
  for (let k = 0; k < n; k++) {
    const h = (w: string) => hash(`${seed}|log|${minute}|${k}|${w}`);
    const ts = minute + SECOND * Math.floor(h('second') * 60);
    let x = h('kind');
    const t = BACKGROUND.find((c) => (x -= c.share) < 0) ?? BACKGROUND[0]!;
    out.push({ ts, visibleAt: ts + lateBy(seed, `bg|${minute}|${k}`, lateRows), group: 0, a: ts, b: k, level: t.level, logevent: t.logevent, data: () => t.text(h) });
  }
  return out;
}

/** The DataFlowExecution rows of a run: one at its start, one when it ends (none for a stuck run). */
function runEntries(seed: number, run: InvisionRunPlan, lateRows: boolean): Entry[] {
  const flow = `Data flow "${run.dataflowName}" (${run.dataflowId})`;
  const startTs = Math.floor(run.startedAt / SECOND) * SECOND;
  const out: Entry[] = [{
    ts: startTs, visibleAt: run.startedAt + lateBy(seed, `run|${run.runId}|start`, lateRows), group: 1, a: run.number, b: 0,
    level: 'Information', logevent: 'DataFlowExecution', data: () => `${flow} run ${run.runId} started`,
  }];
  if (run.finishesAt !== null) {
    const end = run.finishesAt;
    const secs = Math.round((end - run.startedAt) / SECOND);
    const failed = run.outcome === 'Failed';
    out.push({
      ts: Math.floor(end / SECOND) * SECOND, visibleAt: end + lateBy(seed, `run|${run.runId}|end`, lateRows), group: 1, a: run.number, b: 1,
      level: failed ? 'Error' : 'Information', logevent: 'DataFlowExecution',
      data: () => (failed
        ? `${flow} run ${run.runId} failed after ${secs} s: ${pick(FAILURES, hash(`${seed}|failure|${run.runId}`))}`
        : `${flow} run ${run.runId} succeeded after ${secs} s`),
    });
  }
  return out;
}

const order = (x: Entry, y: Entry) => x.visibleAt - y.visibleAt || x.group - y.group || x.a - y.a || x.b - y.b;

/**
 * The rows GET api/v1/monitoring lists at `q.now` for the window [fromMs, toMs), ordered by rowid:
 * those with a timestamp in the window, within the retention, already written (see the late rows
 * above) and matching the filters (exact match). The oracle of the tests.
 *
 * A listed row never changes: a run started later writes rows that sort after it. (That holds while
 * the clock does not go back.)
 */
export function monitoringRows(log: MonitoringLog, q: MonitoringQuery): MonitoringRow[] {
  const ceilSecond = (ms: number) => Math.ceil(ms / SECOND) * SECOND;
  // Timestamps are whole seconds, so whole-second bounds select the same rows.
  const lo = Math.max(ceilSecond(q.fromMs), ceilSecond(q.now - MONITORING_RETENTION_MS));
  const hi = ceilSecond(q.toMs);
  if (hi <= lo || q.now < lo) return [];
  // A row's rank counts the rows written before it in its second, whatever their timestamp: every
  // row written from lo to now (or until the last row of the window can be written). Background
  // rows written then have timestamps from lo - 120 s on.
  const last = Math.min(q.now, hi - SECOND + MONITORING_MAX_LATE_MS);
  const written: Entry[] = [];
  const keep = (e: Entry) => {
    if (e.visibleAt >= lo && e.visibleAt <= last) written.push(e);
  };
  for (let m = Math.floor((lo - MONITORING_MAX_LATE_MS) / MINUTE) * MINUTE; m <= last; m += MINUTE) {
    for (const e of backgroundMinute(log.seed, m, log.lateRows)) keep(e);
  }
  for (const run of log.runs) for (const e of runEntries(log.seed, run, log.lateRows)) keep(e);
  written.sort(order);
  let second = Number.NaN;
  let rank = 0;
  for (const e of written) {
    const s = Math.floor(e.visibleAt / SECOND);
    rank = s === second ? rank + 1 : 0;
    second = s;
    if (rank >= ROWIDS_PER_SECOND) throw new Error(`more than ${ROWIDS_PER_SECOND} monitoring rows written in one second`);
    e.rowid = s * ROWIDS_PER_SECOND + rank;
  }
  return written
    .filter((e) => e.ts >= lo && e.ts < hi
      && (q.logEventType === undefined || e.logevent === q.logEventType)
      && (q.logLevel === undefined || e.level === q.logLevel))
    .map((e) => ({ rowid: e.rowid!, data: e.data(), level: e.level, timestamputc: formatLogTime(e.ts), logevent: e.logevent }));
}
