import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { parse } from 'csv-parse';
import { firesAt, minIntervalMs } from '../../config/cron.js';
import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import type { FamilyDef } from '../../engine/family.js';
import { HistogramCounts } from '../../engine/histogram.js';
import { UpstreamError } from '../../http/errors.js';
import {
  COUNTED_UNTIL, DURATION_BUCKETS, FAILURE_REASONS, FAILURES, INTERVALS_COUNTED, JOB_PHASES, LAST_COUNTED, OLDEST_JOB, QUERY_JOBS, RESULT_BYTES, RESULT_ROWS,
  RETRIES, RETRY_REASONS, SCHEDULE_INTERVAL, SFTP_ERRORS, SFTP_ERRORS_TOTAL, SFTP_UP, eventFamilies, groupLabels, jobFamilies,
} from './catalogue.js';
import { QUERY_API, RESULT_ENDPOINT, SUBMIT_ENDPOINT, type InsightsClient } from './client.js';
import { labelName, type IntelepeerConfig, type QueryConfig } from './config.js';
import { SftpError, withSftp, type SftpSession, type SftpSettings } from '../../sftp/client.js';

// IntelePeer Insights: each query's events are counted interval by interval. An interval is cut
// on the query's schedule (from where the last one ended to the tick minus the lag), queued,
// submitted when one of the customer's two query slots is free, followed until IntelePeer has
// run it, and its result files read over SFTP. Its counts join the query's counters only once all
// of its files were read, in the same step that forgets the interval; the state file then holds
// both or neither. An interval is never counted twice nor skipped, across retries and restarts.

export const QUERIES_COLLECTOR = 'intelepeer_queries';
const MINUTE = 60_000;
const SECOND = 1000;
/** A canceled interval is cut in halves until it is this short; then it is submitted again as it is. */
const MIN_SPLIT_MS = MINUTE;
/** Downloads stop starting once this share of the run's time is spent (the rest: follow-up, submits). */
const DOWNLOAD_SHARE = 0.7;
/** Waits after a refused submit (429 or 400), doubling to the cap. */
const SUBMIT_BACKOFF_MS = 30_000;
const SUBMIT_BACKOFF_MAX_MS = 15 * MINUTE;

type Phase = (typeof JOB_PHASES)[number];
type FailureReason = (typeof FAILURE_REASONS)[number];
type RetryReason = (typeof RETRY_REASONS)[number];
type SftpReason = (typeof SFTP_ERRORS)[number];

/** One interval of one query, from its cut to its count. */
interface Job {
  query: string;
  /** [from, to), whole seconds, epoch ms. */
  from: number;
  to: number;
  /** When it was cut (the exporter's clock). */
  cutAt: number;
  phase: Phase;
  /** IntelePeer's id, once a submit answered; on disk before anything else is done with it. */
  guid?: string;
  submittedAt?: number;
  /** Failed reads of its files; at max_download_attempts the interval is submitted again. */
  downloadFailures: number;
  /** After IntelePeer refused it as written (400): not submitted again before this time. */
  notBefore?: number;
  /** Refusals in a row (the wait doubles with each). */
  refusals?: number;
}

/** What is kept of one query. */
interface QueryState {
  /** Where the next interval starts (the end of the last one cut). */
  planned?: number;
  /** Where the first interval started: everything from here to the counted-until point is counted. */
  origin?: number;
  /** The newest schedule tick handled. */
  lastTick?: number;
  /** Events by group label values (JSON array), and duration histograms by [histogram name, ...values]. */
  events: Map<string, number>;
  durations: Map<string, HistogramCounts>;
  counted: { data: number; no_data: number };
  lastCounted?: number;
  failures: Record<FailureReason, number>;
  retries: Record<RetryReason, number>;
  bytes: number;
  rows: number;
}

/** One interval's counts, kept apart until all of its files were read. */
interface Tally {
  events: Map<string, number>;
  durations: Map<string, HistogramCounts>;
  rows: number;
  bytes: number;
  /** Values that could not be read (a time field that is not a time): the event is counted, the duration not. */
  badValues: number;
}

