import type { Config } from '../../src/config/load.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { afterEach, describe, expect, it } from 'vitest';
import { find, value } from '../helpers/exposition.js';
import { convivaFake, settledSum, settledValue } from '../conviva/expected.js';
import { MINUTE, T0, startRealtimeStack, type Stack } from '../conviva/stack.js';

// Issue 8: a metric an account cannot read in real time (Conviva answers 400 naming it) is left out
// of that account's requests, once, instead of failing its scopes every minute.

const C = 'conviva_realtime';
const SETTLED_AT_T0 = T0 - 30_000 - 2 * MINUTE;
const UNAVAILABLE = 'conviva_exporter_metric_unavailable';
const WARNING = 'metric not available in real time for this account: left out of its requests';
const conviva = (c: Config) => c.sources.conviva as ConvivaConfig;

/** Two accounts, one filter, the total and one dimension: 2 scopes per account. */
function configText(metrics: string[]): string {
  return `
engine: { staleness: 5m, shutdown_grace: 2s }
sources:
  conviva:
    request_timeout: 400ms
    connect_timeout: 400ms
    retries: 2
    retry_base_delay: 10ms
    retry_max_delay: 40ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
      - { name: demo-eu, client_id: demo-eu-client, client_secret: demo-eu-secret }
    realtime:
      timeout: 10s
      metrics: [${metrics.join(', ')}]
      group_by: [device-os]
      filters:
        - { name: all }
`;
}
const METRICS = ['attempts', 'plays', 'video-start-time', 'video-restart-time', 'ended-plays'];

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const realtimeRequests = (s: Stack, since = 0) => s.sim.requests.slice(since).filter((r) => r.path.includes('real-time-metrics'));
const warnings = (s: Stack) => s.logs.filter((l) => l.msg === WARNING);
const requests400 = (samples: Awaited<ReturnType<Stack['samples']>>) =>
  find(samples, 'conviva_exporter_http_requests_total', { api: C, code: '400' }).reduce((sum, x) => sum + x.value, 0);

