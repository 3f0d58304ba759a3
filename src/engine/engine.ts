import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Config } from '../config/load.js';
import { HttpClient } from '../http/client.js';
import { createHttpMetrics, type HttpMetrics } from '../http/metrics.js';
import { SOURCES } from '../sources/index.js';
import { systemClock, type Clock } from './clock.js';
import type { Collector } from './collector.js';
import { dataPart, ENGINE_SELF_PART, makePart, type PartSink } from './part.js';
import { CardinalityGuard } from './guard.js';
import { createBudgetMetrics, RequestBudget, WindowBudget, type BudgetMetrics } from './limits.js';
import { Runner, type CollectorStatus } from './runner.js';
import { createEngineMetrics, type EngineMetrics } from './self-metrics.js';
import { shardBlock, type SharedLimit } from './shard.js';
import type { AnySource, SourceServices } from './source.js';
import { StateFile, type VersionedState } from './state-file.js';
import { OtlpMetrics } from '../otlp/metrics.js';
import type { OtlpPusher } from '../otlp/pusher.js';

export interface EngineOptions {
  config: Config;
  log: Logger;
  sink: PartSink;
  version: string;
  clock?: Clock;
  sources?: readonly AnySource[];
  /**
   * The engine has a thread of its own (worker mode): it compresses on that thread instead of
   * libuv's pool, so all of its work runs at the thread's lowered priority.
   */
  ownThread?: boolean;
}

const DEFAULT_MAX_SERIES = 5000;
/** Self-metrics are rendered at most this often (and at each publish). */
const SELF_RENDER_MS = 1000;

interface Pipeline {
  config: Config;
  runner: Runner;
  collectors: Collector[];
  http: HttpClient[];
}

/**
 * Everything but the HTTP server: builds each configured source's collectors, runs them on their
 * schedules, renders and gzips what they publish and the exporter's own metrics, keeps the durable
 * state, and reloads. It runs on a worker thread in production (src/engine/worker.ts), so the
 * thread that serves /metrics never waits on it; tests and --once run it in-process.
 */
export class Engine {
  readonly registry = new Registry();
  readonly metrics: EngineMetrics;
  readonly clock: Clock;
  private readonly log: Logger;
  private readonly sources: readonly AnySource[];
  private readonly httpMetrics: HttpMetrics;
  private readonly budgetMetrics: BudgetMetrics;
  private readonly sourceSelf = new Map<string, unknown>();
  private readonly budgets = new Map<string, RequestBudget | WindowBudget>();
  private readonly stateFile: StateFile | undefined;
  private pipeline: Pipeline;
  private started = false;
  private changes: Promise<void> = Promise.resolve();
  private selfTimer: NodeJS.Timeout | undefined;
  private selfChain: Promise<void> = Promise.resolve();
  private lastSelfText: string | undefined;
  private selfPending = false;
  private readonly otlpMetrics: OtlpMetrics;
  private otlp: OtlpPusher | undefined;
  /** Settles when the pusher of the config in force is loaded (the OpenTelemetry packages load only then). */
  private otlpLoading: Promise<void> = Promise.resolve();
  /** Each collector's last published text, kept only while an OTLP push is configured. */
  private readonly dataTexts = new Map<string, string>();
  /** The serving thread's process metrics, as it last rendered them (OTLP only). */
  private processText = '';
  /** Called whenever a collector's status changes. */
  onStatus: () => void = () => {};
  /** Called after each collector's publish has been handed to the sink. */
  onPublished: () => void = () => {};

  constructor(private readonly opts: EngineOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
    this.sources = opts.sources ?? SOURCES;
    this.metrics = createEngineMetrics(this.registry, opts.version);
    this.httpMetrics = createHttpMetrics(this.registry);
    this.budgetMetrics = createBudgetMetrics(this.registry);
    for (const s of this.sources) if (s.selfMetrics) this.sourceSelf.set(s.name, s.selfMetrics(this.registry));
    this.otlpMetrics = new OtlpMetrics(this.registry);
    void this.loadOtlp(opts.config);
    this.pipeline = this.buildPipeline(opts.config);
    // The state file's path is read at start-up only (a reload keeps the file it started with).
    const path = opts.config.engine.state_file;
    if (path) {
      this.stateFile = new StateFile(path, this.log, () => this.carriedState(), (ok) => this.metrics.stateWrites.inc({ result: ok ? 'success' : 'failure' }));
      this.metrics.stateWrites.inc({ result: 'success' }, 0);
      this.metrics.stateWrites.inc({ result: 'failure' }, 0);
      const saved = this.stateFile.load();
      for (const c of this.pipeline.collectors) {
        const s = saved[c.name];
        if (!c.state || !s) continue;
        if (s.version !== c.state.version) {
          this.log.warn({ collector: c.name, found: s.version, expected: c.state.version }, 'saved collector state has another format version: starting the collector clean');
          continue;
        }
        c.state.adopt(s.state);
      }
    }
  }

