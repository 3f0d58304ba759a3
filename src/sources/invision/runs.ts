import { firesAt } from '../../config/cron.js';
import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import { HistogramCounts } from '../../engine/histogram.js';
import { sleep } from '../../engine/limits.js';
import { UpstreamError } from '../../http/errors.js';
import {
  EXPECTED_INTERVAL, IN_PROGRESS, LAST_DURATION, LAST_START, LAST_SUCCESS, RUN_DURATION, RUN_STATUS, RUN_STATUSES, RUNS_LOST, RUNS_TOTAL,
  START_FAILURE_REASONS, START_FAILURES, STARTS_SKIPPED, STARTS_TOTAL, STUCK, dataflowFamilies,
} from './catalogue.js';
import { neverReached, type InvisionClient, type RunStatus } from './client.js';
import type { DataflowConfig, InvisionConfig } from './config.js';
import { readHandovers, type Handover } from './handover.js';

// Profitbase InVision Data Flows: the API can only start a run and read a run's status by id, so
// the exporter owns the runs it watches. It starts each flow on its schedule, writing the intent
// to the state file before the start leaves (a crash then never starts a tick twice), follows every
// run it started or was handed over until it ends, and counts each ended run once.

export const DATAFLOWS_COLLECTOR = 'invision_dataflows';
const MINUTE = 60_000;
/** Run ids of ended runs remembered, so a run handed over again after it ended is not followed twice. */
const ENDED_KEPT = 1000;

type Reason = (typeof START_FAILURE_REASONS)[number];
type Shown = (typeof RUN_STATUSES)[number];

/** A run being followed. */
interface Run {
  flowId: string;
  runId: string;
  /** The start the exporter made (its answer), or the first sighting of a handed-over run. */
  startedAt: number;
  origin: 'started' | 'handover';
  status: RunStatus;
  /** Since when every status read answered 404 (InVision does not know the run); cleared by any answer. */
  unknownSince?: number;
}

/** What the exporter knows of one data flow. */
interface FlowState {
  /** The newest schedule tick handled (started, skipped, or failed not to be retried). */
  lastTick?: number;
  /** The latest run: its id, status as shown, and start. */
  latest?: { runId: string; status: Shown; startedAt: number };
  runs: { succeeded: number; failed: number };
  /** Runs given up: 404 for unknown_run_after. */
  lost: number;
  starts: number;
  skipped: number;
  failures: Record<Reason, number>;
  duration: HistogramCounts;
  lastDuration?: number;
  lastSuccess?: number;
  lastStart?: number;
}

/** A start on its way: on disk before the request leaves; gone once its answer is recorded. */
interface Intent {
  flowId: string;
  tick: number;
  at: number;
}

const STATE_VERSION = 1;

export interface DataflowDeps {
  client: Pick<InvisionClient, 'start' | 'status'>;
  config: InvisionConfig;
  /** Attempts of a start that provably never reached InVision (connection refused, DNS), and the pause between them. */
  startAttempts?: number;
}

function newFlow(): FlowState {
  return { runs: { succeeded: 0, failed: 0 }, lost: 0, starts: 0, skipped: 0, failures: { status: 0, timeout: 0, network: 0, unknown: 0 }, duration: HistogramCounts.of(RUN_DURATION) };
}

