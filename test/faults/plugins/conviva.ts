import { labelSets, settledSum } from '../../conviva/expected.js';
import type { ParsedSample } from '../../helpers/exposition.js';
import type { StormPlugin } from './plugin.js';

const MINUTE = 60_000;
/** The newest settled minute at clock time t (Conviva settles a minute two minutes after it starts). */
const newestSettled = (t: number) => Math.floor((t - 2 * MINUTE) / MINUTE) * MINUTE;

const COUNTERS = [
  ['conviva_attempts_total', 'attempts'],
  ['conviva_plays_total', 'plays'],
  ['conviva_video_start_failures_total', 'video_start_failures'],
  ['conviva_ended_plays_total', 'ended_plays'],
] as const;

/**
 * Conviva real time in the storm: two accounts (one secret inline, one from a file), three
 * filters, the total and two dimensions (one a custom tag): 18 requests a minute. Its oracle: every
 * `_total` equals the sum of the settled minutes the simulator serves, from the newest settled
 * minute at the first run to the newest at the last, with no minute skipped or counted twice.
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
      group_by: [device-os, dimension-tag/appVersion]
      filters:
        - { name: all }
        - { name: ios, dimensions: { device_os: [iOS] } }
        - { name: sports, filter_id: 1234 }
`,
  files: { 'demo-eu-secret': 'demo-eu-secret\n' },
  secrets: [
    { id: 'demo-client', secret: 'demo-secret' },
    { id: 'demo-eu-client', secret: 'demo-eu-secret' },
  ],
  paths: ['/insights/3.0/real-time-metrics'],
  widePaths: ['/group-by/'],
  counterFamilies: COUNTERS.map(([family]) => family),
  mustBeZero: [{ name: 'conviva_exporter_buckets_missed_total', labels: { collector: 'conviva_realtime' } }],
  expected(sim, span) {
    const first = newestSettled(span.firstRunAt);
    const last = newestSettled(span.lastRunAt);
    const out: ParsedSample[] = [];
    for (const account of ['demo', 'demo-eu']) {
      for (const ls of labelSets(sim, account, ['all', 'ios', 'sports'], ['total', 'device_os', 'tag_appVersion'])) {
        for (const [family, key] of COUNTERS) out.push({ name: family, labels: { ...ls }, value: settledSum(sim, ls, first, last, key) });
      }
    }
    return out;
  },
};