  get config(): Config {
    return this.pipeline.config;
  }

  get runner(): Runner {
    return this.pipeline.runner;
  }

  status(): CollectorStatus[] {
    return this.runner.status();
  }

  ready(): boolean {
    return this.runner.ready();
  }

  /** Starts the schedules, the self-metrics refresh and a first run of every collector. */
  start(): void {
    this.started = true;
    this.runner.start();
    void this.runner.runAll();
    this.selfTimer = setInterval(() => this.refreshSelf(), SELF_RENDER_MS);
    this.selfTimer.unref();
    this.refreshSelf();
    this.otlp?.start();
  }

  /**
   * Builds the OTLP pusher of a config that has an `otlp:` block (the one in force must be stopped
   * first), loading the OpenTelemetry packages then and only then: a config without the block does
   * not pay their memory. Its health series show while a block is configured.
   */
  private loadOtlp(config: Config): Promise<void> {
    this.otlp = undefined;
    this.otlpMetrics.show(config.otlp !== undefined);
    const settings = config.otlp;
    if (!settings) return (this.otlpLoading = Promise.resolve());
    this.otlpLoading = import('../otlp/pusher.js').then(
      ({ OtlpPusher }) => {
        if (JSON.stringify(this.config.otlp) !== JSON.stringify(settings)) return; // replaced meanwhile
        this.otlp = new OtlpPusher({
          settings,
          log: this.log.child({ component: 'otlp' }),
          metrics: this.otlpMetrics,
          version: this.opts.version,
          now: () => this.clock.now(),
          texts: async () => [...this.dataTexts.values(), await this.registry.metrics(), this.processText],
        });
        if (this.started) this.otlp.start();
      },
      (err: unknown) => this.log.error({ err }, 'OTLP push: cannot load the OpenTelemetry exporter'),
    );
    return this.otlpLoading;
  }

  /** Pushes to the OTLP receiver now (tests); false when no push is configured or it failed. */
  async pushOtlp(): Promise<boolean> {
    await this.otlpLoading;
    return this.otlp ? this.otlp.push() : false;
  }

  /** The serving thread's process metrics text, for the OTLP push (it is rendered there). */
  setProcessText(text: string): void {
    if (this.config.otlp) this.processText = text;
  }

  /** Runs every collector once; true when all succeeded. */
  runOnce(): Promise<boolean> {
    return this.runner.runAll();
  }

  /** Writes every collector's state now; false when no state file is configured. */
  async saveState(): Promise<boolean> {
    if (!this.stateFile) return false;
    await this.stateFile.save();
    return true;
  }

  /**
   * Swaps in a new config: schedules stop, in-flight runs finish (within the grace period), a new
   * pipeline starts, taking over counters, watermarks and readiness wherever a collector's scope
   * is unchanged. Reloads run one after another, never two at once.
   */
  reload(config: Config): Promise<void> {
    const next = this.changes.then(() => this.swap(config));
    this.changes = next.catch(() => {});
    return next;
  }

  /** Stops schedules, lets in-flight runs finish within the grace period, writes the state. */
  stop(): Promise<void> {
    const next = this.changes.then(async () => {
      this.started = false;
      if (this.selfTimer) clearInterval(this.selfTimer);
      await this.runner.stop(this.config.engine.shutdown_grace);
      await this.saveState().catch(() => {}); // logged by the state file
      // The receiver gets the last numbers (one more push, bounded by the push timeout).
      await this.otlpLoading;
      await this.otlp?.stop(true);
      this.otlpMetrics.show(false);
      await Promise.all(this.pipeline.http.map((h) => h.close()));
      await this.selfChain;
    });
    this.changes = next.catch(() => {});
    return next;
  }

  /** Renders and publishes the engine's metrics now (tests and --once; served copies refresh each second). */
  flushSelf(): Promise<void> {
    return this.serially(() => this.publishSelf(false));
  }

