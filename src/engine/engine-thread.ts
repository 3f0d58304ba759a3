import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { PartSink } from './part.js';
import type { CollectorStatus } from './runner.js';
import { fromWire, type EngineWorkerData, type FromEngine, type ToEngine } from './thread-protocol.js';

const ENGINE_YOUNG_GENERATION_MB = 8;

/**
 * The serving thread's handle on an Engine running in a worker thread: parts arrive with their
 * bytes transferred (no copy) and go straight into the sink; status is cached for the landing
 * page and /-/ready. An engine thread that dies takes the process down (`onExit`), so a
 * supervisor restarts it, rather than serving frozen numbers.
 */
export class EngineThread {
  private readonly worker: Worker;
  private lastStatus: CollectorStatus[] = [];
  private isReady = false;
  private nextReload = 0;
  private readonly reloads = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private stopped: (() => void) | undefined;
  private stopping = false;
  private readonly exited: Promise<void>;
  private markUp: () => void = () => {};
  /** Resolves once the engine thread has built its collectors and reported their status (or has died). */
  readonly up: Promise<void> = new Promise((resolve) => (this.markUp = resolve));

  constructor(
    config: Config,
    logLevel: string,
    version: string,
    sink: PartSink,
    private readonly log: Logger,
    onExit: (code: number) => void,
  ) {
    const workerData: EngineWorkerData = { config, logLevel, version };
    this.worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData,
      stdout: false,
      stderr: false,
      // A small young generation: the engine allocates in bursts (one run a minute), and V8's
      // default (up to 48 MiB here) would stay resident between them. Measured in docs/performance.md.
      resourceLimits: { maxYoungGenerationSizeMb: ENGINE_YOUNG_GENERATION_MB },
    });
    this.worker.on('message', (msg: FromEngine) => {
      switch (msg.type) {
        case 'update':
          sink.update(fromWire(msg.parts), msg.remove);
          this.lastStatus = msg.status;
          this.isReady = msg.ready;
          return;
        case 'status':
          this.lastStatus = msg.status;
          this.isReady = msg.ready;
          this.markUp();
          return;
        case 'reloaded': {
          const r = this.reloads.get(msg.id);
          this.reloads.delete(msg.id);
          if (msg.error === undefined) r?.resolve();
          else r?.reject(new Error(msg.error));
          return;
        }
        case 'stopped':
          this.stopped?.();
          return;
      }
    });
    this.worker.on('error', (err) => this.log.fatal({ err }, 'engine thread failed'));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('exit', (code) => {
      this.stopped?.();
      this.markUp();
      if (!this.stopping) {
        this.log.fatal({ code }, 'engine thread exited unexpectedly');
        onExit(code === 0 ? 1 : code);
      }
    });
  }

  private send(msg: ToEngine): void {
    this.worker.postMessage(msg);
  }

  start(): void {
    this.send({ type: 'start' });
  }

  reload(config: Config): Promise<void> {
    const id = ++this.nextReload;
    return new Promise((resolve, reject) => {
      this.reloads.set(id, { resolve, reject });
      this.send({ type: 'reload', id, config });
    });
  }

  /** Asks the engine to stop (in-flight runs finish within the grace period, state is written), then ends the thread. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await new Promise<void>((resolve) => {
      this.stopped = resolve;
      this.send({ type: 'stop' });
    });
    // The thread ends on its own once its logs are written; if it lingers, it is ended.
    const lingering = setTimeout(() => void this.worker.terminate(), 5000);
    await this.exited;
    clearTimeout(lingering);
  }

  /** Hands the serving thread's process metrics to the engine (for the OTLP push). */
  setProcessText(text: string): void {
    if (!this.stopping) this.send({ type: 'process', text });
  }

  status(): CollectorStatus[] {
    return this.lastStatus;
  }

  ready(): boolean {
    return this.isReady;
  }
}