export function createDataflowCollector(deps: DataflowDeps): Collector {
  const { config, client } = deps;
  const flowsById = new Map(config.dataflows.map((f) => [f.id, f]));
  const flows = new Map<string, FlowState>(config.dataflows.map((f) => [f.id, newFlow()]));
  let inflight: Run[] = [];
  let intents: Intent[] = [];
  let ended: string[] = [];
  /** Intents carried from a process (or pipeline) that stopped before their answer: reported once, never repeated. */
  let orphaned: Intent[] = [];

  const labels = (f: DataflowConfig) => [f.id, f.name];

  /** The newest tick of the flow's schedule that is due and not handled yet (within start_grace), if any. */
  function dueTick(f: DataflowConfig, st: FlowState, now: number): number | undefined {
    if (!f.schedule) return undefined;
    const minute = Math.floor(now / MINUTE) * MINUTE;
    // A flow seen for the first time (no state): ticks before now are not started, since another
    // process may have started them; the first tick it starts is a later one.
    if (st.lastTick === undefined) {
      st.lastTick = minute;
      return undefined;
    }
    const oldest = Math.max(st.lastTick + MINUTE, minute - config.start_grace + MINUTE);
    for (let t = minute; t >= oldest; t -= MINUTE) if (firesAt(f.schedule, config.timezone, t)) return t;
    return undefined;
  }

  function setLatest(st: FlowState, run: Run, shown: Shown): void {
    if (!st.latest || st.latest.runId === run.runId || run.startedAt >= st.latest.startedAt) st.latest = { runId: run.runId, status: shown, startedAt: run.startedAt };
  }

  function shown(run: Run, f: DataflowConfig, now: number): Shown {
    if (run.status === 'Succeeded') return 'succeeded';
    if (run.status === 'Failed') return 'failed';
    if (now - run.startedAt > f.timeout) return 'stuck';
    return run.status === 'Pending' ? 'pending' : 'running';
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

  /** Starts the flow for `tick`: the intent on disk first, then one POST (repeated only if it never reached InVision). */
  async function start(f: DataflowConfig, st: FlowState, tick: number, ctx: RunContext): Promise<void> {
    const before = st.lastTick;
    const intent: Intent = { flowId: f.id, tick, at: ctx.now };
    intents.push(intent);
    st.lastTick = tick;
    if (!(await save(ctx))) {
      // Without the intent on disk a crash could start this tick twice: not now; the next run tries again.
      intents = intents.filter((i) => i !== intent);
      st.lastTick = before;
      return;
    }
    const attempts = deps.startAttempts ?? Math.max(1, config.retries + 1);
    let reason: Reason | undefined;
    let error: unknown;
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await client.start(f.id, ctx.signal, ctx.deadline);
        const run: Run = { flowId: f.id, runId: answer.runId, startedAt: ctx.now, origin: 'started', status: answer.status };
        st.starts++;
        // InVision answered with a run already followed or already ended (the run in progress, say):
        // it is not a second run, and is not followed (nor counted) twice.
        if (inflight.some((r) => r.flowId === f.id && r.runId === run.runId) || ended.includes(`${f.id}\u0000${run.runId}`)) {
          ctx.log.warn({ flowId: f.id, flow: f.name, runId: run.runId }, 'InVision answered a start with a run the exporter already knows: followed once');
          break;
        }
        inflight.push(run);
        st.lastStart = ctx.now;
        setLatest(st, run, shown(run, f, ctx.now));
        ctx.log.info({ flowId: f.id, flow: f.name, runId: run.runId, tick: new Date(tick).toISOString() }, 'data flow started');
        break;
      } catch (e) {
        error = e;
        if (neverReached(e) && attempt < attempts && !ctx.signal.aborted) {
          await sleep(Math.min(config.retry_max_delay, config.retry_base_delay * 2 ** (attempt - 1)), ctx.signal).catch(() => {});
          if (!ctx.signal.aborted) continue;
        }
        // An error status means InVision answered (no run); a broken or missing answer may hide one.
        const answered = e instanceof UpstreamError && (e.code === 'UPSTREAM_STATUS' || e.code === 'UPSTREAM_AUTH' || e.code === 'UPSTREAM_THROTTLED');
        reason = neverReached(e) ? 'network' : answered ? 'status' : 'timeout';
        break;
      }
    }
    intents = intents.filter((i) => i !== intent);
    if (reason) {
      st.failures[reason]++;
      // Never reached InVision: the tick may be tried again (within start_grace); any other
      // failure may have started a run, so it is shown, not repeated.
      if (reason === 'network') st.lastTick = before;
      const what = { flowId: f.id, flow: f.name, reason, err: error };
      if (reason === 'network') ctx.log.warn(what, 'data flow start did not reach InVision: tried again at the next run');
      else if (reason === 'status') ctx.log.error(what, 'InVision refused to start the data flow');
      else ctx.log.error(what, 'data flow start got no usable answer: a run may have started; not repeated (hand its run id over to follow it)');
    }
    await save(ctx);
  }

  /** Takes over runs handed over by other schedulers. */
  function adoptHandovers(found: Handover[], ctx: RunContext): Handover[] {
    const taken: Handover[] = [];
    for (const h of found) {
      // Another shard's flow (a folder shared by the replicas): its file is left for that shard.
      if (config.handoverOwned && !config.handoverOwned(h.flowId)) continue;
      const f = flowsById.get(h.flowId);
      if (!f) {
        ctx.log.warn({ file: h.file, flowId: h.flowId }, 'handed-over run of a data flow not in the configuration: ignored');
        taken.push(h);
        continue;
      }
      if (!inflight.some((r) => r.runId === h.runId && r.flowId === h.flowId) && !ended.includes(`${h.flowId}\u0000${h.runId}`)) {
        const run: Run = { flowId: f.id, runId: h.runId, startedAt: ctx.now, origin: 'handover', status: 'Pending' };
        inflight.push(run);
        const st = flows.get(f.id)!;
        st.lastStart = Math.max(st.lastStart ?? 0, ctx.now);
        setLatest(st, run, 'pending');
        ctx.log.info({ flowId: f.id, flow: f.name, runId: h.runId }, 'following a handed-over data flow run');
      }
      taken.push(h);
    }
    return taken;
  }

  /** Reads the status of every run in flight; an error keeps the run (and is returned). */
  async function follow(ctx: RunContext): Promise<unknown[]> {
    const errors: unknown[] = [];
    const answers = await Promise.allSettled(inflight.map((r) => client.status(r.flowId, r.runId, ctx.signal, ctx.deadline)));
    const still: Run[] = [];
    inflight.forEach((run, i) => {
      const f = flowsById.get(run.flowId)!;
      const st = flows.get(run.flowId)!;
      const a = answers[i]!;
      if (a.status === 'rejected') {
        errors.push(a.reason);
        if (!(a.reason instanceof UpstreamError && a.reason.code === 'UPSTREAM_STATUS' && a.reason.status === 404)) {
          still.push(run);
          return;
        }
        // InVision does not know the run (a wrong handed-over id, its history purged, the flow
        // deleted): followed for unknown_run_after, then given up, so it does not block the flow's
        // starts (allow_overlap off) nor fail every poll forever.
        run.unknownSince ??= ctx.now;
        if (ctx.now - run.unknownSince < config.unknown_run_after) {
          still.push(run);
          return;
        }
        st.lost++;
        ended.push(`${run.flowId}\u0000${run.runId}`);
        if (st.latest?.runId === run.runId) st.latest = { ...st.latest, status: 'lost' };
        ctx.log.error({ flowId: f.id, flow: f.name, runId: run.runId, since: new Date(run.unknownSince).toISOString() }, 'InVision does not know the data flow run (404 on every status read): given up, not counted as ended');
        return;
      }
      delete run.unknownSince;
      run.status = a.value.status;
      if (run.status === 'Succeeded' || run.status === 'Failed') {
        // Never negative, also when the clock stepped back since the start.
        const duration = Math.max(0, ctx.now - run.startedAt) / 1000;
        if (run.status === 'Succeeded') {
          st.runs.succeeded++;
          st.lastSuccess = ctx.now;
        } else st.runs.failed++;
        st.duration.observe(duration);
        st.lastDuration = duration;
        ended.push(`${run.flowId}\u0000${run.runId}`);
        ctx.log.info({ flowId: f.id, flow: f.name, runId: run.runId, status: run.status, durationSeconds: duration }, 'data flow run ended');
      } else still.push(run);
      setLatest(st, run, shown(run, f, ctx.now));
    });
    inflight = still;
    if (ended.length > ENDED_KEPT) ended = ended.slice(-ENDED_KEPT);
    return errors;
  }

  function emit(ctx: RunContext): void {
    const s = ctx.samples;
    for (const f of config.dataflows) {
      const st = flows.get(f.id)!;
      const l = labels(f);
      if (st.latest) {
        // A stuck run that is still the latest shows as stuck; every status is re-derived each run.
        const run = inflight.find((r) => r.runId === st.latest!.runId && r.flowId === f.id);
        const status = run ? shown(run, f, ctx.now) : st.latest.status;
        for (const x of RUN_STATUSES) s.add(RUN_STATUS, [...l, x], x === status ? 1 : 0);
      }
      s.add(RUNS_TOTAL, [...l, 'succeeded'], st.runs.succeeded);
      s.add(RUNS_TOTAL, [...l, 'failed'], st.runs.failed);
      s.add(RUNS_LOST, l, st.lost);
      s.addHistogram(RUN_DURATION, l, st.duration);
      if (st.lastDuration !== undefined) s.add(LAST_DURATION, l, st.lastDuration);
      if (st.lastSuccess !== undefined) s.add(LAST_SUCCESS, l, st.lastSuccess / 1000);
      if (st.lastStart !== undefined) s.add(LAST_START, l, st.lastStart / 1000);
      const mine = inflight.filter((r) => r.flowId === f.id);
      s.add(IN_PROGRESS, l, mine.length);
      s.add(STUCK, l, mine.filter((r) => shown(r, f, ctx.now) === 'stuck').length);
      s.add(STARTS_TOTAL, l, st.starts);
      s.add(STARTS_SKIPPED, l, st.skipped);
      for (const r of START_FAILURE_REASONS) s.add(START_FAILURES, [...l, r], st.failures[r]);
      if (f.expected_interval > 0) s.add(EXPECTED_INTERVAL, l, f.expected_interval / 1000);
    }
  }

  return {
    name: DATAFLOWS_COLLECTOR,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families: dataflowFamilies(),
    maxSeriesPerFamily: config.max_series_per_metric,
    state: {
      version: STATE_VERSION,
      carry: () => ({
        flows: Object.fromEntries([...flows].map(([id, st]) => [id, { ...st, duration: st.duration.toJSON() }])),
        inflight,
        // Starts on their way, and those of an earlier process not reported yet (reported once, as unknown).
        intents: [...orphaned, ...intents],
        ended,
      }),
      adopt: (raw) => adopt(raw),
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      for (const i of orphaned) {
        const f = flowsById.get(i.flowId);
        if (!f) continue;
        flows.get(f.id)!.failures.unknown++;
        ctx.log.error({ flowId: f.id, flow: f.name, tick: new Date(i.tick).toISOString() }, 'the exporter stopped between recording a data flow start and its answer: a run may have started; not repeated (hand its run id over to follow it)');
      }
      if (orphaned.length > 0) {
        orphaned = [];
        await save(ctx);
      }
      // Runs handed over by other schedulers: followed from now on, the file removed once that is on disk.
      if (config.handover_dir) {
        const found = await readHandovers(config.handover_dir, ctx.log);
        if (found.length > 0) {
          const taken = adoptHandovers(found, ctx);
          if (await save(ctx)) for (const h of taken) await h.remove();
        }
      }
      // Every run in flight, to its end (first: a start is skipped only for a run still in flight).
      const errors = await follow(ctx);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      // Starts due on the flows' schedules.
      for (const f of config.dataflows) {
        const st = flows.get(f.id)!;
        const tick = dueTick(f, st, ctx.now);
        if (tick === undefined) continue;
        if (!config.allow_overlap && inflight.some((r) => r.flowId === f.id)) {
          st.skipped++;
          st.lastTick = tick;
          ctx.log.warn({ flowId: f.id, flow: f.name, tick: new Date(tick).toISOString() }, 'scheduled data flow start skipped: its previous run is still in flight');
          continue;
        }
        await start(f, st, tick, ctx);
        if (ctx.signal.aborted) throw ctx.signal.reason;
      }
      // Always served from what the exporter knows, even when InVision did not answer: a long run's
      // series stay while it is followed.
      emit(ctx);
      return errors.length > 0 ? { errors } : {};
    },
  };

  /** Takes over carried state, read defensively; state of flows no longer configured is dropped. */
  function adopt(raw: unknown): void {
    const s = raw as { flows?: Record<string, unknown>; inflight?: unknown; intents?: unknown; ended?: unknown } | null;
    if (!s || typeof s !== 'object') return;
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
    for (const [id, v] of Object.entries(s.flows ?? {})) {
      if (!flows.has(id) || !v || typeof v !== 'object') continue;
      const c = v as Record<string, unknown>;
      const st = newFlow();
      st.lastTick = num(c.lastTick);
      const runs = c.runs as Record<string, unknown> | undefined;
      st.runs = { succeeded: num(runs?.succeeded) ?? 0, failed: num(runs?.failed) ?? 0 };
      st.lost = num(c.lost) ?? 0;
      st.starts = num(c.starts) ?? 0;
      st.skipped = num(c.skipped) ?? 0;
      const failures = c.failures as Record<string, unknown> | undefined;
      for (const r of START_FAILURE_REASONS) st.failures[r] = num(failures?.[r]) ?? 0;
      st.duration = HistogramCounts.restore(RUN_DURATION.buckets!, c.duration) ?? HistogramCounts.of(RUN_DURATION);
      st.lastDuration = num(c.lastDuration);
      st.lastSuccess = num(c.lastSuccess);
      st.lastStart = num(c.lastStart);
      const latest = c.latest as Record<string, unknown> | undefined;
      if (latest && typeof latest.runId === 'string' && (RUN_STATUSES as readonly unknown[]).includes(latest.status) && num(latest.startedAt) !== undefined) {
        st.latest = { runId: latest.runId, status: latest.status as Shown, startedAt: latest.startedAt as number };
      }
      flows.set(id, st);
    }
    const statuses = new Set(['Pending', 'Running', 'Succeeded', 'Failed']);
    inflight = (Array.isArray(s.inflight) ? s.inflight : []).filter((r): r is Run => {
      const x = r as Record<string, unknown> | null;
      return !!x && typeof x.flowId === 'string' && flows.has(x.flowId) && typeof x.runId === 'string' && num(x.startedAt) !== undefined && (x.origin === 'started' || x.origin === 'handover') && statuses.has(x.status as string);
    });
    for (const r of inflight) if (num(r.unknownSince) === undefined) delete r.unknownSince;
    ended = (Array.isArray(s.ended) ? s.ended : []).filter((e): e is string => typeof e === 'string').slice(-ENDED_KEPT);
    const carried = (Array.isArray(s.intents) ? s.intents : []).filter((i): i is Intent => {
      const x = i as Record<string, unknown> | null;
      return !!x && typeof x.flowId === 'string' && num(x.tick) !== undefined;
    });
    // A start recorded but never answered in the process (or pipeline) that wrote this: unknown.
    orphaned.push(...carried);
    intents = [];
  }
}
