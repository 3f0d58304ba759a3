import { Counter, type Registry } from 'prom-client';
import { defineSource } from '../../engine/source.js';
import { SELF_PREFIX } from '../../engine/self-metrics.js';
import type { Collector } from '../../engine/collector.js';
import { flowFamilies, realtimeFamilies } from './catalogue.js';
import {
  ConvivaClient, ConvivaFlowClient, FLOW_API, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT, FLOW_MODELS_ENDPOINT, REALTIME_API, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT,
} from './client.js';
import { convivaConfigSchema, realtimeRequestsPerMinute, resolveConvivaConfig, type ConvivaConfig, type ConvivaRawConfig } from './config.js';
import { ConvivaFake } from './fake.js';
import { createFlowCollectors, FLOW_COLLECTOR } from './flow.js';
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

/** Conviva (https://api.conviva.com): Metrics V3 real time, DPI Flow. */
export const conviva = defineSource<ConvivaRawConfig, ConvivaConfig, ReturnType<typeof convivaSelfMetrics>>({
  name: 'conviva',
  configSchema: convivaConfigSchema,
  resolve: resolveConvivaConfig,
  families: [...realtimeFamilies(), ...flowFamilies()],
  selfMetrics: convivaSelfMetrics,
  build(config, services, self) {
    const settings = (api: string) => ({
      api,
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
    // Metrics V3 real time and DPI Flow real time spend one budget per account.
    const budget = (account: string) => services.budget(REALTIME_API, account, config.realtime_requests_per_minute);
    const collectors: Collector[] = [];
    if (config.realtime.enabled) {
      const http = services.httpClient(settings(REALTIME_API));
      http.declareEndpoints([REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT]);
      const clients = config.accounts.map((a) => new ConvivaClient(http, a, budget(a.name)));
      self.bucketsMissed.inc({ collector: REALTIME_COLLECTOR }, 0);
      collectors.push(createRealtimeCollector({ clients, config: config.realtime, engine: services.engine, bucketsMissed: self.bucketsMissed }));
    }
    if (config.flows.enabled) {
      const http = services.httpClient(settings(FLOW_API));
      http.declareEndpoints([FLOW_MODELS_ENDPOINT, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT]);
      const clients = config.accounts.map((a) => new ConvivaFlowClient(http, a, budget(a.name)));
      self.bucketsMissed.inc({ collector: FLOW_COLLECTOR }, 0);
      collectors.push(...createFlowCollectors({
        clients, config: config.flows, engine: services.engine, bucketsMissed: self.bucketsMissed,
        budget: { perMinute: config.realtime_requests_per_minute, realtimePerMinute: config.realtime.enabled ? realtimeRequestsPerMinute(config.realtime) : 0 },
      }));
    }
    return collectors;
  },
  fake: (options) => ConvivaFake.create(options),
  useSimulator: (config, url) => ({ ...config, base_url: url, ca_file: undefined }),
});
