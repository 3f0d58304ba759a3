import { Counter, type Registry } from 'prom-client';
import { defineSource } from '../../engine/source.js';
import { SELF_PREFIX } from '../../engine/self-metrics.js';
import { realtimeFamilies } from './catalogue.js';
import { ConvivaClient, REALTIME_API, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT } from './client.js';
import { convivaConfigSchema, resolveConvivaConfig, type ConvivaConfig, type ConvivaRawConfig } from './config.js';
import { ConvivaFake } from './fake.js';
import { createRealtimeCollector, REALTIME_COLLECTOR } from './realtime.js';

/** Conviva's own health metrics. */
function convivaSelfMetrics(registry: Registry) {
  return {
    bucketsMissed: new Counter({
      name: `${SELF_PREFIX}buckets_missed_total`,
      help: 'Settled one-minute Conviva buckets that fell out of the catch-up window before they could be counted (every label set of the collector lost these minutes).',
      labelNames: ['collector'],
      registers: [registry],
    }),
  };
}

/** Conviva (https://api.conviva.com): Metrics V3 real time. */
export const conviva = defineSource<ConvivaRawConfig, ConvivaConfig, ReturnType<typeof convivaSelfMetrics>>({
  name: 'conviva',
  configSchema: convivaConfigSchema,
  resolve: resolveConvivaConfig,
  families: realtimeFamilies(),
  selfMetrics: convivaSelfMetrics,
  build(config, services, self) {
    if (!config.realtime.enabled) return [];
    const http = services.httpClient({
      api: REALTIME_API,
      baseUrl: config.base_url,
      connectTimeoutMs: config.connect_timeout,
      headersTimeoutMs: config.request_timeout,
      bodyTimeoutMs: config.request_timeout,
      maxRetries: config.retries,
      retryBaseDelayMs: config.retry_base_delay,
      retryMaxDelayMs: config.retry_max_delay,
      concurrency: config.concurrency,
      caFile: config.ca_file,
    });
    http.declareEndpoints([REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT]);
    const clients = config.accounts.map(
      (a) => new ConvivaClient(http, a, services.budget(REALTIME_API, a.name, config.realtime_requests_per_minute)),
    );
    self.bucketsMissed.inc({ collector: REALTIME_COLLECTOR }, 0);
    return [createRealtimeCollector({ clients, config: config.realtime, engine: services.engine, bucketsMissed: self.bucketsMissed })];
  },
  fake: (options) => ConvivaFake.create(options),
  useSimulator: (config, url) => ({ ...config, base_url: url, ca_file: undefined }),
});
