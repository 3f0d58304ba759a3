import { readFileSync } from 'node:fs';
import { httpSettings } from '../../config/fields.js';
import { defineSource } from '../../engine/source.js';
import { DURATIONS, EVENTS, jobFamilies } from './catalogue.js';
import { AUTH_API, AUTH_ENDPOINT, InsightsClient, QUERY_API, RESULT_ENDPOINT, STATUS_ENDPOINT, SUBMIT_ENDPOINT, TokenSource } from './client.js';
import { intelepeerConfigSchema, resolveIntelepeerConfig, type IntelepeerConfig, type IntelepeerRawConfig } from './config.js';
import { INTELEPEER_DEMO_PASSWORD, INTELEPEER_DEMO_USERNAME, IntelePeerFake } from './fake.js';
import { createQueryCollector } from './jobs.js';

/** IntelePeer Insights: scheduled warehouse queries over call and message events, their gzipped CSV results read over SFTP and counted. */
export const intelepeer = defineSource<IntelepeerRawConfig, IntelepeerConfig>({
  name: 'intelepeer',
  configSchema: intelepeerConfigSchema,
  resolve: resolveIntelepeerConfig,
  families: [EVENTS, DURATIONS, ...jobFamilies()],
  build(config, services) {
    // Two hosts: the token endpoint (customer.intelepeer.com) and the query API (api.intelepeer.com).
    const authHttp = services.httpClient(httpSettings(config, AUTH_API, config.auth_url));
    authHttp.declareEndpoints([AUTH_ENDPOINT]);
    const http = services.httpClient(httpSettings(config, QUERY_API, config.base_url.replace(/\/+$/, '')));
    http.declareEndpoints([SUBMIT_ENDPOINT, STATUS_ENDPOINT, RESULT_ENDPOINT]);
    const tokens = new TokenSource(authHttp, config.username, config.password, services.clock);
    return [createQueryCollector({ client: new InsightsClient(http, tokens), config })];
  },
  fake: (options) => IntelePeerFake.create(options),
  // The simulator serves the API under /intelepeer with its demo login, and its files over SFTP
  // (its own server in the demo; the tests' sshd).
  useSimulator: (config, { url, sftp }) => ({
    ...config,
    auth_url: `${url}/intelepeer/_rest/v4/authenticate`,
    base_url: `${url}/intelepeer/_rest/v4/dwh/Q`,
    ca_file: undefined,
    username: INTELEPEER_DEMO_USERNAME,
    password: INTELEPEER_DEMO_PASSWORD,
    sftp: sftp
      ? {
          ...config.sftp,
          host: sftp.host,
          port: sftp.port,
          username: sftp.username,
          password: sftp.password,
          privateKey: sftp.privateKeyPath === undefined ? undefined : readFileSync(sftp.privateKeyPath),
          passphrase: undefined,
          hostKeyFingerprint: sftp.fingerprint,
        }
      : config.sftp,
  }),
  // The unit is the query: its intervals, jobs, result files and state are its own. IntelePeer runs
  // at most max_running_queries (2) of the customer's queries at once, whoever submits them: each
  // shard takes its queries' share of those slots (a third submit would only wait out a 429).
  // The token is per replica (each authenticates once a day); so are its SFTP sessions.
  sharding: {
    units: (config) => config.queries.map((q) => q.name),
    keep: (config, shard) => ({
      ...config,
      queries: config.queries.filter((q) => shard.owns(q.name)),
      max_running_queries: shard.share(config.max_running_queries, config.queries.map((q) => q.name), 'max_running_queries'),
    }),
  },
});
