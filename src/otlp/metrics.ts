import { Counter, Gauge, type Registry } from 'prom-client';

// Only prom-client here: the engine loads this module always, and the OpenTelemetry packages
// (src/otlp/pusher.ts, about 18 MiB resident once loaded) only when an otlp: block asks for them.

/** The exporter's own OTLP health series, in the engine's registry while a push is configured. */
export class OtlpMetrics {
  readonly exports = new Counter({
    name: 'conviva_exporter_otlp_exports_total',
    help: 'OTLP pushes of every series /metrics serves, by result (a failure counts once, after the exporter\'s own retries within the timeout).',
    labelNames: ['result'] as const,
    registers: [],
  });
  readonly lastSuccess = new Gauge({
    name: 'conviva_exporter_otlp_last_success_timestamp_seconds',
    help: 'When the last OTLP push was accepted by the receiver (Unix seconds).',
    registers: [],
  });
  readonly duration = new Gauge({
    name: 'conviva_exporter_otlp_push_duration_seconds',
    help: 'How long the last OTLP push took, accepted or not: reading back the exposition, converting it, and every request.',
    registers: [],
  });
  readonly points = new Gauge({
    name: 'conviva_exporter_otlp_points',
    help: 'Data points in the last OTLP push (one per series; a histogram series is one point).',
    registers: [],
  });
  private registered = false;

  constructor(private readonly registry: Registry) {}

  /** Shows the series while a push is configured, and only then. */
  show(on: boolean): void {
    if (on === this.registered) return;
    this.registered = on;
    const all = [
      [this.exports, 'conviva_exporter_otlp_exports_total'],
      [this.lastSuccess, 'conviva_exporter_otlp_last_success_timestamp_seconds'],
      [this.points, 'conviva_exporter_otlp_points'],
      [this.duration, 'conviva_exporter_otlp_push_duration_seconds'],
    ] as const;
    for (const [m, name] of all) {
      if (on) this.registry.registerMetric(m);
      else this.registry.removeSingleMetric(name);
    }
    if (on) for (const result of ['success', 'failure']) this.exports.inc({ result }, 0);
  }
}
