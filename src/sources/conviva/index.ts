import { Counter, Gauge, type Registry } from 'prom-client';
import { httpSettings } from '../../config/fields.js';
import { defineSource } from '../../engine/source.js';
import { SELF_PREFIX } from '../../engine/self-metrics.js';
import type { Collector } from '../../engine/collector.js';
import { flowFamilies, realtimeFamilies, sessionFamilies } from './catalogue.js';
import {
  ConvivaClient, ConvivaHistoryClient, FLOW_HISTORICAL_ENDPOINT, FLOW_HISTORICAL_GROUP_BY_ENDPOINT, HISTORICAL_API, HISTORICAL_ENDPOINT, HISTORICAL_GROUP_BY_ENDPOINT, ConvivaFlowClient, ConvivaSessionsClient, FLOW_API, HISTORICAL_BUDGET, SESSIONS_API, SESSIONS_ENDPOINT, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT, FLOW_MODELS_ENDPOINT, IP_BUDGET, IP_BUDGET_ACCOUNT, REALTIME_API, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT,
} from './client.js';
import { convivaConfigSchema, IP_WINDOW_MS, realtimeCostPerMinute, resolveConvivaConfig, type ConvivaConfig, type ConvivaRawConfig } from './config.js';
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
    bucketsRecovered: new Counter({
      name: `${SELF_PREFIX}buckets_recovered_total`,
      help: 'One-minute buckets the 15-minute real-time window no longer served (an outage, a restart) that were counted from the historical API instead (catch_up).',
      labelNames: ['collector'],
      registers: [registry],
    }),
    bucketsOwed: new Gauge({
      name: `${SELF_PREFIX}buckets_owed`,
      help: 'One-minute buckets the counters still owe, waiting for the historical API (catch_up), for the scope that owes the most: the counters are short by these minutes until then.',
      labelNames: ['collector'],
      registers: [registry],
    }),
    metricUnavailable: new Gauge({
      name: `${SELF_PREFIX}metric_unavailable`,
      help: 'Conviva metrics an account cannot read in real time (a 400 naming the metric): 1 while the collector leaves the metric out of that account\'s requests.',
      labelNames: ['collector', 'account', 'metric'],
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
  // A new pipeline's collectors know of no unavailable metric yet: they try each once more.
  self.metricUnavailable.reset();
  for (const c of self.declared.collectors) {
    if (collectors.includes(c)) continue;
    for (const m of [self.bucketsMissed, self.bucketsRecovered, self.bucketsOwed]) m.remove({ collector: c });
  }
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
    const settings = (api: string) => httpSettings(config, api, config.base_url);
    // Metrics V3 real time and DPI Flow real time spend one budget per account.
    const budget = (account: string) => services.budget(REALTIME_API, account, config.realtime_requests_per_minute);
    // Every request of every account and API also takes one from the per-IP limit.
    const ipBudget = services.windowBudget(IP_BUDGET, IP_BUDGET_ACCOUNT, config.ip_requests_per_5_minutes, IP_WINDOW_MS);
    const collectors: Collector[] = [];
    // The historical APIs (Metrics V3 and DPI Flow) spend the account's historical budget, shared with sessions.
    const historical = (account: string) => services.budget(HISTORICAL_BUDGET, account, config.historical_requests_per_minute);
    let historyClients: ConvivaHistoryClient[] | undefined;
    const history = () => {
      // Even with catch_up and audit off: holes carried from a run with catch_up on are let go (and counted lost).
      if (!historyClients) {
        const http = services.httpClient(settings(HISTORICAL_API));
        http.declareEndpoints([
          ...(config.realtime.enabled ? [HISTORICAL_ENDPOINT, HISTORICAL_GROUP_BY_ENDPOINT] : []),
          ...(config.flows.enabled ? [FLOW_HISTORICAL_ENDPOINT, FLOW_HISTORICAL_GROUP_BY_ENDPOINT] : []),
        ]);
        historyClients = config.accounts.map((a) => new ConvivaHistoryClient(http, a, historical(a.name), ipBudget));
      }
      const { engine } = services;
      return {
        clients: historyClients,
        config: { catch_up: config.catch_up, audit: config.audit },
        metrics: {
          bucketsRecovered: self.bucketsRecovered, bucketsMissed: self.bucketsMissed, bucketsOwed: self.bucketsOwed,
          revisedDown: engine.revisedDown, auditCounted: engine.auditCounted, auditReference: engine.auditReference, auditDivergence: engine.auditDivergence, auditMinutes: engine.auditMinutes,
        },
      };
    };
    if (config.realtime.enabled) {
      const http = services.httpClient(settings(REALTIME_API));
      http.declareEndpoints([REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT]);
      const clients = config.accounts.map((a) => new ConvivaClient(http, a, budget(a.name), ipBudget));
      collectors.push(createRealtimeCollector({ clients, config: config.realtime, engine: services.engine, bucketsMissed: self.bucketsMissed, metricUnavailable: self.metricUnavailable, history: history() }));
    }
    if (config.flows.enabled) {
      const http = services.httpClient(settings(FLOW_API));
      http.declareEndpoints([FLOW_MODELS_ENDPOINT, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT]);
      const clients = config.accounts.map((a) => new ConvivaFlowClient(http, a, budget(a.name), ipBudget));
      collectors.push(...createFlowCollectors({
        clients, config: config.flows, engine: services.engine, bucketsMissed: self.bucketsMissed,
        budget: { perMinute: config.realtime_requests_per_minute, realtimePerMinute: config.realtime.enabled ? realtimeCostPerMinute(config.realtime) : 0 },
        history: history(),
      }));
    }
    if (config.sessions.enabled) {
      const http = services.httpClient(settings(SESSIONS_API));
      http.declareEndpoints([SESSIONS_ENDPOINT]);
      // Sessions spend the historical budget (400 a minute, shared with historical metrics).
      const clients = config.accounts.map((a) => new ConvivaSessionsClient(http, a, historical(a.name), ipBudget));
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
  useSimulator: (config, { url }) => ({ ...config, base_url: url, ca_file: undefined }),
  // The unit is the account: its real-time, DPI Flow and sessions collectors' requests, and the
  // account's real-time and historical budgets, are its alone. The per-IP limit is shared by every
  // account (replicas behind one NAT leave from one address): each shard takes its accounts' share.
  sharding: {
    units: (config) => config.accounts.map((a) => a.name),
    keep: (config, shard) => ({
      ...config,
      accounts: config.accounts.filter((a) => shard.owns(a.name)),
      ip_requests_per_5_minutes: shard.share(config.ip_requests_per_5_minutes, config.accounts.map((a) => a.name), 'ip_requests_per_5_minutes'),
    }),
  },
});
