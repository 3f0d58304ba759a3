import { Counter, Histogram, type Registry } from 'prom-client';
import { SELF_PREFIX } from '../engine/self-metrics.js';

/** The HTTP layer's metrics: one set for every upstream HTTP API, told apart by `api` and `endpoint`. */
export function createHttpMetrics(registry: Registry) {
  const p = SELF_PREFIX;
  const reg = [registry];
  return {
    requests: new Counter({
      name: `${p}http_requests_total`,
      help: 'Upstream HTTP requests by api, endpoint and status code (code is "error" when no response arrived).',
      labelNames: ['api', 'endpoint', 'code'],
      registers: reg,
    }),
    duration: new Histogram({
      name: `${p}http_request_duration_seconds`,
      help: 'Upstream HTTP request latency, one observation per attempt.',
      labelNames: ['api', 'endpoint'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: reg,
    }),
    retries: new Counter({
      name: `${p}http_retries_total`,
      help: 'Upstream HTTP requests retried after a network error, a timeout, a 429 or a 5xx.',
      labelNames: ['api', 'endpoint'],
      registers: reg,
    }),
    throttled: new Counter({
      name: `${p}http_throttled_total`,
      help: 'Upstream answers with status 429 (throttled).',
      labelNames: ['api'],
      registers: reg,
    }),
  };
}

export type HttpMetrics = ReturnType<typeof createHttpMetrics>;
