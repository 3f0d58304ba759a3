import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const SELF_PREFIX = 'conviva_exporter_';

/** The exporter's own live metrics, in a registry of their own (never prom-client's global one). */
export function createSelfMetrics(version: string) {
  const registry = new Registry();
  // Standard process_* and nodejs_* metrics, unprefixed so common dashboards find them.
  collectDefaultMetrics({ register: registry });
  // These three are gauges named *_total, which promtool's lint (rightly) refuses; the handle and
  // request counts are still there, split by type, as nodejs_active_handles / _requests / _resources.
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(n);
  const p = SELF_PREFIX;
  const reg = [registry];
  const buildInfo = new Gauge({
    name: `${p}build_info`,
    help: 'Build information of the exporter; always 1.',
    labelNames: ['version', 'nodejs_version'],
    registers: reg,
  });
  buildInfo.set({ version, nodejs_version: process.version }, 1);
  return {
    registry,
    collectorUp: new Gauge({
      name: `${p}collector_up`,
      help: 'Whether the last run of the collector succeeded in full (1) or failed in full or in part (0).',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorDuration: new Gauge({
      name: `${p}collector_duration_seconds`,
      help: 'Duration of the last run of the collector.',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorLastSuccess: new Gauge({
      name: `${p}collector_last_success_timestamp_seconds`,
      help: 'Unix time the collector last completed a run successfully in full.',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorRuns: new Counter({
      name: `${p}collector_runs_total`,
      help: 'Collector runs by result (success or failure).',
      labelNames: ['collector', 'result'],
      registers: reg,
    }),
    collectorSkipped: new Counter({
      name: `${p}collector_skipped_total`,
      help: 'Scheduled collector runs skipped because the previous run was still in progress.',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorSeries: new Gauge({
      name: `${p}collector_series`,
      help: 'Series the collector currently publishes on /metrics (0 once withdrawn as stale).',
      labelNames: ['collector'],
      registers: reg,
    }),
    dataNewest: new Gauge({
      name: `${p}data_newest_timestamp_seconds`,
      help: 'Upstream time (bucket start) of the newest data the collector has published.',
      labelNames: ['collector'],
      registers: reg,
    }),
    seriesDropped: new Counter({
      name: `${p}series_dropped_total`,
      help: 'Series refused by the per-family cardinality guard (max_series_per_metric), counted per run.',
      labelNames: ['family'],
      registers: reg,
    }),
    bucketsMissed: new Counter({
      name: `${p}buckets_missed_total`,
      help: 'Settled one-minute upstream buckets that fell out of the catch-up window before they could be counted (every label set of the collector lost these minutes).',
      labelNames: ['collector'],
      registers: reg,
    }),
    parseErrors: new Counter({
      name: `${p}parse_errors_total`,
      help: 'Upstream rows or values the exporter could not read and skipped.',
      labelNames: ['api', 'endpoint'],
      registers: reg,
    }),
    httpRequests: new Counter({
      name: `${p}http_requests_total`,
      help: 'Upstream HTTP requests by api, endpoint and status code (code is "error" when no response arrived).',
      labelNames: ['api', 'endpoint', 'code'],
      registers: reg,
    }),
    httpDuration: new Histogram({
      name: `${p}http_request_duration_seconds`,
      help: 'Upstream HTTP request latency, one observation per attempt.',
      labelNames: ['api', 'endpoint'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: reg,
    }),
    httpRetries: new Counter({
      name: `${p}http_retries_total`,
      help: 'Upstream HTTP requests retried after a network error, a timeout, a 429 or a 5xx.',
      labelNames: ['api', 'endpoint'],
      registers: reg,
    }),
    httpThrottled: new Counter({
      name: `${p}http_throttled_total`,
      help: 'Upstream answers with status 429 (throttled).',
      labelNames: ['api'],
      registers: reg,
    }),
    budgetWait: new Counter({
      name: `${p}http_budget_wait_seconds_total`,
      help: 'Time spent waiting for the client-side request budget.',
      labelNames: ['api', 'account'],
      registers: reg,
    }),
    budgetExhausted: new Counter({
      name: `${p}http_budget_exhausted_total`,
      help: 'Requests abandoned because the request budget had no room before the run deadline.',
      labelNames: ['api', 'account'],
      registers: reg,
    }),
  };
}

export type SelfMetrics = ReturnType<typeof createSelfMetrics>;