describe('a metric an account cannot read in real time', () => {
  it('is left out of that account\'s requests with one warning; the rest is served in the same run', async () => {
    stack = await startRealtimeStack({ configText: configText(METRICS) });
    convivaFake(stack.sim).setRealtimeUnavailable('demo', ['video-restart-time']);
    const demo = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    const eu = { ...demo, account: 'demo-eu' };
    const demoIos = { account: 'demo', filter: 'all', dimension: 'device_os', value: 'iOS' };

    const first = await stack.run();
    expect(first.result).toBe('success');
    expect(value(first.samples, 'conviva_exporter_collector_up', { collector: C })).toBe(1);
    // One warning, naming the account and the metric, whatever the number of scopes that met the 400.
    const warned = warnings(stack);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, collector: C, account: 'demo', metric: 'video-restart-time' });
    expect(JSON.stringify(stack.logs)).not.toMatch(/demo-secret|ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ/);
    expect(stack.logs.filter((l) => l.level >= 40 && l.msg !== WARNING)).toEqual([]);
    // The 400s were real: at least one of demo's two scopes asked, and none of demo-eu's was refused.
    const refused = realtimeRequests(stack).filter((r) => r.status === 400);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeLessThanOrEqual(2);
    expect(refused.every((r) => /metric=video-restart-time/.test(r.query))).toBe(true);
    expect(requests400(first.samples)).toBe(refused.length);
    // demo's other metrics and counters are there in the same run, in both of its scopes ...
    expect(value(first.samples, 'conviva_attempts', demo)).toBe(settledValue(stack.sim, demo, SETTLED_AT_T0, 'attempts'));
    expect(value(first.samples, 'conviva_video_start_time_seconds', demo)).toBe(settledValue(stack.sim, demo, SETTLED_AT_T0, 'video_start_time'));
    expect(value(first.samples, 'conviva_attempts_total', demoIos)).toBe(settledValue(stack.sim, demoIos, SETTLED_AT_T0, 'attempts'));
    expect(value(first.samples, 'conviva_ended_plays_total', demo)).toBe(settledValue(stack.sim, demo, SETTLED_AT_T0, 'ended_plays'));
    // ... without the metric it cannot read; demo-eu, which can, still gets it.
    expect(find(first.samples, 'conviva_video_restart_time_seconds', { account: 'demo' })).toHaveLength(0);
    expect(value(first.samples, 'conviva_video_restart_time_seconds', eu)).toBe(settledValue(stack.sim, eu, SETTLED_AT_T0, 'video_restart_time'));
    expect(find(first.samples, 'conviva_video_restart_time_seconds', { account: 'demo-eu', dimension: 'device_os' }).length).toBeGreaterThan(0);
    // The SRE's view: one series, for demo only.
    expect(find(first.samples, UNAVAILABLE)).toEqual([
      expect.objectContaining({ labels: { collector: C, account: 'demo', metric: 'video-restart-time' }, value: 1 }),
    ]);

    // Later runs ask no more for it for demo: only demo-eu's two scopes name it, and nothing is refused.
    for (let i = 1; i <= 2; i++) {
      const since = stack.sim.requests.length;
      stack.clock.advance(MINUTE);
      const later = await stack.run();
      expect(later.result).toBe('success');
      const asked = realtimeRequests(stack, since);
      expect(asked).toHaveLength(4); // 2 accounts x (total + device-os)
      expect(asked.every((r) => r.status === 200)).toBe(true);
      expect(asked.filter((r) => /metric=video-restart-time/.test(r.query))).toHaveLength(2);
      expect(requests400(later.samples)).toBe(refused.length);
      expect(warnings(stack)).toHaveLength(1);
      expect(value(later.samples, UNAVAILABLE, { account: 'demo', metric: 'video-restart-time' })).toBe(1);
      expect(value(later.samples, 'conviva_attempts_total', demo)).toBe(settledSum(stack.sim, demo, SETTLED_AT_T0, SETTLED_AT_T0 + i * MINUTE, 'attempts'));
      expect(value(later.samples, 'conviva_video_restart_time_seconds', eu)).toBe(settledValue(stack.sim, eu, SETTLED_AT_T0 + i * MINUTE, 'video_restart_time'));
    }
  });

  it('keeps sort_by one of the metrics asked for when the one it ranked by is left out', async () => {
    stack = await startRealtimeStack({ configText: configText(METRICS) });
    convivaFake(stack.sim).setRealtimeUnavailable('demo', ['attempts']);
    const first = await stack.run();
    expect(first.result).toBe('success');
    expect(warnings(stack)).toHaveLength(1);
    expect(warnings(stack)[0]).toMatchObject({ account: 'demo', metric: 'attempts' });
    const since = stack.sim.requests.length;
    stack.clock.advance(MINUTE);
    const later = await stack.run();
    expect(later.result).toBe('success');
    const grouped = realtimeRequests(stack, since).filter((r) => r.path.includes('group-by'));
    expect(grouped).toHaveLength(2);
    expect(grouped.every((r) => r.status === 200)).toBe(true);
    // demo's group-by asks without attempts and ranks by plays; demo-eu's still ranks by attempts.
    expect(grouped.map((r) => new URLSearchParams(r.query).get('sort_by')).sort()).toEqual(['attempts', 'plays']);
    const ios = { account: 'demo', filter: 'all', dimension: 'device_os', value: 'iOS' };
    expect(find(later.samples, 'conviva_attempts_total', { account: 'demo' })).toHaveLength(0);
    expect(value(later.samples, 'conviva_plays', ios)).toBe(settledValue(stack.sim, ios, SETTLED_AT_T0 + MINUTE, 'plays'));
    expect(find(later.samples, 'conviva_attempts_total', { account: 'demo-eu' }).length).toBeGreaterThan(0);
  });

  it('skips a request left without metrics (more than 12 metrics, the second request only asked for it)', async () => {
    const many = ['attempts', 'plays', 'concurrent-plays', 'unique-devices', 'video-start-failures', 'video-playback-failures',
      'exit-before-video-starts', 'rebuffering-ratio', 'connection-induced-rebuffering-ratio', 'bitrate', 'framerate', 'video-start-time',
      'video-restart-time'];
    stack = await startRealtimeStack({ configText: configText(many) });
    convivaFake(stack.sim).setRealtimeUnavailable('demo', ['video-restart-time']);
    expect((await stack.run()).result).toBe('success');
    expect(warnings(stack)).toHaveLength(1);
    const since = stack.sim.requests.length;
    stack.clock.advance(MINUTE);
    const later = await stack.run();
    expect(later.result).toBe('success');
    const asked = realtimeRequests(stack, since);
    // demo-eu: 2 scopes x 2 requests; demo: 2 scopes x 1 (the second would ask for nothing).
    expect(asked).toHaveLength(6);
    expect(asked.filter((r) => /metric=video-restart-time/.test(r.query))).toHaveLength(2);
    const demo = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(later.samples, 'conviva_framerate_frames_per_second', demo)).toBe(settledValue(stack.sim, demo, SETTLED_AT_T0 + MINUTE, 'framerate'));
  });

  it('a reload tries the metric once more, and withdraws the series of an account that went away', async () => {
    stack = await startRealtimeStack({ configText: configText(METRICS) });
    const s = stack;
    convivaFake(s.sim).setRealtimeUnavailable('demo', ['video-restart-time']);
    await s.run();
    expect(warnings(s)).toHaveLength(1);
    await s.app.reload(structuredClone(s.config));
    expect(find(await s.samples(), UNAVAILABLE)).toHaveLength(0);
    s.clock.advance(MINUTE);
    let r = await s.run();
    expect(r.result).toBe('success');
    expect(warnings(s)).toHaveLength(2);
    expect(value(r.samples, UNAVAILABLE, { account: 'demo', metric: 'video-restart-time' })).toBe(1);
    // demo goes away: so does its series, and demo-eu has none.
    const next = structuredClone(s.config);
    conviva(next).accounts = conviva(next).accounts.filter((a) => a.name !== 'demo');
    await s.app.reload(next);
    s.clock.advance(MINUTE);
    r = await s.run();
    expect(r.result).toBe('success');
    expect(find(r.samples, UNAVAILABLE)).toHaveLength(0);
    expect(warnings(s)).toHaveLength(2);
  });
});

