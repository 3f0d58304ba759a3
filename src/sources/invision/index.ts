import { httpSettings } from '../../config/fields.js';
import { defineSource } from '../../engine/source.js';
import type { Collector } from '../../engine/collector.js';
import { dataflowFamilies, MONITORING_EVENTS } from './catalogue.js';
import { INVISION_API, InvisionClient, MONITORING_API, MONITORING_ENDPOINT, MonitoringClient, START_ENDPOINT, STATUS_ENDPOINT } from './client.js';
import { invisionConfigSchema, resolveInvisionConfig, type InvisionConfig, type InvisionRawConfig } from './config.js';
import { INVISION_DEMO_API_KEY, INVISION_DEMO_MONITORING_KEY, InvisionFake } from './fake.js';
import { createMonitoringCollector } from './monitoring.js';
import { createDataflowCollector } from './runs.js';

/** Profitbase InVision: Data Flow runs started on schedule and followed to their end; optionally, the Monitoring log counted by event type and level. */
export const invision = defineSource<InvisionRawConfig, InvisionConfig>({
  name: 'invision',
  configSchema: invisionConfigSchema,
  resolve: resolveInvisionConfig,
  families: [...dataflowFamilies(), MONITORING_EVENTS],
  build(config, services) {
    const baseUrl = config.base_url.replace(/\/+$/, '');
    const collectors: Collector[] = [];
    // No data flow: a shard that owns only the Monitoring log (the config has at least one).
    if (config.dataflows.length > 0) {
      const http = services.httpClient(httpSettings(config, INVISION_API, baseUrl));
      http.declareEndpoints([START_ENDPOINT, STATUS_ENDPOINT]);
      collectors.push(createDataflowCollector({ client: new InvisionClient(http, config.apiKey), config }));
    }
    const m = config.monitoring;
    if (m.enabled && m.apiKey !== undefined) {
      // Its own client: its own key, and its requests and errors under their own `api` label.
      const monitoringHttp = services.httpClient(httpSettings(config, MONITORING_API, baseUrl));
      monitoringHttp.declareEndpoints([MONITORING_ENDPOINT]);
      collectors.push(createMonitoringCollector({
        client: new MonitoringClient(monitoringHttp, m.apiKey), config: m, maxSeriesPerMetric: config.max_series_per_metric, engine: services.engine, clock: services.clock,
      }));
    }
    return collectors;
  },
  fake: (options) => InvisionFake.create(options),
  // The simulator serves InVision under /invision, with its demo keys.
  useSimulator: (config, { url }) => ({
    ...config,
    base_url: `${url}/invision`,
    ca_file: undefined,
    apiKey: INVISION_DEMO_API_KEY,
    monitoring: config.monitoring.enabled ? { ...config.monitoring, apiKey: INVISION_DEMO_MONITORING_KEY } : config.monitoring,
  }),
  // Units: each data flow (by id, not name: a renamed flow keeps its shard and its state, which is
  // kept by id) and the Monitoring log (one read of the whole site's log). Nothing is shared: the
  // API has no documented limit; each flow's starts and status reads are its own.
  sharding: {
    units: (config) => [...config.dataflows.map((f) => `dataflow/${f.id}`), ...(monitors(config) ? ['monitoring'] : [])],
    keep: (config, shard) => ({
      ...config,
      dataflows: config.dataflows.filter((f) => shard.owns(`dataflow/${f.id}`)),
      monitoring: monitors(config) && shard.owns('monitoring') ? config.monitoring : { ...config.monitoring, enabled: false },
      // Hand-overs of flows in no config go to the shard their id hashes to (which logs and removes them).
      handoverOwned: (flowId) => shard.owns(`dataflow/${flowId}`),
    }),
  },
});

/** Whether the config reads the Monitoring log. */
function monitors(config: InvisionConfig): boolean {
  return config.monitoring.enabled && config.monitoring.apiKey !== undefined;
}