const STATE_VERSION = 1;

export interface QueryDeps {
  client: Pick<InsightsClient, 'submit' | 'status' | 'result'>;
  config: IntelepeerConfig;
  /** Opens SFTP sessions (tests may point it elsewhere); default withSftp. */
  sftp?: typeof withSftp;
}

function newQuery(): QueryState {
  return {
    events: new Map(), durations: new Map(), counted: { data: 0, no_data: 0 },
    failures: Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>,
    retries: Object.fromEntries(RETRY_REASONS.map((r) => [r, 0])) as Record<RetryReason, number>,
    bytes: 0, rows: 0,
  };
}

/** YYYY-MM-DDTHH:MM:SSZ, as the query API wants its dates. */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A time field's value (ISO 8601, or `YYYY-MM-DD HH:MM:SS` taken as UTC) to epoch ms; undefined when it is neither. */
export function parseEventTime(s: string): number | undefined {
  const t = s.trim();
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/.test(t)) return undefined;
  const ms = Date.parse(/[Zz]|[+-]\d{2}:?\d{2}$/.test(t) ? t.replace(' ', 'T') : `${t.replace(' ', 'T')}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

const sftpReason = (e: SftpError): SftpReason =>
  ({ SFTP_HOST_KEY: 'host_key', SFTP_AUTH: 'auth', SFTP_CONNECT: 'connect', SFTP_TIMEOUT: 'timeout', SFTP_NOT_FOUND: 'not_found', SFTP_IO: 'io' } as const)[e.code];

/** Counts the bytes that pass (the compressed size of a result file). */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** A result file that could not be read as the gzipped CSV asked for: the interval's files are read again. */
class CorruptResult extends Error {
  constructor(message: string, readonly path: string) {
    super(message);
    this.name = 'CorruptResult';
  }
}

export function createQueryCollector(deps: QueryDeps): Collector {
  const { config, client } = deps;
  const sftpSession = deps.sftp ?? withSftp;
  const queries = new Map<string, QueryConfig>(config.queries.map((q) => [q.name, q]));
  const state = new Map<string, QueryState>(config.queries.map((q) => [q.name, newQuery()]));
  const { events: EVENTS, durations: DURATIONS } = eventFamilies(config.queries);
  const groups = groupLabels(config.queries);
  /** Each query's group_by labels' places among the families' extra labels. */
  const slots = new Map(config.queries.map((q) => [q.name, q.group_by.map((f) => groups.indexOf(labelName(f)))]));
  const scheduleMs = new Map(config.queries.map((q) => [q.name, minIntervalMs(q.schedule)]));
  /** What a query's counters mean: counts carried under another shape (event, fields, filters, labels changed) are not taken over. */
  const shape = (q: QueryConfig) => JSON.stringify([q.event, q.group_by, q.filters, q.histograms]);
  let jobs: Job[] = [];
  /** Ids of the queries submitted lately (bounded), so an id answered twice is never followed twice. */
  let seenGuids = new Set<string>();
  const GUIDS_KEPT = 2000;
  function rememberGuid(guid: string): void {
    seenGuids.add(guid);
    if (seenGuids.size > GUIDS_KEPT) seenGuids = new Set([...seenGuids].slice(-GUIDS_KEPT));
  }
  let sftpUp: number | undefined;
  const sftpErrors = Object.fromEntries(SFTP_ERRORS.map((r) => [r, 0])) as Record<SftpReason, number>;
  /** After a refused submit, no other before this time (the customer's slots are taken, or the query is refused). */
  let submitPausedUntil = 0;
  let submitBackoff = SUBMIT_BACKOFF_MS;
  /** Problems already logged at warn, by kind: a repeat is logged at debug (a fault every minute is one line). */
  const logged = new Set<string>();

  const sftpSettings: SftpSettings = { ...config.sftp };

  function once(ctx: RunContext, kind: string, obj: object, msg: string): void {
    if (logged.has(kind)) ctx.log.debug(obj, msg);
    else {
      logged.add(kind);
      ctx.log.warn(obj, msg);
    }
  }

  /** The fields a query asks for: its group_by fields, then its histograms' fields. */
  function fields(q: QueryConfig): string[] {
    const out = [...q.group_by];
    for (const h of q.histograms) for (const f of [h.start, h.end, h.field]) if (f !== undefined && !out.includes(f)) out.push(f);
    // The API wants at least one field; the time stamp is in every schema.
    return out.length > 0 ? out : ['TimeStamp'];
  }

  /** The POST Q body of an interval: [from, to) on the event's time stamp. */
  function body(q: QueryConfig, job: Job): unknown {
    return {
      timestamp: { $gte: isoSeconds(job.from), $lt: isoSeconds(job.to) },
      data: { [q.event]: { fields: fields(q) } },
      ...(Object.keys(q.filters).length > 0 ? { filters: { [q.event]: q.filters } } : {}),
    };
  }

  /** Cuts [planned, end) into queued intervals of at most max_interval (growing a queued last one). */
  function cut(q: QueryConfig, st: QueryState, end: number, now: number): void {
    while (st.planned !== undefined && st.planned < end) {
      const last = jobs.findLast((j) => j.query === q.name);
      if (last && last.phase === 'queued' && last.to === st.planned && last.to - last.from < q.max_interval) {
        last.to = Math.min(end, last.from + q.max_interval);
        st.planned = last.to;
        continue;
      }
      const to = Math.min(end, st.planned + q.max_interval);
      jobs.push({ query: q.name, from: st.planned, to, cutAt: now, phase: 'queued', downloadFailures: 0 });
      st.planned = to;
    }
  }

  /** Cuts the intervals due on each query's schedule. */
  function plan(now: number): void {
    const minute = Math.floor(now / MINUTE) * MINUTE;
    for (const q of config.queries) {
      const st = state.get(q.name)!;
      const endAt = (tick: number) => Math.floor((tick - q.lag) / SECOND) * SECOND;
      if (st.planned === undefined) {
        // A first start: counts from initial_lookback before now minus the lag, at once.
        st.lastTick = minute;
        st.planned = endAt(minute) - Math.floor(q.initial_lookback / SECOND) * SECOND;
        st.origin = st.planned;
        cut(q, st, endAt(minute), now);
        continue;
      }
      // The newest tick since the last one handled: every minute since `planned` is covered by it.
      const last = st.lastTick ?? minute;
      for (let t = minute; t > last && t > minute - 7 * 24 * 60 * MINUTE; t -= MINUTE) {
        if (!firesAt(q.schedule, 'UTC', t)) continue;
        cut(q, st, endAt(t), now);
        break;
      }
      st.lastTick = Math.max(last, minute);
    }
  }

  /** Saves the state; false when it could not be written (logged). */
  async function save(ctx: RunContext): Promise<boolean> {
    try {
      await ctx.saveState();
      return true;
    } catch (e) {
      ctx.log.error({ err: e }, 'could not write the state file');
      return false;
    }
  }

  /** Puts an interval back in the queue, to be submitted again (a new query). */
  function resubmit(job: Job, reason: RetryReason): void {
    state.get(job.query)!.retries[reason]++;
    job.phase = 'queued';
    delete job.guid;
    delete job.submittedAt;
    job.downloadFailures = 0;
  }

  /** Takes an interval's counts into its query's counters and forgets the interval: one step. */
  function count(job: Job, tally: Tally | undefined, ctx: RunContext): void {
    const st = state.get(job.query)!;
    const q = queries.get(job.query)!;
    if (tally) {
      for (const [key, n] of tally.events) st.events.set(key, (st.events.get(key) ?? 0) + n);
      for (const [key, h] of tally.durations) {
        let mine = st.durations.get(key);
        if (!mine) st.durations.set(key, (mine = new HistogramCounts(DURATION_BUCKETS)));
        mine.merge(h);
      }
      st.counted.data++;
    } else st.counted.no_data++;
    st.lastCounted = ctx.now;
    jobs = jobs.filter((j) => j !== job);
    ctx.log.info({ query: q.name, from: isoSeconds(job.from), to: isoSeconds(job.to), events: tally ? [...tally.events.values()].reduce((a, b) => a + b, 0) : 0 }, 'interval counted');
  }

  /** Reads every status of the jobs running; moves them on. Errors are returned (the jobs kept). */
  async function follow(ctx: RunContext): Promise<unknown[]> {
    const errors: unknown[] = [];
    const running = jobs.filter((j) => j.phase === 'running' && j.guid !== undefined);
    const answers = await Promise.allSettled(running.map((j) => client.status(j.guid!, ctx.signal, ctx.deadline)));
    let changed = false;
    running.forEach((job, i) => {
      const st = state.get(job.query)!;
      const a = answers[i]!;
      if (a.status === 'rejected') {
        // An unknown guid answers 500 with "could not get QueryRequest object" (documented): the
        // query is gone in IntelePeer, and the interval is submitted again.
        const e = a.reason as unknown;
        if (e instanceof UpstreamError && e.status === 500 && /could not get QueryRequest/i.test(e.detail ?? '')) {
          st.failures.lost++;
          once(ctx, `lost:${job.query}`, { query: job.query, guid: job.guid }, 'IntelePeer no longer knows the query: its interval is submitted again');
          resubmit(job, 'lost');
          changed = true;
          return;
        }
        st.failures.status++;
        errors.push(e);
        return;
      }
      const { status, messages } = a.value;
      if (status === 'Pending' && job.submittedAt !== undefined && ctx.now - job.submittedAt >= config.query_timeout) {
        // IntelePeer never finished it: the interval is submitted again (the old query, if it
        // still runs there, holds a slot until it ends: a 429 or two).
        st.failures.timeout++;
        once(ctx, `timeout:${job.query}`, { query: job.query, guid: job.guid, submittedAt: new Date(job.submittedAt).toISOString() }, 'query still Pending after query_timeout: its interval is submitted again');
        resubmit(job, 'timeout');
        changed = true;
      } else if (status === 'Completed') {
        job.phase = 'downloading';
        changed = true;
      } else if (status === 'Failed') {
        // Documented: a Failed query returned no data. The interval has no events.
        ctx.log.info({ query: job.query, guid: job.guid, messages }, 'query found no data: interval counted as empty');
        count(job, undefined, ctx);
        changed = true;
      } else if (status === 'Canceled') {
        st.failures.canceled++;
        once(ctx, `canceled:${job.query}`, { query: job.query, guid: job.guid, messages }, 'IntelePeer canceled the query: its interval is submitted again, cut in halves');
        if (job.to - job.from >= 2 * MIN_SPLIT_MS) {
          const mid = job.from + Math.floor((job.to - job.from) / 2 / SECOND) * SECOND;
          const second: Job = { ...job, from: mid, phase: 'queued', downloadFailures: 0 };
          delete second.guid;
          delete second.submittedAt;
          job.to = mid;
          jobs.splice(jobs.indexOf(job) + 1, 0, second);
        }
        resubmit(job, 'canceled');
        changed = true;
      }
    });
    if (changed) await save(ctx);
    return errors;
  }

  /** Reads one result file into the tally: SFTP -> gunzip -> CSV (the header names the fields). */
  async function readFile(session: SftpSession, path: string, q: QueryConfig, tally: Tally, ctx: RunContext): Promise<void> {
    const wanted = fields(q);
    const counter = new ByteCounter();
    const parser = parse({ columns: true, bom: true, skip_empty_lines: true, relax_column_count: false });
    let header = true;
    try {
      await pipeline(session.read(path), counter, createGunzip(), parser, async (rows: AsyncIterable<Record<string, string>>) => {
        for await (const row of rows) {
          if (header) {
            header = false;
            const missing = wanted.filter((f) => !(f in row));
            if (missing.length > 0) throw new CorruptResult(`its header lacks ${missing.join(', ')}`, path);
          }
          tally.rows++;
          // Keyed by the query's own group_by values; placed among every query's labels when served.
          const values = q.group_by.map((f) => row[f] ?? '');
          const key = JSON.stringify(values);
          tally.events.set(key, (tally.events.get(key) ?? 0) + 1);
          for (const h of q.histograms) {
            let v: number | undefined;
            if (h.field !== undefined) v = Number(row[h.field]);
            else {
              const a = parseEventTime(row[h.start!] ?? '');
              const b = parseEventTime(row[h.end!] ?? '');
              v = a === undefined || b === undefined ? undefined : (b - a) / 1000;
            }
            if (v === undefined || !Number.isFinite(v) || v < 0 || (h.field !== undefined && (row[h.field] ?? '').trim() === '')) {
              tally.badValues++;
              continue;
            }
            const hk = JSON.stringify([h.name, ...values]);
            let hist = tally.durations.get(hk);
            if (!hist) tally.durations.set(hk, (hist = new HistogramCounts(DURATION_BUCKETS)));
            hist.observe(v);
          }
        }
      }, { signal: ctx.signal });
    } catch (e) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (e instanceof SftpError || e instanceof CorruptResult) throw e;
      // zlib (not gzip, cut short) and csv-parse (a row of another width, a quote left open).
      throw new CorruptResult(e instanceof Error ? e.message : String(e), path);
    } finally {
      tally.bytes += counter.bytes;
    }
  }

  /** Reads the files of every finished job it has time for; an interval is counted only when all its files were read. */
  async function download(ctx: RunContext, errors: unknown[]): Promise<void> {
    const ready = jobs.filter((j) => j.phase === 'downloading' && j.guid !== undefined).sort((a, b) => a.from - b.from);
    if (ready.length === 0) return;
    const paths = new Map<Job, string[]>();
    for (const job of ready) {
      try {
        const p = await client.result(job.guid!, ctx.signal, ctx.deadline);
        if (p) paths.set(job, p);
      } catch (e) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        errors.push(e);
        const st = state.get(job.query)!;
        // Only the result's own answer can be a corrupt result (not a token answer met on the way).
        if (!(e instanceof UpstreamError && e.code === 'UPSTREAM_MALFORMED' && e.endpoint === RESULT_ENDPOINT)) {
          st.failures.status++;
          continue;
        }
        // A finished query whose answer names no file the exporter can read: like a corrupt file,
        // asked again, then submitted again.
        st.failures.corrupt++;
        job.downloadFailures++;
        once(ctx, `sentence:${job.query}`, { query: job.query, guid: job.guid, err: e }, 'finished query without readable download paths: asked again, then submitted again');
        if (job.downloadFailures >= config.max_download_attempts) resubmit(job, 'corrupt');
        await save(ctx);
      }
    }
    if (paths.size === 0) return;
    // Wall time, not the run's clock: a download takes as long as it takes.
    const started = performance.now();
    const budgetMs = (ctx.deadline - ctx.now) * DOWNLOAD_SHARE;
    try {
      await sftpSession(sftpSettings, ctx.signal, async (session) => {
        for (const [job, files] of paths) {
          if (performance.now() - started > budgetMs) {
            ctx.log.info({ waiting: [...paths.keys()].filter((j) => j.phase === 'downloading').length }, 'results left to read at the next run');
            break;
          }
          const q = queries.get(job.query)!;
          const st = state.get(job.query)!;
          const tally: Tally = { events: new Map(), durations: new Map(), rows: 0, bytes: 0, badValues: 0 };
          try {
            for (const f of files) await readFile(session, f, q, tally, ctx);
          } catch (e) {
            st.bytes += tally.bytes;
            st.rows += tally.rows;
            if (e instanceof SftpError && e.code !== 'SFTP_NOT_FOUND') throw e; // the session is broken: every job waits
            if (e instanceof SftpError) sftpErrors.not_found++;
            job.downloadFailures++;
            const reason = e instanceof SftpError ? 'download' : 'corrupt';
            st.failures[reason]++;
            once(ctx, `${reason}:${job.query}`, { query: job.query, guid: job.guid, file: (e as CorruptResult).path, reason, err: e, attempt: job.downloadFailures }, `result file of the query could not be read (${reason}): nothing of the interval counted; read again`);
            errors.push(e);
            if (job.downloadFailures >= config.max_download_attempts) resubmit(job, reason);
            await save(ctx);
            continue;
          }
          st.bytes += tally.bytes;
          st.rows += tally.rows;
          if (tally.badValues > 0) once(ctx, `values:${job.query}`, { query: job.query, values: tally.badValues }, 'values of histogram fields that are not times or numbers: their events counted, not observed');
          // Series over the cap are dropped (counted by the engine), their events with them.
          for (const key of [...tally.events.keys()]) if (!ctx.guard.admit(EVENTS.name, `${job.query}\u0000${key}`, ctx.now)) tally.events.delete(key);
          count(job, tally, ctx);
          await save(ctx);
        }
      });
      sftpUp = 1;
    } catch (e) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (!(e instanceof SftpError)) throw e;
      sftpUp = 0;
      sftpErrors[sftpReason(e)]++;
      for (const job of paths.keys()) if (jobs.includes(job) && job.phase === 'downloading') state.get(job.query)!.failures.download++;
      once(ctx, `sftp:${e.code}`, { err: e, host: config.sftp.host, port: config.sftp.port }, 'SFTP failed: results wait on IntelePeer\'s side and are read at the next run');
      errors.push(e);
    }
  }

  /** Submits queued intervals, oldest first, while a slot is free. */
  async function submit(ctx: RunContext, errors: unknown[]): Promise<void> {
    if (ctx.now < submitPausedUntil) return;
    const queued = jobs.filter((j) => j.phase === 'queued').sort((a, b) => a.from - b.from || a.query.localeCompare(b.query));
    for (const job of queued) {
      if (jobs.filter((j) => j.phase === 'running').length >= config.max_running_queries) return;
      if (job.notBefore !== undefined && ctx.now < job.notBefore) continue;
      const q = queries.get(job.query)!;
      const st = state.get(job.query)!;
      let guid: string;
      try {
        guid = await client.submit(body(q, job), ctx.signal, ctx.deadline);
      } catch (e) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const status = e instanceof UpstreamError ? e.status : undefined;
        // 429: the customer's two queries are running (some maybe not ours); 400: the query is
        // refused as written. Both wait, doubling; nothing else is submitted meanwhile.
        const reason: FailureReason = status === 429 ? 'throttled' : status === 400 ? 'rejected' : 'submit';
        st.failures[reason]++;
        if (reason === 'rejected') {
          // This query's problem, not the API's: only it waits, and the other queries go on.
          job.refusals = (job.refusals ?? 0) + 1;
          job.notBefore = ctx.now + Math.min(SUBMIT_BACKOFF_MAX_MS, SUBMIT_BACKOFF_MS * 2 ** (job.refusals - 1));
          once(ctx, `rejected:${q.name}`, { query: q.name, err: e }, 'IntelePeer refused the query as written: check its event, fields and filters');
          errors.push(e);
          continue;
        }
        submitPausedUntil = ctx.now + submitBackoff;
        submitBackoff = Math.min(SUBMIT_BACKOFF_MAX_MS, submitBackoff * 2);
        if (reason === 'throttled') ctx.log.info({ query: q.name, retryInSeconds: (submitPausedUntil - ctx.now) / 1000 }, 'IntelePeer runs the most queries it allows: submitting later');
        else {
          once(ctx, `${reason}:${q.name}`, { query: q.name, err: e }, 'query could not be submitted: tried again later');
          errors.push(e);
        }
        return;
      }
      if (jobs.some((j) => j.guid === guid) || seenGuids.has(guid)) {
        // IntelePeer answered with the id of a query the exporter already has (or had): following
        // it twice would count its result twice. Not taken; the interval is submitted again later.
        st.failures.submit++;
        once(ctx, `guid:${q.name}`, { query: q.name, guid }, 'IntelePeer answered a submit with the id of another query: not taken, submitted again later');
        errors.push(new UpstreamError('UPSTREAM_MALFORMED', `${QUERY_API} ${SUBMIT_ENDPOINT} answered with the id of another query (${guid})`, { api: QUERY_API, endpoint: SUBMIT_ENDPOINT }));
        submitPausedUntil = ctx.now + submitBackoff;
        return;
      }
      rememberGuid(guid);
      submitBackoff = SUBMIT_BACKOFF_MS;
      delete job.notBefore;
      delete job.refusals;
      job.guid = guid;
      job.phase = 'running';
      job.submittedAt = ctx.now;
      ctx.log.info({ query: q.name, guid, from: isoSeconds(job.from), to: isoSeconds(job.to) }, 'query submitted');
      // The guid on disk at once: a restart follows this query instead of running the interval again.
      await save(ctx);
    }
  }

  function emit(ctx: RunContext): void {
    const s = ctx.samples;
    for (const q of config.queries) {
      const st = state.get(q.name)!;
      const slot = slots.get(q.name)!;
      /** The query's group_by values in their places among every query's labels (the others empty). */
      const place = (values: readonly string[]) => {
        const all = new Array<string>(groups.length).fill('');
        values.forEach((v, i) => (all[slot[i]!] = v));
        return all;
      };
      for (const [key, n] of st.events) {
        if (!ctx.guard.admit(EVENTS.name, `${q.name}\u0000${key}`, ctx.now)) continue;
        s.add(EVENTS, [q.name, q.event, ...place(JSON.parse(key) as string[])], n);
      }
      for (const [key, h] of st.durations) {
        const [name, ...values] = JSON.parse(key) as string[];
        if (!ctx.guard.admit(DURATIONS.name, `${q.name}\u0000${key}`, ctx.now)) continue;
        s.addHistogram(DURATIONS, [q.name, q.event, name!, ...place(values)], h);
      }
      const mine = jobs.filter((j) => j.query === q.name);
      for (const p of JOB_PHASES) s.add(QUERY_JOBS, [q.name, p], mine.filter((j) => j.phase === p).length);
      s.add(OLDEST_JOB, [q.name], mine.length === 0 ? 0 : Math.max(0, ctx.now - Math.min(...mine.map((j) => j.cutAt))) / 1000);
      const until = mine.length > 0 ? Math.min(...mine.map((j) => j.from)) : st.planned;
      if (until !== undefined) s.add(COUNTED_UNTIL, [q.name], until / 1000);
      if (st.lastCounted !== undefined) s.add(LAST_COUNTED, [q.name], st.lastCounted / 1000);
      const every = scheduleMs.get(q.name)!;
      if (Number.isFinite(every)) s.add(SCHEDULE_INTERVAL, [q.name], every / 1000);
      s.add(INTERVALS_COUNTED, [q.name, 'data'], st.counted.data);
      s.add(INTERVALS_COUNTED, [q.name, 'no_data'], st.counted.no_data);
      for (const r of FAILURE_REASONS) s.add(FAILURES, [q.name, r], st.failures[r]);
      for (const r of RETRY_REASONS) s.add(RETRIES, [q.name, r], st.retries[r]);
      s.add(RESULT_BYTES, [q.name], st.bytes);
      s.add(RESULT_ROWS, [q.name], st.rows);
    }
    if (sftpUp !== undefined) s.add(SFTP_UP, [], sftpUp);
    for (const r of SFTP_ERRORS) s.add(SFTP_ERRORS_TOTAL, [r], sftpErrors[r]);
  }

  const families: FamilyDef[] = [EVENTS, DURATIONS, ...jobFamilies()];
  return {
    name: QUERIES_COLLECTOR,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families,
    maxSeriesPerFamily: config.max_series_per_metric,
    state: {
      version: STATE_VERSION,
      carry: () => ({
        queries: Object.fromEntries([...state].map(([name, st]) => [name, {
          ...st,
          shape: shape(queries.get(name)!),
          events: Object.fromEntries(st.events),
          durations: Object.fromEntries([...st.durations].map(([k, h]) => [k, h.toJSON()])),
        }])),
        jobs,
        sftpErrors,
        guids: [...seenGuids],
      }),
      adopt: (raw) => adopt(raw),
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      plan(ctx.now);
      const errors: unknown[] = [];
      errors.push(...(await follow(ctx)));
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await download(ctx, errors);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await submit(ctx, errors);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      // Served from what is kept, also when IntelePeer or SFTP did not answer: counters never go stale.
      emit(ctx);
      return errors.length > 0 ? { errors } : {};
    },
  };

  /** Takes over carried state, read defensively; queries no longer configured are dropped. */
  function adopt(raw: unknown): void {
    const s = raw as { queries?: Record<string, unknown>; jobs?: unknown; sftpErrors?: unknown } | null;
    if (!s || typeof s !== 'object') return;
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
    const int = (v: unknown) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : undefined);
    for (const [name, v] of Object.entries(s.queries ?? {})) {
      const q = queries.get(name);
      if (!q || !v || typeof v !== 'object') continue;
      const c = v as Record<string, unknown>;
      const st = newQuery();
      st.planned = num(c.planned);
      st.origin = num(c.origin);
      st.lastTick = num(c.lastTick);
      st.lastCounted = num(c.lastCounted);
      // Counts of another shape (the query's event, fields, filters or the labels changed) would
      // mean something else under these labels: the query's counters start again from 0 (a
      // counter reset, which rate() handles), its intervals and jobs go on.
      const sameShape = c.shape === shape(q);
      const keyFits = (k: string, extra: number) => {
        if (!sameShape) return false;
        try {
          const a = JSON.parse(k) as unknown;
          return Array.isArray(a) && a.length === q.group_by.length + extra && a.every((x) => typeof x === 'string');
        } catch {
          return false;
        }
      };
      for (const [k, n] of Object.entries((c.events ?? {}) as Record<string, unknown>)) if (keyFits(k, 0) && int(n) !== undefined) st.events.set(k, n as number);
      for (const [k, h] of Object.entries((c.durations ?? {}) as Record<string, unknown>)) {
        const restored = keyFits(k, 1) ? HistogramCounts.restore(DURATION_BUCKETS, h) : undefined;
        if (restored) st.durations.set(k, restored);
      }
      const counted = (c.counted ?? {}) as Record<string, unknown>;
      st.counted = { data: int(counted.data) ?? 0, no_data: int(counted.no_data) ?? 0 };
      const failures = (c.failures ?? {}) as Record<string, unknown>;
      for (const r of FAILURE_REASONS) st.failures[r] = int(failures[r]) ?? 0;
      const retries = (c.retries ?? {}) as Record<string, unknown>;
      for (const r of RETRY_REASONS) st.retries[r] = int(retries[r]) ?? 0;
      st.bytes = int(c.bytes) ?? 0;
      st.rows = int(c.rows) ?? 0;
      state.set(name, st);
    }
    jobs = (Array.isArray(s.jobs) ? s.jobs : []).filter((j): j is Job => {
      const x = j as Record<string, unknown> | null;
      if (!x || typeof x.query !== 'string' || !queries.has(x.query) || num(x.from) === undefined || num(x.to) === undefined || (x.from as number) >= (x.to as number)) return false;
      if (!(JOB_PHASES as readonly unknown[]).includes(x.phase) || num(x.cutAt) === undefined) return false;
      if (x.phase !== 'queued' && (typeof x.guid !== 'string' || !/^[A-Za-z0-9_-]{1,100}$/.test(x.guid))) return false;
      x.downloadFailures = int(x.downloadFailures) ?? 0;
      if (num(x.notBefore) === undefined) delete x.notBefore;
      if (int(x.refusals) === undefined) delete x.refusals;
      return true;
    });
    const e = (s.sftpErrors ?? {}) as Record<string, unknown>;
    for (const r of SFTP_ERRORS) sftpErrors[r] = int(e[r]) ?? 0;
    const guids = (s as { guids?: unknown }).guids;
    seenGuids = new Set((Array.isArray(guids) ? guids : []).filter((g): g is string => typeof g === 'string').slice(-GUIDS_KEPT));
    for (const j of jobs) if (j.guid !== undefined) seenGuids.add(j.guid);
  }
}