  private async swap(config: Config): Promise<void> {
    const old = this.pipeline;
    await old.runner.stop(config.engine.shutdown_grace);
    await Promise.all(old.http.map((h) => h.close()));
    this.pipeline = this.buildPipeline(config, old);
    this.pipeline.runner.inherit(old.runner);
    for (const c of this.pipeline.collectors) {
      const before = old.collectors.find((o) => o.name === c.name);
      if (before?.state && c.state && before.state.version === c.state.version) c.state.adopt(before.state.carry());
    }
    const keep = new Set(this.runner.collectorNames);
    const gone = old.runner.collectorNames.filter((n) => !keep.has(n));
    if (gone.length > 0) this.opts.sink.update([], gone.map(dataPart));
    for (const name of gone) this.dataTexts.delete(name);
    if (JSON.stringify(config.otlp) !== JSON.stringify(old.config.otlp)) {
      await this.otlpLoading;
      await this.otlp?.stop(false);
      if (!config.otlp) {
        this.dataTexts.clear();
        this.processText = '';
      }
      await this.loadOtlp(config);
    }
    for (const name of gone) {
      for (const m of [this.metrics.collectorUp, this.metrics.collectorDuration, this.metrics.collectorLastSuccess, this.metrics.collectorSkipped, this.metrics.collectorSeries, this.metrics.dataNewest]) {
        m.remove({ collector: name });
      }
      for (const result of ['success', 'failure']) this.metrics.collectorRuns.remove({ collector: name, result });
      this.metrics.watermarkAhead.remove({ collector: name });
      const families = old.collectors.find((c) => c.name === name)?.families ?? [];
      this.metrics.auditMinutes.remove({ collector: name });
      for (const f of families) {
        if (f.type !== 'counter') continue;
        for (const m of [this.metrics.revisedDown, this.metrics.auditCounted, this.metrics.auditReference, this.metrics.auditDivergence]) m.remove({ collector: name, family: f.name });
      }
    }
    if (this.started) {
      this.runner.start();
      void this.runner.runAll();
    }
    this.log.info({ collectors: this.runner.collectorNames }, 'configuration reloaded');
    this.onStatus();
    this.refreshSelf();
  }

  /**
   * Each configured source's block as this shard runs it (--shard, --total-shards): only the units
   * of upstream work it owns, shared limits divided; a source of which it owns no unit is left out
   * (no collector, nothing for /-/ready to wait for). Sets the shard_* self-metrics and logs what
   * this replica polls.
   */
  private shardedBlocks(config: Config): Map<string, unknown> {
    const { shard } = config;
    this.metrics.configHash.set(config.hash);
    this.metrics.shardOrdinal.set(shard.ordinal);
    this.metrics.totalShards.set(shard.total);
    this.metrics.shardUnits.reset();
    const out = new Map<string, unknown>();
    const owned: string[] = [];
    const limits: SharedLimit[] = [];
    for (const source of this.sources) {
      const whole = config.sources[source.name];
      if (whole === undefined) continue;
      const s = shardBlock(source, whole, shard);
      this.metrics.shardUnits.set({ source: source.name }, s.owned.length);
      owned.push(...s.owned);
      limits.push(...s.limits);
      if (s.block !== undefined) out.set(source.name, s.block);
    }
    if (shard.total > 1) {
      this.log.info({ shard: shard.ordinal, totalShards: shard.total, units: owned, limits: limits.map((l) => `${l.source}.${l.name}: ${l.part} of ${l.limit}`) }, 'sharding: the units of upstream work this replica polls');
      for (const l of limits) {
        const sum = l.parts.reduce((a, b) => a + b, 0);
        if (sum > l.limit) this.log.warn({ source: l.source, limit: l.name, value: l.limit, parts: l.parts }, 'sharding: a shared upstream limit is smaller than the shards that need a part of it; each takes 1, so together they may exceed it');
      }
    }
    return out;
  }

