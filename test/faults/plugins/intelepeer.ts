import type { Simulator } from '../../../src/simulator/server.js';
import { labelName } from '../../../src/sources/intelepeer/config.js';
import type { IntelePeerFake } from '../../../src/sources/intelepeer/fake.js';
import type { ParsedSample } from '../../helpers/exposition.js';
import type { StormPlugin } from './plugin.js';

const QUERIES = [
  { name: 'exits', event: 'ApplicationExitEvent', groupBy: ['FlowName', 'ExitReason'], schedule: '*/15 * * * *', lookback: '15m' },
  { name: 'calls', event: 'CallEvent', groupBy: ['Direction'], schedule: '*/10 * * * *', lookback: '10m' },
];
/** Every group_by label of the queries, in order of first use: each series carries them all. */
const LABELS = [...new Set(QUERIES.flatMap((q) => q.groupBy.map(labelName)))];

/**
 * IntelePeer in the storm: two queries (every 15 and every 10 minutes) submitted, followed and
 * their results read over the simulator's own SFTP server through every fault, crash, reload,
 * restart and clock step. Lag 45m: a clock stepped back 30 minutes still submits an interval
 * after its end (the fake lists only events before a query's submission, as a warehouse would).
 * Its oracle: for each query, the counters equal the simulator's events from the first interval's
 * start (`origin` in the state) to where counting stands (the oldest interval not counted, or the
 * end of the last one cut), each event once.
 */
export const intelepeerStorm: StormPlugin = {
  source: 'intelepeer',
  configBlock: `
    username_file: "\${SECRET_DIR}/intelepeer-username"
    password_file: "\${SECRET_DIR}/intelepeer-password"
    request_timeout: 300ms
    connect_timeout: 300ms
    retries: 2
    retry_base_delay: 5ms
    retry_max_delay: 20ms
    timeout: 3s
    max_download_attempts: 2
    sftp:
      host: 127.0.0.1
      username: placeholder
      password: placeholder
      host_key_fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
      connect_timeout: 2s
    queries:
${QUERIES.map((q) => `      - { name: ${q.name}, event: ${q.event}, schedule: "${q.schedule}", lag: 45m, initial_lookback: ${q.lookback}, group_by: [${q.groupBy.join(', ')}] }`).join('\n')}
`,
  files: { 'intelepeer-username': 'demo-intelepeer\n', 'intelepeer-password': 'demo-intelepeer-password\n' },
  secrets: [{ id: 'demo-intelepeer', secret: 'demo-intelepeer-password' }, { secret: 'demo-sftp-password' }],
  paths: ['/intelepeer/_rest/v4'],
  counterFamilies: ['intelepeer_events_total'],
  expected(sim: Simulator, span) {
    const state = (span.state as { intelepeer_queries?: { state?: { queries?: Record<string, { origin?: number; planned?: number }>; jobs?: Array<{ query: string; from: number }> } } } | undefined)?.intelepeer_queries?.state;
    const out: ParsedSample[] = [];
    for (const q of QUERIES) {
      const st = state?.queries?.[q.name];
      if (st?.origin === undefined || st.planned === undefined) continue;
      const waiting = (state?.jobs ?? []).filter((j) => j.query === q.name).map((j) => j.from);
      const until = waiting.length > 0 ? Math.min(...waiting) : st.planned;
      const counts = new Map<string, number>();
      for (const e of sim.fake<IntelePeerFake>('intelepeer').events(q.event, st.origin, until)) {
        const k = JSON.stringify(q.groupBy.map((f) => e[f] ?? ''));
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      for (const [k, n] of counts) {
        const values = JSON.parse(k) as string[];
        const labels: Record<string, string> = { query: q.name, event: q.event };
        for (const l of LABELS) labels[l] = '';
        q.groupBy.forEach((f, i) => (labels[labelName(f)] = values[i]!));
        out.push({ name: 'intelepeer_events_total', labels, value: n });
      }
    }
    return out;
  },
};