describe('a 400 that names no metric of the request', () => {
  const cases: Array<[string, string]> = [
    ['names no metric', '{"name":"InvalidParameter","message":"filter_id 999 is not a saved filter"}'],
    ['names a metric not asked for', '{"name":"InvalidParameter","message":"metric framerate is not available in real time for this account"}'],
    // `plays` is asked for, but only as part of another metric's name
    ['names a metric only as part of another name', '{"name":"InvalidParameter","message":"metric concurrent-plays is not available in real time for this account"}'],
  ];
  for (const [what, body] of cases) {
    it(`still fails the scope when it ${what}`, async () => {
      stack = await startRealtimeStack({ configText: configText(METRICS) });
      stack.sim.faults.set([{ kind: 'body', status: 400, body, match: 'group-by/device-os' }]);
      const r = await stack.run();
      expect(r.result).toBe('failure');
      const failed = stack.logs.filter((l) => l.msg === 'collector run partly failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ level: 40, code: 'UPSTREAM_STATUS', failedParts: 2, err: { status: 400 } });
      expect(warnings(stack)).toHaveLength(0);
      expect(find(r.samples, UNAVAILABLE)).toHaveLength(0);
      // no retry without a metric: one refused request per failing scope
      expect(realtimeRequests(stack).filter((x) => x.status === 400)).toHaveLength(2);
      // the ungrouped scopes are served
      expect(find(r.samples, 'conviva_attempts', { dimension: 'total' })).toHaveLength(2);
      expect(find(r.samples, 'conviva_attempts', { dimension: 'device_os' })).toHaveLength(0);
    });
  }
});

describe('the error body a failed request carries', () => {
  it('is redacted: an echoed Authorization header never reaches the error or the log', async () => {
    stack = await startRealtimeStack({ configText: configText(METRICS) });
    stack.sim.faults.set([{ kind: 'status', status: 400, echoAuth: true, match: 'group-by/device-os' }]);
    expect((await stack.run()).result).toBe('failure');
    const failed = stack.logs.find((l) => l.msg === 'collector run partly failed')!;
    const err = failed.err as { detail: string; message: string };
    expect(err.detail).toContain('simulated 400');
    expect(err.detail).toContain('"authorization":"[REDACTED]"');
    expect(err.message).toContain(err.detail);
    const secrets = ['demo-secret', 'demo-eu-secret', Buffer.from('demo-client:demo-secret').toString('base64'), Buffer.from('demo-eu-client:demo-eu-secret').toString('base64')];
    const logged = JSON.stringify(stack.logs);
    for (const secret of secrets) expect(logged).not.toContain(secret);
    expect(warnings(stack)).toHaveLength(0);
  });
});

describe('the simulator', () => {
  it('refuses real-time requests for a metric an account cannot read, set through /_admin, and serves historical ones', async () => {
    stack = await startRealtimeStack({ configText: configText(METRICS) });
    const base = stack.sim.url;
    const auth = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
    const eu = auth('demo-eu-client', 'demo-eu-secret');
    const put = (body: unknown) => fetch(`${base}/_admin/conviva/realtime-unavailable`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // a bad name is refused and nothing is applied
    const bad = await put({ 'demo-eu': ['video-restart-time', 'no-such-metric'] });
    expect(bad.status).toBe(400);
    expect(await (await fetch(`${base}/_admin/conviva/realtime-unavailable`)).json()).toEqual({});
    const ok = await put({ 'demo-eu': ['exits-before-video-start'] });
    expect(await ok.json()).toEqual({ 'demo-eu': ['exit-before-video-starts'] });
    const rt = (metric: string, headers: Record<string, string>) => fetch(`${base}/insights/3.0/real-time-metrics/custom-selection?metric=attempts&metric=${metric}&minutes=2`, { headers });
    const refused = await rt('exit-before-video-starts', eu);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ name: 'InvalidParameter', message: 'metric exit-before-video-starts is not available in real time for this account' });
    expect((await rt('exit-before-video-starts', auth('demo-client', 'demo-secret'))).status).toBe(200);
    expect((await rt('plays', eu)).status).toBe(200);
    const historical = await fetch(`${base}/insights/3.0/metrics/custom-selection?metric=exit-before-video-starts&days=1`, { headers: eu });
    expect(historical.status).toBe(200);
    // [] gives the account everything back
    await put({ 'demo-eu': [] });
    expect((await rt('exit-before-video-starts', eu)).status).toBe(200);
  });
});
