import { setMaxListeners } from 'node:events';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { Collector } from './collector.js';
import type { CardinalityGuard } from './guard.js';
import { renderSampleSet } from './render.js';
import { SampleSet } from './samples.js';
import type { EngineMetrics } from './self-metrics.js';

export type RunResult = 'success' | 'failure' | 'skipped';

export interface CollectorStatus {
  name: string;
  schedule: string;
  running: boolean;
  lastRunAt?: number;
  lastResult?: 'success' | 'failure';
  lastError?: string;
  lastErrorCode?: string;
  /** Last run that succeeded in full. */
  lastSuccessAt?: number;
  /** Last run that published data, in full or in part (a partly failed run publishes what succeeded). */
  lastPublishAt?: number;
  lastDurationMs?: number;
  series: number;
  published: boolean;
}

/** Where the runner's results go: rendered text of a collector, swapped in whole, or withdrawn. */
export interface Publisher {
  publish(collector: string, text: string): Promise<void>;
  withdraw(collector: string): void;
}

export interface RunnerOptions {
  collectors: readonly Collector[];
  publisher: Publisher;
  metrics: EngineMetrics;
  log: Logger;
  clock: Clock;
  guard: CardinalityGuard;
  /** A collector that has published nothing for longer than this has its data withdrawn. */
  stalenessMs: number;
  /** Writes every collector's state now (RunContext.saveState). */
  saveState: () => Promise<boolean>;
  /** Called after every publish (the state file hangs off this). */
  onPublish?: (collector: string) => void;
  /** Called whenever a collector's status changes (a run starts or ends, data is withdrawn). */
  onStatus?: () => void;
}

interface State {
  status: CollectorStatus;
  /** A missed tick has been logged at warn since the last run started. */
  missedLogged?: boolean;
  inflight?: Promise<RunResult>;
  controller?: AbortController;
}

/** Runs collectors (on schedule or on demand), one run at a time each, and publishes their results. */
export class Runner {
  private readonly states = new Map<string, State>();
  private readonly tasks: ScheduledTask[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RunnerOptions) {
    const seen = new Map<string, string>();
    for (const c of opts.collectors) {
      if (this.states.has(c.name)) throw new Error(`duplicate collector ${c.name}`);
      for (const f of c.families) {
        const owner = seen.get(f.name);
        if (owner) throw new Error(`metric family ${f.name} is emitted by both ${owner} and ${c.name}`);
        seen.set(f.name, c.name);
      }
      this.states.set(c.name, {
        status: { name: c.name, schedule: c.schedule, running: false, series: 0, published: false },
      });
      // Known series exist from the start, so alerts see 0 rather than nothing (INS "avoid missing metrics").
      opts.metrics.collectorUp.set({ collector: c.name }, 0);
      opts.metrics.collectorRuns.inc({ collector: c.name, result: 'success' }, 0);
      opts.metrics.collectorRuns.inc({ collector: c.name, result: 'failure' }, 0);
      opts.metrics.collectorSkipped.inc({ collector: c.name }, 0);
      opts.metrics.collectorSeries.set({ collector: c.name }, 0);
    }
  }

  get collectorNames(): string[] {
    return [...this.states.keys()];
  }

  /** Runs one collector now unless a run of it is already in flight (then it is skipped and counted). */
  run(name: string): Promise<RunResult> {
    const st = this.states.get(name);
    const collector = this.opts.collectors.find((c) => c.name === name);
    if (!st || !collector) return Promise.reject(new Error(`unknown collector ${name}`));
    if (st.inflight) {
      this.opts.metrics.collectorSkipped.inc({ collector: name });
      this.opts.log.warn({ collector: name }, 'collector run skipped: previous run still in progress');
      return Promise.resolve('skipped');
    }
    st.missedLogged = false;
    st.inflight = this.execute(collector, st).finally(() => {
      st.inflight = undefined;
      st.controller = undefined;
      st.status.running = false;
      this.opts.onStatus?.();
    });
    this.opts.onStatus?.();
    return st.inflight;
  }

  /** Runs every collector once, concurrently; true when all succeeded. */
  async runAll(): Promise<boolean> {
    const results = await Promise.all(this.collectorNames.map((n) => this.run(n)));
    return results.every((r) => r === 'success');
  }

