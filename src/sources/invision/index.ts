import { defineSource } from '../../engine/source.js';
import type { Collector } from '../../engine/collector.js';
import { dataflowFamilies } from './catalogue.js';
import { INVISION_API, InvisionClient, START_ENDPOINT, STATUS_ENDPOINT } from './client.js';
import { invisionConfigSchema, resolveInvisionConfig, type InvisionConfig, type InvisionRawConfig } from './config.js';
import { INVISION_DEMO_API_KEY, InvisionFake } from './fake.js';
import { createDataflowCollector } from './runs.js';

/** Profitbase InVision: Data Flow runs started on schedule and followed to their end. */
export const invision = defineSource<InvisionRawConfig, InvisionConfig>({
  name: 'invision',
  configSchema: invisionConfigSchema,
  resolve: resolveInvisionConfig,
  families: [...dataflowFamilies()],
  build(config, services) {
    const http = services.httpClient({
      api: INVISION_API,
      baseUrl: config.base_url.replace(/\/+$/, ''),
      connectTimeoutMs: config.connect_timeout,
      headersTimeoutMs: config.request_timeout,
      bodyTimeoutMs: config.request_timeout,
      maxRetries: config.retries,
      retryBaseDelayMs: config.retry_base_delay,
      retryMaxDelayMs: config.retry_max_delay,
      concurrency: config.concurrency,
      caFile: config.ca_file,
    });
    http.declareEndpoints([START_ENDPOINT, STATUS_ENDPOINT]);
    const collectors: Collector[] = [createDataflowCollector({ client: new InvisionClient(http, config.apiKey), config })];
    return collectors;
  },
  fake: (options) => InvisionFake.create(options),
  // The simulator serves InVision under /invision, with its demo key.
  useSimulator: (config, url) => ({ ...config, base_url: `${url}/invision`, ca_file: undefined, apiKey: INVISION_DEMO_API_KEY }),
});
