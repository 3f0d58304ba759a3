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
    const http = services.httpClient(httpSettings(config, INVISION_API, baseUrl));
    http.declareEndpoints([START_ENDPOINT, STATUS_ENDPOINT]);
    const collectors: Collector[] = [createDataflowCollector({ client: new InvisionClient(http, config.apiKey), config })];
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
});
