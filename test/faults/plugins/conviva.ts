import { documentedOutcome, flowFake, flowSettledSum, labelSets, REALTIME_COUNTERS as COUNTERS, sessionsEnded, settledSum, type FlowCountKey } from '../../conviva/expected.js';
import type { ParsedSample } from '../../helpers/exposition.js';
import type { StormPlugin } from './plugin.js';

const MINUTE = 60_000;
/** The newest settled minute at clock time t (Conviva settles a minute two minutes after it starts). */
const newestSettled = (t: number) => Math.floor((t - 2 * MINUTE) / MINUTE) * MINUTE;

/** The storm's simulator seed (test/faults/storm.test.ts). */
const SEED = 11;

const FLOW_COUNTERS: Array<[string, FlowCountKey]> = [
  ['conviva_flow_inits_total', 'init'],
  ['conviva_flow_completions_total', 'complete'],
  ['conviva_flow_successes_total', 'success'],
  ['conviva_flow_errors_total', 'error'],
];

/**
 * Conviva in the storm: two accounts (one secret inline, one from a file); real time with three
 * filters, the total and a custom tag (values with quotes, a backslash, a newline and non-ASCII):
 * 12 requests a minute, each reading back 10 minutes (revise_window) for late revisions; DPI Flow with
 * four models by platform: 16 requests a minute, and the model list; sample sessions by device OS
 * family: a request a minute. Its oracle: every `_total`
 * equals the sum of the settled minutes the simulator serves, from the newest settled minute at
 * the first run to the newest at the last, with no minute skipped or counted twice.
 */
export const convivaStorm: StormPlugin = {
  source: 'conviva',
  configBlock: `
    request_timeout: 300ms
    connect_timeout: 300ms
    retries: 2
    retry_base_delay: 5ms
    retry_max_delay: 20ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
      - { name: demo-eu, client_id: demo-eu-client, client_secret_file: "\${SECRET_DIR}/demo-eu-secret" }
    realtime:
      timeout: 800ms
      metrics: [attempts, plays, concurrent-plays, video-start-failures, rebuffering-ratio, bitrate, video-start-time, ended-plays]
      group_by: [dimension-tag/appVersion]
      filters:
        - { name: all }
        - { name: ios, dimensions: { device_os: [iOS] } }
        - { name: sports, filter_id: 1234 }
    flows:
      enabled: true
      timeout: 800ms
      discovery: { timeout: 800ms }
      group_by: [platform]
    sessions:
      enabled: true
      timeout: 800ms
      group_by: [device_os_family]
`,
  files: { 'demo-eu-secret': 'demo-eu-secret\n' },
  secrets: [
    { id: 'demo-client', secret: 'demo-secret' },
    { id: 'demo-eu-client', secret: 'demo-eu-secret' },
  ],
  paths: ['/insights/3.0/real-time-metrics', '/flow-data/real-time-metrics', '/flow-data/metadata', '/insights/3.0/sessions', '/insights/3.0/metrics/', '/flow-data/metrics/'],
  widePaths: ['/group-by/'],
  counterFamilies: [...COUNTERS.map(([family]) => family), ...FLOW_COUNTERS.map(([family]) => family), 'conviva_sessions_total'],
  mustBeZero: [
    { name: 'conviva_exporter_buckets_missed_total', labels: { collector: 'conviva_realtime' } },
    { name: 'conviva_exporter_buckets_missed_total', labels: { collector: 'conviva_flow' } },
  ],
  expected(sim, span) {
    const first = newestSettled(span.firstRunAt);
    const last = newestSettled(span.lastRunAt);
    const out: ParsedSample[] = [];
    for (const account of ['demo', 'demo-eu']) {
      for (const ls of labelSets(sim, account, ['all', 'ios', 'sports'], ['total', 'tag_appVersion'])) {
        for (const [family, key] of COUNTERS) out.push({ name: family, labels: { ...ls }, value: settledSum(sim, ls, first, last, key) });
      }
      for (const model of flowFake(sim).models(account)) {
        const rows: Array<{ dimension?: string; value?: string }> = [{}];
        if (model.dimensions.includes('platform')) rows.push(...flowFake(sim).rows(account, model.id, 'platform').map((r) => ({ dimension: 'platform', value: r.value })));
        for (const r of rows) {
          const labels = { account, flow_model_id: model.id, flow: model.label, dimension: r.dimension ?? 'total', value: r.value ?? 'total' };
          for (const [family, key] of FLOW_COUNTERS) out.push({ name: family, labels, value: flowSettledSum(sim, SEED, account, model.id, r.dimension, r.value, first, last, key) });
        }
      }
      // Sessions: every session that ended from the first read's start (now - lag - initial_lookback)
      // to the last read's end (now - lag), once, by outcome.
      const counts = new Map<string, number>();
      for (const sess of sessionsEnded(SEED, account, span.firstRunAt - 10 * MINUTE, span.lastRunAt - 5 * MINUTE)) {
        const outcome = documentedOutcome(sess);
        for (const [dimension, value] of [['total', 'total'], ['device_os_family', sess.device_info.os_family]]) {
          const k = JSON.stringify({ account, dimension, value, outcome });
          counts.set(k, (counts.get(k) ?? 0) + 1);
        }
      }
      for (const [k, v] of counts) out.push({ name: 'conviva_sessions_total', labels: JSON.parse(k) as Record<string, string>, value: v });
    }
    return out;
  },
};
