import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import type { Clock } from './engine/clock.js';
import type { Engine } from './engine/engine.js';
import type { CollectorStatus, Runner } from './engine/runner.js';
import { Exposition } from './server/exposition.js';
import { ProcessMetrics } from './server/process-metrics.js';
import { createRequestListener } from './server/server.js';
import type { WebServer } from './server/web-server.js';

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
  /**
   * Where the engine runs. 'worker' (the CLI's choice): on its own thread, so the thread that
   * serves /metrics never waits on collector work. 'inline': on this thread (tests with a manual
   * clock, --once).
   */
  engine?: 'inline' | 'worker';
  /** Log level of the engine thread (worker mode). */
  logLevel?: string;
  /** Called when the engine thread dies (worker mode): the process should exit with this code. */
  onFatal?: (code: number) => void;
  /**
   * --web.config.file: TLS, basic auth and headers in the exporter-toolkit's format, re-read when
   * it changes; serve() throws WebConfigError when it is invalid.
   */
  webConfigFile?: string;
}

/** The engine, wherever it runs. */
interface EngineHandle {
  /** Resolves once the collectors are built (at once for an inline engine). */
  readonly up?: Promise<void>;
  start(): void;
  reload(config: Config): Promise<void>;
  stop(): Promise<void>;
  status(): CollectorStatus[];
  ready(): boolean;
  setProcessText(text: string): void;
}

/** The address could not be listened on; `code` is the errno code (EADDRINUSE, EACCES, ...). */
export class ListenError extends Error {
  constructor(
    readonly code: string,
    readonly address: string,
    reason: string,
  ) {
    super(`cannot listen on ${address}: ${reason} (${code})`);
    this.name = 'ListenError';
  }
}

const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this host',
};

/** The composition root: the exposition and the HTTP server on this thread, the engine inline or on a worker. */
export class App {
  readonly exposition = new Exposition();
  // The process metrics are rendered on this thread; the OTLP push (on the engine's) needs them too.
  readonly processMetrics = new ProcessMetrics(this.exposition, (text) => {
    if (this.otlpOn) this.handle.setProcessText(text);
  });
  private otlpOn: boolean;
  readonly log: Logger;
  /** The engine, when it runs on this thread. */
  readonly engine: Engine | undefined;
  private readonly handle: EngineHandle;
  private server: Server | HttpsServer | undefined;
  private readonly webConfigFile: string | undefined;
  private readonly shard: { ordinal: number; total: number };
  private web: WebServer | undefined;

  /**
   * Builds the app. The engine's modules (the collectors, undici, node-cron) are loaded only where
   * the engine runs: with a worker, the serving thread never loads them.
   */
  static async create(opts: AppOptions): Promise<App> {
    if (opts.engine === 'worker') {
      const { EngineThread } = await import('./engine/engine-thread.js');
      return new App(opts, (exposition) => ({
        handle: new EngineThread(opts.config, opts.logLevel ?? opts.config.log.level, VERSION, exposition, opts.log, opts.onFatal ?? (() => {})),
      }));
    }
    const { Engine } = await import('./engine/engine.js');
    return new App(opts, (exposition) => {
      const engine = new Engine({ config: opts.config, log: opts.log, clock: opts.clock, sink: exposition, version: VERSION });
      return { handle: engine, engine };
    });
  }

  private constructor(opts: AppOptions, makeEngine: (exposition: Exposition) => { handle: EngineHandle; engine?: Engine }) {
    this.log = opts.log;
    this.otlpOn = opts.config.otlp !== undefined;
    this.webConfigFile = opts.webConfigFile;
    this.shard = opts.config.shard;
    const made = makeEngine(this.exposition);
    this.handle = made.handle;
    this.engine = made.engine;
  }

  /** The runner of an inline engine (tests drive runs through it). */
  get runner(): Runner {
    if (!this.engine) throw new Error('the engine runs on a worker thread');
    return this.engine.runner;
  }

  /** Listens on host:port (port 0 for any), then starts the schedules and a first run of every collector. */
  async start(listen: { host: string; port: number }): Promise<string> {
    await this.serve(listen);
    await this.handle.up;
    this.handle.start();
    const url = this.url;
    this.log.info({ url, collectors: this.handle.status().map((s) => s.name) }, 'exporter listening');
    return url;
  }

  /**
   * Listens on host:port and serves what the engine publishes, without starting the schedules
   * (start() does both; tests on a manual clock drive the runs themselves).
   */
  async serve(listen: { host: string; port: number }): Promise<string> {
    const deps = {
      exposition: this.exposition,
      status: () => this.handle.status(),
      ready: () => this.handle.ready(),
      version: VERSION,
      shard: this.shard,
    };
    let web: WebServer | undefined;
    if (this.webConfigFile !== undefined) {
      const { WebServer } = await import('./server/web-server.js');
      web = await WebServer.create({ file: this.webConfigFile, deps, log: this.log, registry: this.processMetrics.registry });
    }
    const server = web ? web.server : createHttpServer(createRequestListener(deps));
    const address = `${listen.host || '*'}:${listen.port}`;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? 'ERROR';
        reject(new ListenError(code, address, LISTEN_REASONS[code] ?? err.message));
      });
      server.listen(listen.port, listen.host || undefined, () => resolve());
    });
    this.server = server;
    this.web = web;
    web?.watch();
    await this.processMetrics.start();
    return this.url;
  }

  get url(): string {
    if (!this.server) throw new Error('not listening');
    const a = this.server.address() as AddressInfo;
    return `${this.web?.tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Runs every collector once (inline engine); true when all succeeded. */
  runOnce(): Promise<boolean> {
    if (!this.engine) throw new Error('the engine runs on a worker thread');
    return this.engine.runOnce();
  }

  /** What /metrics serves, as text, with the self-metrics rendered afresh (tests and --once). */
  async text(): Promise<string> {
    await this.processMetrics.render();
    await this.engine?.flushSelf();
    return this.exposition.text();
  }

  /** Pushes to the OTLP receiver now (inline engine; tests): false when no push is configured or it failed. */
  pushOtlp(): Promise<boolean> {
    if (!this.engine) throw new Error('the engine runs on a worker thread');
    return this.engine.pushOtlp();
  }

  /** Swaps in a new config (reloads run one after another). */
  async reload(config: Config): Promise<void> {
    await this.handle.reload(config);
    this.otlpOn = config.otlp !== undefined;
  }

  /** Stops schedules, lets in-flight runs finish within the grace period, writes the state, closes the server. */
  async stop(): Promise<void> {
    await this.handle.stop();
    this.processMetrics.stop();
    await this.web?.stop();
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.closeIdleConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }
}
