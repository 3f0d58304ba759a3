import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import { systemClock, type Clock } from './engine/clock.js';
import type { Collector } from './engine/collector.js';
import { CardinalityGuard } from './engine/guard.js';
import { Runner } from './engine/runner.js';
import { createSelfMetrics, type SelfMetrics } from './engine/self-metrics.js';
import { SnapshotStore } from './engine/snapshot.js';
import { StateFile } from './engine/state-file.js';
import { HttpClient } from './http/client.js';
import { createServer } from './server/server.js';
import { ConvivaClient, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT } from './sources/conviva/client.js';
import { createRealtimeCollector } from './sources/conviva/realtime.js';

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

export interface AppOptions {
  config: Config;
  log: Logger;
  clock?: Clock;
}

const DEFAULT_MAX_SERIES = 5000;

interface Pipeline {
  config: Config;
  runner: Runner;
  collectors: Collector[];
  http: HttpClient[];
}

/**
 * Every collector the config enables, in one list: adding a source is one more block here.
 * (Model: blackbox_exporter's Probers map, node_exporter's registerCollector.)
 */
function buildCollectors(config: Config, metrics: SelfMetrics, log: Logger, clock: Clock): { collectors: Collector[]; http: HttpClient[] } {
  const collectors: Collector[] = [];
  const http: HttpClient[] = [];
  const conviva = config.sources.conviva;
  if (conviva && conviva.realtime.enabled) {
    const client = new HttpClient({
      api: 'conviva_realtime',
      baseUrl: conviva.base_url,
      connectTimeoutMs: conviva.connect_timeout,
      headersTimeoutMs: conviva.request_timeout,
      bodyTimeoutMs: conviva.request_timeout,
      maxRetries: conviva.retries,
      retryBaseDelayMs: conviva.retry_base_delay,
      retryMaxDelayMs: conviva.retry_max_delay,
      concurrency: conviva.concurrency,
      caFile: conviva.ca_file,
      metrics,
      log: log.child({ api: 'conviva_realtime' }),
      now: () => clock.now(),
    });
    http.push(client);
    client.declareEndpoints([REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT]);
    const clients = conviva.accounts.map((a) => new ConvivaClient(client, a, conviva.realtime_requests_per_minute, () => clock.now()));
    collectors.push(createRealtimeCollector({ clients, config: conviva.realtime, metrics }));
  }
  return { collectors, http };
}

/** The composition root: builds everything from a Config. It listens only when start() is called. */
export class App {
  readonly metrics: SelfMetrics;
  readonly store = new SnapshotStore();
  readonly clock: Clock;
  readonly log: Logger;
  private pipeline: Pipeline;
  private server: Server | undefined;
  private stateFile: StateFile | undefined;

  constructor(opts: AppOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
    this.metrics = createSelfMetrics(VERSION);
    this.pipeline = this.buildPipeline(opts.config);
    // The state file's path is read at start-up only (a reload keeps the file it started with).
    const path = opts.config.engine.state_file;
    if (path) {
      this.stateFile = new StateFile(path, this.log);
      const saved = this.stateFile.load();
      for (const c of this.pipeline.collectors) if (c.adoptState && saved[c.name] !== undefined) c.adoptState(saved[c.name]);
    }
  }

  /** Writes every collector's carried state to the state file, if one is configured. */
  private saveState(): Promise<void> {
    if (!this.stateFile) return Promise.resolve();
    const states: Record<string, unknown> = {};
    for (const c of this.pipeline.collectors) if (c.carryState) states[c.name] = c.carryState();
    return this.stateFile.save(states);
  }

  get config(): Config {
    return this.pipeline.config;
  }

  get runner(): Runner {
    return this.pipeline.runner;
  }

  private buildPipeline(config: Config): Pipeline {
    const { collectors, http } = buildCollectors(config, this.metrics, this.log, this.clock);
    const limits = new Map<string, number>();
    for (const c of collectors) for (const f of c.families) limits.set(f.name, c.maxSeriesPerFamily ?? DEFAULT_MAX_SERIES);
    const guard = new CardinalityGuard(
      (family) => limits.get(family) ?? DEFAULT_MAX_SERIES,
      config.engine.series_idle_timeout,
      (family, n) => this.metrics.seriesDropped.inc({ family }, n),
    );
    for (const name of limits.keys()) this.metrics.seriesDropped.inc({ family: name }, 0);
    const runner = new Runner({
      collectors,
      store: this.store,
      metrics: this.metrics,
      log: this.log,
      clock: this.clock,
      guard,
      stalenessMs: config.engine.staleness,
      onPublish: () => void this.saveState(),
    });
    return { config, runner, collectors, http };
  }

  /** Listens on host:port (port 0 for any), starts the schedules and a first run of every collector. */
  async start(listen: { host: string; port: number }): Promise<string> {
    const app = createServer({
      store: this.store,
      registry: this.metrics.registry,
      status: () => this.runner.status(),
      ready: () => this.runner.ready(),
      version: VERSION,
    });
    this.server = await new Promise<Server>((resolve, reject) => {
      const cb = (err?: Error) => (err ? reject(err) : resolve(s));
      const s = listen.host ? app.listen(listen.port, listen.host, cb) : app.listen(listen.port, cb);
    });
    this.runner.start();
    void this.runner.runAll();
    const url = this.url;
    this.log.info({ url, collectors: this.runner.collectorNames }, 'exporter listening');
    return url;
  }

  get url(): string {
    if (!this.server) throw new Error('not listening');
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Runs every collector once; true when all succeeded. */
  runOnce(): Promise<boolean> {
    return this.runner.runAll();
  }

  /** What /metrics serves, as text. */
  async exposition(): Promise<string> {
    return this.store.current().text.toString('utf8') + (await this.metrics.registry.metrics());
  }

  /** Swaps in a new config: schedules stop, in-flight runs finish, a new pipeline starts. */
  async reload(config: Config): Promise<void> {
    const old = this.pipeline;
    await old.runner.stop(config.engine.shutdown_grace);
    await Promise.all(old.http.map((h) => h.close()));
    this.pipeline = this.buildPipeline(config);
    this.pipeline.runner.inherit(old.runner);
    // Counters and watermarks survive a reload wherever the scope is unchanged: no counter reset.
    for (const c of this.pipeline.collectors) {
      const before = old.collectors.find((o) => o.name === c.name);
      if (before?.carryState && c.adoptState) c.adoptState(before.carryState());
    }
    const accounts = new Set(config.sources.conviva?.accounts.map((a) => a.name));
    for (const a of old.config.sources.conviva?.accounts ?? []) {
      if (!accounts.has(a.name)) for (const h of old.http) h.forgetAccount(a.name);
    }
    const keep = new Set(this.runner.collectorNames);
    for (const name of old.runner.collectorNames) {
      if (!keep.has(name)) {
        this.store.withdraw(name);
        this.metrics.collectorUp.remove({ collector: name });
      }
    }
    if (this.server) {
      this.runner.start();
      void this.runner.runAll();
    }
    this.log.info({ collectors: this.runner.collectorNames }, 'configuration reloaded');
  }

  /** Stops schedules, lets in-flight runs finish within the grace period, closes the server. */
  async stop(): Promise<void> {
    await this.runner.stop(this.config.engine.shutdown_grace);
    await this.saveState();
    await Promise.all(this.pipeline.http.map((h) => h.close()));
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.closeIdleConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }
}