  /** Starts every collector on its schedule, plus the staleness sweep. */
  start(): void {
    const { log, metrics } = this.opts;
    // node-cron's own messages become JSON log lines, not coloured text on stderr.
    const cronLog = log.child({ component: 'node-cron' });
    const logger = {
      info: (m: string) => cronLog.info(m),
      warn: (m: string) => cronLog.warn(m),
      error: (m: string | Error, err?: Error) => cronLog.error({ err: err ?? (m instanceof Error ? m : undefined) }, typeof m === 'string' ? m : 'node-cron error'),
      debug: (m: string | Error) => cronLog.debug(typeof m === 'string' ? m : m.message),
    };
    for (const c of this.opts.collectors) {
      const task = cron.schedule(c.schedule, () => void this.run(c.name), { name: c.name, logger });
      // A tick the scheduler could not fire on time (the event loop was blocked past its tolerance)
      // is a skipped run like an overlap: counted, and logged once until the next run starts.
      task.on('execution:missed', (ctx) => {
        metrics.collectorSkipped.inc({ collector: c.name });
        const st = this.states.get(c.name)!;
        const level = st.missedLogged ? 'debug' : 'warn';
        st.missedLogged = true;
        log[level]({ collector: c.name, tick: ctx.date.toISOString() }, 'collector run skipped: the scheduler missed its tick');
      });
      this.tasks.push(task);
    }
    this.sweepTimer = setInterval(() => this.sweepStale(), 10_000);
    this.sweepTimer.unref();
  }

