import { Counter, type Registry } from 'prom-client';
import { defineSource } from '../../engine/source.js';
import { SELF_PREFIX } from '../../engine/self-metrics.js';
import type { Collector } from '../../engine/collector.js';
import { flowFamilies, realtimeFamilies, sessionFamilies } from './catalogue.js';
import {
  ConvivaClient, ConvivaFlowClient, ConvivaSessionsClient, FLOW_API, HISTORICAL_BUDGET, SESSIONS_API, SESSIONS_ENDPOINT, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT, FLOW_MODELS_ENDPOINT, REALTIME_API, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT,
} from './client.js';
import { convivaConfigSchema, realtimeRequestsPerMinute, resolveConvivaConfig, type ConvivaConfig, type ConvivaRawConfig } from './config.js';
import { ConvivaFake } from './fake.js';
import { createFlowCollectors, FLOW_COLLECTOR } from './flow.js';
import { createRealtimeCollector, REALTIME_COLLECTOR } from './realtime.js';
import { createSessionsCollector } from './sessions.js';

/** Conviva's own health metrics. */
function convivaSelfMetrics(registry: Registry) {
  return {
    bucketsMissed: new Counter({
      name: `${SELF_PREFIX}buckets_missed_total`,
      help: 'Settled one-minute Conviva buckets that fell out of the catch-up window before they could be counted (every label set of the collector lost these minutes).',
      labelNames: ['collector'],
      registers: [registry],
    }),
    sessionsTruncated: new Counter({
      name: `${SELF_PREFIX}sessions_truncated_windows_total`,
      help: 'Sessions windows still full (limit sessions) at sessions.min_window: the API lists at most limit sessions a request, so some sessions of these windows were not counted.',
      labelNames: ['account'],
      registers: [registry],
    }),
    sessionsUnread: new Counter({
      name: `${SELF_PREFIX}sessions_unread_seconds_total`,
      help: 'Time spans whose sessions the API no longer listed when the exporter got to them (the API lists the last 31 days).',
      labelNames: ['account'],
      registers: [registry],
    }),
    /** The label values the current pipeline declared, so a reload can withdraw the others' series. */
    declared: { collectors: new Set<string>(), sessionAccounts: new Set<string>() },
  };
}

type ConvivaSelf = ReturnType<typeof convivaSelfMetrics>;

/**
 * Declares this pipeline's self-metric series at zero and withdraws those of collectors and
 * accounts a reload took away; series still declared keep their values.
 */
function declareSelf(self: ConvivaSelf, collectors: string[], sessionAccounts: string[]): void {
  for (const c of self.declared.collectors) if (!collectors.includes(c)) self.bucketsMissed.remove({ collector: c });
  for (const a of self.declared.sessionAccounts) {
    if (sessionAccounts.includes(a)) continue;
    self.sessionsTruncated.remove({ account: a });
    self.sessionsUnread.remove({ account: a });
  }
  for (const c of collectors) self.bucketsMissed.inc({ collector: c }, 0);
  for (const a of sessionAccounts) {
    self.sessionsTruncated.inc({ account: a }, 0);
    self.sessionsUnread.inc({ account: a }, 0);
  }
  self.declared.collectors = new Set(collectors);
  self.declared.sessionAccounts = new Set(sessionAccounts);
}

/** Conviva (https://api.conviva.com): Metrics V3 real time, DPI Flow, sample sessions. */
export const conviva = defineSource<ConvivaRawConfig, ConvivaConfig, ConvivaSelf>({
  name: 'conviva',
  configSchema: convivaConfigSchema,
  resolve: resolveConvivaConfig,
  families: [...realtimeFamilies(), ...flowFamilies(), ...sessionFamilies()],
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
      collectors.push(createRealtimeCollector({ clients, config: config.realtime, engine: services.engine, bucketsMissed: self.bucketsMissed }));
    }
    if (config.flows.enabled) {
      const http = services.httpClient(settings(FLOW_API));
      http.declareEndpoints([FLOW_MODELS_ENDPOINT, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT]);
      const clients = config.accounts.map((a) => new ConvivaFlowClient(http, a, budget(a.name)));
      collectors.push(...createFlowCollectors({
        clients, config: config.flows, engine: services.engine, bucketsMissed: self.bucketsMissed,
        budget: { perMinute: config.realtime_requests_per_minute, realtimePerMinute: config.realtime.enabled ? realtimeRequestsPerMinute(config.realtime) : 0 },
      }));
    }
    if (config.sessions.enabled) {
      const http = services.httpClient(settings(SESSIONS_API));
      http.declareEndpoints([SESSIONS_ENDPOINT]);
      // Sessions spend the historical budget (400 a minute, shared with historical metrics).
      const clients = config.accounts.map((a) => new ConvivaSessionsClient(http, a, services.budget(HISTORICAL_BUDGET, a.name, config.historical_requests_per_minute)));
      collectors.push(createSessionsCollector({ clients, config: config.sessions, engine: services.engine, truncated: self.sessionsTruncated, unread: self.sessionsUnread }));
    }
    declareSelf(
      self,
      [...(config.realtime.enabled ? [REALTIME_COLLECTOR] : []), ...(config.flows.enabled ? [FLOW_COLLECTOR] : [])],
      config.sessions.enabled ? config.accounts.map((a) => a.name) : [],
    );
    return collectors;
  },
  fake: (options) => ConvivaFake.create(options),
  useSimulator: (config, url) => ({ ...config, base_url: url, ca_file: undefined }),
});