  private buildPipeline(config: Config, previous?: Pipeline): Pipeline {
    const http: HttpClient[] = [];
    const budgetsAsked = new Set<string>();
    const collectors: Collector[] = [];
    const blocks = this.shardedBlocks(config);
    for (const source of this.sources) {
      const block = blocks.get(source.name);
      if (block === undefined) continue;
      const services: SourceServices = {
        log: this.log.child({ source: source.name }),
        clock: this.clock,
        engine: this.metrics,
        httpClient: (settings) => {
          const client = new HttpClient({
            ...settings,
            metrics: this.httpMetrics,
            parseErrors: this.metrics.parseErrors,
            log: this.log.child({ api: settings.api }),
            now: () => this.clock.now(),
          });
          http.push(client);
          return client;
        },
        budget: (api, account, perMinute) => {
          const key = `${api}\u0000${account}`;
          budgetsAsked.add(key);
          let b = this.budgets.get(key);
          if (!(b instanceof RequestBudget) || b.perMinute !== perMinute) {
            b = new RequestBudget(api, account, perMinute, () => this.clock.now(), this.budgetMetrics);
            this.budgets.set(key, b);
          }
          return b;
        },
        windowBudget: (api, account, max, windowMs) => {
          const key = `${api}\u0000${account}`;
          budgetsAsked.add(key);
          let b = this.budgets.get(key);
          if (!(b instanceof WindowBudget) || b.max !== max || b.windowMs !== windowMs) {
            b = new WindowBudget(api, account, max, windowMs, () => this.clock.now(), this.budgetMetrics);
            this.budgets.set(key, b);
          }
          return b;
        },
      };
      collectors.push(...source.build(block, services, this.sourceSelf.get(source.name)));
    }
    for (const [key, b] of this.budgets) {
      if (!budgetsAsked.has(key)) {
        b.forget();
        this.budgets.delete(key);
      }
    }
    const limits = new Map<string, number>();
    for (const c of collectors) for (const f of c.families) limits.set(f.name, c.maxSeriesPerFamily ?? DEFAULT_MAX_SERIES);
    // series_dropped_total lists the families this config collects, and no others.
    for (const c of previous?.collectors ?? []) for (const f of c.families) if (!limits.has(f.name)) this.metrics.seriesDropped.remove({ family: f.name });
    for (const name of limits.keys()) this.metrics.seriesDropped.inc({ family: name }, 0);
    const guard = new CardinalityGuard(
      (family) => limits.get(family) ?? DEFAULT_MAX_SERIES,
      config.engine.series_idle_timeout,
      (family, n) => this.metrics.seriesDropped.inc({ family }, n),
    );
    const runner = new Runner({
      collectors,
      publisher: {
        publish: (collector, text) => this.publish(collector, text),
        withdraw: (collector) => {
          this.dataTexts.delete(collector);
          this.opts.sink.update([], [dataPart(collector)]);
          this.refreshSelf();
        },
      },
      metrics: this.metrics,
      log: this.log,
      clock: this.clock,
      guard,
      stalenessMs: config.engine.staleness,
      saveState: () => this.saveState(),
      onPublish: () => this.onPublished(),
      onStatus: () => {
        this.onStatus();
        this.refreshSelf();
      },
    });
    return { config, runner, collectors, http };
  }

  /**
   * A collector's data and the engine's metrics (whose health series just changed), swapped in
   * together. Every update that carries the engine's metrics goes through one queue, so an older
   * rendering never replaces a newer one.
   */
  private publish(collector: string, text: string): Promise<void> {
    const data = makePart(dataPart(collector), text, this.opts.ownThread);
    if (this.config.otlp) this.dataTexts.set(collector, text);
    return this.serially(async () => {
      const selfText = await this.registry.metrics();
      this.lastSelfText = selfText;
      this.opts.sink.update([await data, await makePart(ENGINE_SELF_PART, selfText, this.opts.ownThread)], []);
    });
  }

  /** Re-renders the engine's metrics soon (coalesced), publishing them only when they changed. */
  private refreshSelf(): void {
    if (this.selfPending) return;
    this.selfPending = true;
    void this.serially(() => {
      this.selfPending = false;
      return this.publishSelf(true);
    });
  }

  /** Renders the engine's metrics and sends them; only through `serially`. */
  private async publishSelf(onlyIfChanged: boolean): Promise<void> {
    const text = await this.registry.metrics();
    if (onlyIfChanged && text === this.lastSelfText) return;
    this.lastSelfText = text;
    this.opts.sink.update([await makePart(ENGINE_SELF_PART, text, this.opts.ownThread)], []);
  }

  private serially(fn: () => Promise<void>): Promise<void> {
    const p = this.selfChain.then(fn);
    this.selfChain = p.catch((err: unknown) => this.log.error({ err }, 'publishing to the exposition failed'));
    return p;
  }

  private carriedState(): Record<string, VersionedState> {
    const out: Record<string, VersionedState> = {};
    for (const c of this.pipeline.collectors) if (c.state) out[c.name] = { version: c.state.version, state: c.state.carry() };
    return out;
  }
}