  /** Stops schedules; waits up to graceMs for in-flight runs, then aborts them. */
  async stop(graceMs: number): Promise<void> {
    for (const t of this.tasks.splice(0)) await t.destroy();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const inflight = [...this.states.values()].flatMap((s) => (s.inflight ? [s.inflight] : []));
    if (inflight.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), graceMs);
    });
    const outcome = await Promise.race([Promise.allSettled(inflight).then(() => 'done' as const), graceOver]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.opts.log.warn({ graceMs }, 'shutdown grace period over: aborting in-flight collector runs');
      for (const s of this.states.values()) s.controller?.abort(new Error('exporter shutting down'));
      await Promise.allSettled(inflight);
    }
  }

  /**
   * Takes over the last-run state of same-named collectors from the runner of the previous config,
   * so a reload neither flips /-/ready nor loses track of data already published.
   */
  inherit(previous: Runner): void {
    for (const [name, st] of this.states) {
      const old = previous.states.get(name);
      if (!old) continue;
      st.status = { ...old.status, schedule: st.status.schedule, running: false };
      this.opts.metrics.collectorUp.set({ collector: name }, old.status.lastResult === 'success' ? 1 : 0);
      this.opts.metrics.collectorSeries.set({ collector: name }, old.status.published ? old.status.series : 0);
    }
  }

  status(): CollectorStatus[] {
    return [...this.states.values()].map((s) => ({ ...s.status }));
  }

  /** True once every collector has published at least once. */
  ready(): boolean {
    return [...this.states.values()].every((s) => s.status.lastPublishAt !== undefined);
  }

  /** Withdraws the data of collectors whose last success is older than the staleness window. */
  sweepStale(): void {
    const now = this.opts.clock.now();
    for (const [name, st] of this.states) {
      const last = st.status.lastPublishAt;
      if (st.status.published && last !== undefined && now - last > this.opts.stalenessMs) {
        this.opts.publisher.withdraw(name);
        st.status.published = false;
        st.status.series = 0;
        this.opts.metrics.collectorSeries.set({ collector: name }, 0);
        this.opts.log.warn(
          { collector: name, lastPublish: new Date(last).toISOString(), stalenessMs: this.opts.stalenessMs },
          'collector data withdrawn: no successful run within the staleness window',
        );
        this.opts.onStatus?.();
      }
    }
  }

  /** Health bookkeeping of a failed (or partly failed) run: one warning per new failure, repeats at debug. */
  private recordFailure(st: State, name: string, err: unknown, failedParts: number, msg: string): void {
    const { metrics, log } = this.opts;
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : String(err);
    const level = st.status.lastResult !== 'failure' || st.status.lastErrorCode !== code ? 'warn' : 'debug';
    log[level]({ collector: name, err, code, ...(failedParts > 1 ? { failedParts } : {}) }, msg);
    st.status.lastResult = 'failure';
    st.status.lastError = failedParts > 1 ? `${message} (and ${failedParts - 1} more failed parts)` : message;
    st.status.lastErrorCode = code;
    metrics.collectorUp.set({ collector: name }, 0);
    metrics.collectorRuns.inc({ collector: name, result: 'failure' });
  }

  private async execute(collector: Collector, st: State): Promise<RunResult> {
    const { metrics, clock, log, publisher } = this.opts;
    const name = collector.name;
    const started = clock.now();
    const wallStart = performance.now();
    const controller = new AbortController();
    setMaxListeners(0, controller.signal); // the collector may hang many requests off it
    st.controller = controller;
    st.status.running = true;
    st.status.lastRunAt = started;
    const deadline = started + collector.timeoutMs;
    const timer = setTimeout(
      () => controller.abort(Object.assign(new Error(`run deadline of ${collector.timeoutMs} ms exceeded`), { code: 'DEADLINE_EXCEEDED' })),
      collector.timeoutMs,
    );
    const samples = new SampleSet();
    try {
      const aborted = new Promise<never>((_, reject) => {
        controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
      });
      const collecting = collector.collect({
        signal: controller.signal,
        deadline,
        now: started,
        log: log.child({ collector: name }),
        samples,
        guard: this.opts.guard,
        saveState: this.opts.saveState,
      });
      collecting.catch(() => {}); // settled below, or after an abort
      let outcome;
      try {
        outcome = await Promise.race([collecting, aborted]);
      } catch (e) {
        // Collectors honour the signal; give this one a moment to wind down so its requests do not
        // overlap the next run, which stays skipped until it has.
        await Promise.race([collecting.catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
        throw e;
      }
      const text = renderSampleSet(samples);
      const finished = clock.now();
      st.status.published = true;
      st.status.lastPublishAt = finished;
      st.status.series = samples.size;
      metrics.collectorSeries.set({ collector: name }, samples.size);
      if (outcome.newestDataTimestamp !== undefined) metrics.dataNewest.set({ collector: name }, outcome.newestDataTimestamp / 1000);
      const errors = outcome.errors ?? [];
      let result: RunResult;
      if (errors.length > 0) {
        // Partly failed: what succeeded is published, but the collector is not healthy.
        this.recordFailure(st, name, errors[0], errors.length, 'collector run partly failed');
        result = 'failure';
      } else {
        const recovered = st.status.lastResult === 'failure';
        st.status.lastResult = 'success';
        st.status.lastSuccessAt = finished;
        st.status.lastError = undefined;
        st.status.lastErrorCode = undefined;
        metrics.collectorUp.set({ collector: name }, 1);
        metrics.collectorRuns.inc({ collector: name, result: 'success' });
        metrics.collectorLastSuccess.set({ collector: name }, finished / 1000);
        log.debug({ collector: name, series: samples.size, durationMs: Math.round(performance.now() - wallStart) }, 'collector run succeeded');
        if (recovered) log.info({ collector: name }, 'collector recovered');
        result = 'success';
      }
      // The state goes to disk before the counters are served: after a crash the exporter comes
      // back with counters at least as high as any scrape saw, so rate() never reads a reset it
      // would count twice. A failed write is logged and counted by the state file; serving goes on.
      if (collector.state) await this.opts.saveState().catch(() => {});
      // Health metrics first, so the publish carries them together with the data.
      await publisher.publish(name, text);
      this.opts.onPublish?.(name);
      return result;
    } catch (err) {
      this.recordFailure(st, name, err, 1, 'collector run failed');
      this.sweepStale();
      return 'failure';
    } finally {
      clearTimeout(timer);
      const ms = performance.now() - wallStart;
      st.status.lastDurationMs = ms;
      metrics.collectorDuration.set({ collector: name }, ms / 1000);
    }
  }
}

function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return 'COLLECTOR_ERROR';
}
