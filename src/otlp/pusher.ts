import { hostname } from 'node:os';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { MetricData, PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { OtlpConfig } from '../config/load.js';
import { convertFamily, StartTimes } from './convert.js';
import type { OtlpMetrics } from './metrics.js';
import { parseExpositionText, type ParsedFamily } from './parse.js';

export interface OtlpPusherOptions {
  settings: OtlpConfig;
  log: Logger;
  metrics: OtlpMetrics;
  version: string;
  now: () => number;
  /** The exposition texts /metrics serves, in its order (data, the engine's metrics, the process's). */
  texts: () => Promise<string[]>;
}

/**
 * The metrics cut into batches of at most `max` data points (a metric with more points is split
 * across batches: the same metric in several requests is valid OTLP).
 */
export function batches(metrics: readonly MetricData[], max: number): MetricData[][] {
  const out: MetricData[][] = [];
  let current: MetricData[] = [];
  let room = max;
  for (const md of metrics) {
    let from = 0;
    while (from < md.dataPoints.length) {
      const take = Math.min(room, md.dataPoints.length - from);
      current.push({ ...md, dataPoints: md.dataPoints.slice(from, from + take) } as MetricData);
      from += take;
      room -= take;
      if (room === 0) {
        out.push(current);
        current = [];
        room = max;
      }
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** Pauses between attempts after a failed push: 5 s, doubling, never longer than the interval. */
const FIRST_RETRY_MS = 5000;
/** Samples converted between two yields to the event loop: a 90k-series push never holds the engine thread for long. */
const SAMPLES_PER_SLICE = 5000;

/**
 * Pushes what /metrics serves to an OTLP receiver every `interval`, over http/protobuf or gRPC with
 * the official OpenTelemetry exporters. It runs on the engine's thread: the serving thread never
 * waits on it, and a push that fails or hangs (each is bounded by `timeout`) delays no collector.
 * A failed push is counted, logged once until a push succeeds again, and tried again with backoff;
 * points are cumulative, so the next accepted push carries everything the failed ones would have.
 */
export class OtlpPusher {
  private exporter: PushMetricExporter | undefined;
  private readonly starts = new StartTimes();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<boolean> | undefined;
  private failures = 0;
  private stopped = false;
  private readonly resource;

  constructor(private readonly opts: OtlpPusherOptions) {
    const s = opts.settings;
    this.resource = resourceFromAttributes({
      'service.name': 'conviva-exporter',
      'service.version': opts.version,
      'service.instance.id': hostname(),
      ...s.resource_attributes,
    });
  }

  /** Loads the exporter for the protocol (the gRPC stack only when asked for). */
  private async load(): Promise<PushMetricExporter> {
    if (this.exporter) return this.exporter;
    const s = this.opts.settings;
    const compression = s.compression as never; // the exporters' CompressionAlgorithm enum: 'gzip' | 'none'
    if (s.protocol === 'grpc') {
      const [{ OTLPMetricExporter }, { Metadata }] = await Promise.all([import('@opentelemetry/exporter-metrics-otlp-grpc'), import('@grpc/grpc-js')]);
      const metadata = new Metadata();
      for (const h of s.headers) metadata.set(h.name.toLowerCase(), h.value);
      this.exporter = new OTLPMetricExporter({ url: s.endpoint, metadata, timeoutMillis: s.timeout, compression });
    } else {
      const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-proto');
      const headers = Object.fromEntries(s.headers.map((h) => [h.name, h.value]));
      this.exporter = new OTLPMetricExporter({ url: s.endpoint, headers, timeoutMillis: s.timeout, compression });
    }
    return this.exporter;
  }

  /** Pushes at every interval from now on (the first push one interval from now). */
  start(): void {
    this.schedule(this.opts.settings.interval);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.push().then((ok) => this.schedule(ok ? this.opts.settings.interval : this.backoff()));
    }, ms);
    this.timer.unref();
  }

  private backoff(): number {
    const ms = Math.min(this.opts.settings.interval, FIRST_RETRY_MS * 2 ** Math.min(this.failures - 1, 16));
    return ms * (0.8 + Math.random() * 0.4);
  }

  /** Pushes now (one push at a time: a push asked for during another waits for it and returns its result). */
  push(): Promise<boolean> {
    this.inFlight ??= this.pushOnce().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async pushOnce(): Promise<boolean> {
    const began = performance.now();
    try {
      return await this.pushTimed();
    } finally {
      this.opts.metrics.duration.set((performance.now() - began) / 1000);
    }
  }

  private async pushTimed(): Promise<boolean> {
    const m = this.opts.metrics;
    const now = this.opts.now();
    let metrics: MetricData[];
    let points = 0;
    try {
      metrics = await this.convert(now);
      for (const md of metrics) points += md.dataPoints.length;
    } catch (err) {
      this.starts.abandon();
      this.opts.log.error({ err }, 'OTLP push: could not convert the exposition');
      m.exports.inc({ result: 'failure' });
      this.failures++;
      return false;
    }
    let error: Error | undefined;
    let requests = 0;
    try {
      const exporter = await this.load();
      // One request per batch, one after another; the push fails at the first refused batch (the
      // next push sends every point again: cumulative points sent twice are the same points).
      for (const batch of batches(metrics, this.opts.settings.max_points_per_request)) {
        const rm: ResourceMetrics = { resource: this.resource, scopeMetrics: [{ scope: { name: 'conviva-exporter', version: this.opts.version }, metrics: batch }] };
        const result = await new Promise<{ code: number; error?: Error }>((resolve) => exporter.export(rm, resolve));
        requests++;
        if (result.code !== 0) {
          error = result.error ?? new Error('export failed');
          break;
        }
      }
    } catch (e) {
      error = e as Error;
    }
    if (error) {
      this.starts.abandon();
      m.exports.inc({ result: 'failure' });
      if (this.failures === 0) {
        this.opts.log.error({ endpoint: this.opts.settings.endpoint, protocol: this.opts.settings.protocol, request: requests, err: { message: error.message } }, 'OTLP push failed: retrying with backoff (logged once until a push succeeds)');
      }
      this.failures++;
      return false;
    }
    this.starts.commit(now);
    m.exports.inc({ result: 'success' });
    m.lastSuccess.set(now / 1000);
    m.points.set(points);
    if (this.failures > 0) this.opts.log.info({ endpoint: this.opts.settings.endpoint, failed: this.failures }, 'OTLP push succeeded again');
    this.failures = 0;
    return true;
  }

  /** Parses and converts the texts, yielding to the event loop every few thousand samples. */
  private async convert(now: number): Promise<MetricData[]> {
    const families = new Map<string, ParsedFamily>();
    for (const text of await this.opts.texts()) {
      parseExpositionText(text, families);
      await yieldToLoop();
    }
    const out: MetricData[] = [];
    let done = 0;
    for (const f of families.values()) {
      const md = convertFamily(f, now, this.starts);
      if (md) out.push(md);
      done += f.samples.length;
      if (done >= SAMPLES_PER_SLICE) {
        done = 0;
        await yieldToLoop();
      }
    }
    return out;
  }

  /** Stops the schedule; with `flush`, pushes once more (bounded by the timeout) so the receiver has the last numbers. */
  async stop(flush: boolean): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.inFlight) await this.inFlight;
    if (flush) await this.push();
    await this.exporter?.shutdown().catch(() => {});
  }
}
