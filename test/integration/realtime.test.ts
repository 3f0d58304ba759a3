import type { Config } from '../../src/config/load.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { afterEach, describe, expect, it } from 'vitest';
import { find, value } from '../helpers/exposition.js';
import { convivaFake, finalValue, labelSets, settledSum, settledValue } from '../conviva/expected.js';
import { BASE_CONFIG, MINUTE, T0, startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';

const conviva = (c: Config) => c.sources.conviva as ConvivaConfig;
const SETTLED_AT_T0 = T0 - 30_000 - 2 * MINUTE; // 19:58:00, the newest settled bucket at 20:00:30
const C = 'conviva_realtime';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

function logsWith(s: Stack, msg: string) {
  return s.logs.filter((l) => l.msg === msg);
}

describe('conviva real-time collector against the simulator', () => {
  it('publishes the newest settled minute as gauges in base units, with health metrics', async () => {
    stack = await startStack();
    const { result, samples } = await stack.run();
    expect(result).toBe('success');
    const sim = stack.sim;
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(samples, 'conviva_attempts', total)).toBe(settledValue(sim, total, SETTLED_AT_T0, 'attempts'));
    // percentages and ratios become 0..1; seconds and bits per second stay as they are
    expect(value(samples, 'conviva_rebuffering_ratio', total)).toBeCloseTo(settledValue(sim, total, SETTLED_AT_T0, 'rebuffering_ratio') / 100, 10);
    const attempts = settledValue(sim, total, SETTLED_AT_T0, 'attempts');
    const vsf = settledValue(sim, total, SETTLED_AT_T0, 'video_start_failures');
    expect(value(samples, 'conviva_video_start_failures_ratio', total)).toBeCloseTo(Math.round((vsf / attempts) * 10000) / 10_000, 10);
    expect(value(samples, 'conviva_bitrate_bytes_per_second', total)).toBe(settledValue(sim, total, SETTLED_AT_T0, 'bitrate') / 8);
    expect(value(samples, 'conviva_video_start_time_seconds', total)).toBe(settledValue(sim, total, SETTLED_AT_T0, 'video_start_time'));
    // every label set the simulator serves is there, escaped values included
    for (const ls of labelSets(sim, 'demo', ['all', 'ios', 'sports'], ['total', 'device_os', 'tag_appVersion'])) {
      expect(find(samples, 'conviva_attempts', { ...ls })).toHaveLength(1);
    }
    expect(find(samples, 'conviva_attempts', { dimension: 'tag_appVersion', value: 'beta "canary" \\ build\n7' })).toHaveLength(3);
    expect(value(samples, 'conviva_exporter_collector_up', { collector: C })).toBe(1);
    expect(value(samples, 'conviva_exporter_collector_runs_total', { collector: C, result: 'success' })).toBe(1);
    expect(value(samples, 'conviva_exporter_data_newest_timestamp_seconds', { collector: C })).toBe(SETTLED_AT_T0 / 1000);
    expect(value(samples, 'conviva_exporter_collector_last_success_timestamp_seconds', { collector: C })).toBe(T0 / 1000);
    // one request per (filter, group-by): 3 filters x (total + 2 dimensions)
    expect(stack.sim.requests.filter((r) => r.path.includes('real-time-metrics'))).toHaveLength(9);
    expect(stack.sim.requests.every((r) => r.status === 200 && /granularity=PT1M/.test(r.query))).toBe(true);
    const ok = logsWith(stack, 'collector run succeeded');
    expect(ok).toHaveLength(1);
    expect(ok[0]).toMatchObject({ level: 20, collector: C, series: find(samples, 'conviva_exporter_collector_series')[0]!.value });
    expect(stack.logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('a re-read within the same minute keeps every gauge and adds nothing to the counters', async () => {
    stack = await startStack();
    const first = await stack.run();
    stack.clock.advance(20_000);
    const again = await stack.run();
    const data = (xs: typeof first.samples) => xs.filter((x) => x.name.startsWith('conviva_') && !x.name.startsWith('conviva_exporter_'));
    expect(data(again.samples)).toEqual(data(first.samples));
    expect(data(first.samples).length).toBeGreaterThan(100);
  });

  it('ignores the partial newest bucket and counts it once it has settled (revised later)', async () => {
    stack = await startStack();
    await stack.run();
    const partialTs = SETTLED_AT_T0 + MINUTE; // 19:59, still filling in at 20:00:30
    const ls = { account: 'demo', filter: 'all', dimension: 'device_os', value: 'iOS' };
    const served = convivaFake(stack.sim).rows('demo', { dimensions: new Map() }, convivaFake(stack.sim).dimension('device-os'))
      .find((r) => r.value === 'iOS')!;
    const { servedValues } = await import('../../src/sources/conviva/fake-data.js');
    const partial = servedValues(served.scope, partialTs, T0).attempts;
    expect(partial).toBeLessThan(finalValue(stack.sim, ls, partialTs, 'attempts')); // the simulator did serve a partial bucket
    let samples = (await stack.samples());
    expect(value(samples, 'conviva_attempts_total', ls)).toBe(settledValue(stack.sim, ls, SETTLED_AT_T0, 'attempts'));
    stack.clock.advance(MINUTE);
    ({ samples } = await stack.run());
    expect(value(samples, 'conviva_attempts', ls)).toBe(settledValue(stack.sim, ls, partialTs, 'attempts'));
    expect(value(samples, 'conviva_attempts_total', ls)).toBe(settledSum(stack.sim, ls, SETTLED_AT_T0, partialTs, 'attempts'));
    expect(logsWith(stack, 'collector run succeeded')).toHaveLength(2);
    expect(stack.logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('a refused credential after another failure warns again, naming the account', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'status', status: 500 }]);
    await stack.run();
    stack.sim.faults.set([{ kind: 'status', status: 401 }]);
    stack.clock.advance(MINUTE);
    await stack.run();
    const warns = logsWith(stack, 'collector run failed').filter((l) => l.level === 40);
    expect(warns.map((w) => w.code)).toEqual(['UPSTREAM_STATUS', 'UPSTREAM_AUTH']);
    expect(warns[1]).toMatchObject({ err: { account: 'demo', status: 401 } });
    expect(String((warns[1]!.err as { message: string }).message)).toContain('for account demo: credentials refused');
    // a repeat of the same refusal is not a new warning
    stack.clock.advance(MINUTE);
    await stack.run();
    expect(logsWith(stack, 'collector run failed').filter((l) => l.level === 40)).toHaveLength(2);
  });

  it('catches up the buckets of a failed minute on the next run', async () => {
    stack = await startStack();
    await stack.run();
    stack.sim.faults.set([{ kind: 'status', status: 500 }]);
    stack.clock.advance(MINUTE);
    const failed = await stack.run();
    expect(failed.result).toBe('failure');
    expect(value(failed.samples, 'conviva_exporter_collector_up', { collector: C })).toBe(0);
    const warn = logsWith(stack, 'collector run failed');
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ level: 40, collector: C, code: 'UPSTREAM_STATUS' });
    stack.sim.faults.clear();
    stack.clock.advance(MINUTE);
    const { result, samples } = await stack.run();
    expect(result).toBe('success');
    expect(logsWith(stack, 'collector recovered')).toHaveLength(1);
    for (const ls of labelSets(stack.sim, 'demo', ['all', 'sports'], ['total', 'device_os'])) {
      expect(value(samples, 'conviva_attempts_total', { ...ls })).toBe(settledSum(stack.sim, ls, SETTLED_AT_T0, SETTLED_AT_T0 + 2 * MINUTE, 'attempts'));
    }
    // the catch-up asked for a window reaching back over the missed minute, and over the first
    // minute counted, which is still young enough to be revised
    const last = stack.sim.requests.filter((r) => r.status === 200).at(-1)!;
    expect(last.query).toMatch(/minutes=5/);
  });

  it('honours Retry-After on a 429 and succeeds within the run', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'status', status: 429, retryAfter: 1, remaining: 1 }]);
    const started = Date.now();
    const { result, samples } = await stack.run();
    expect(result).toBe('success');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(value(samples, 'conviva_exporter_http_throttled_total', { api: 'conviva_realtime' })).toBe(1);
    expect(find(samples, 'conviva_exporter_http_retries_total').reduce((s, x) => s + x.value, 0)).toBe(1);
    expect(find(samples, 'conviva_exporter_http_requests_total', { code: '429' }).reduce((s, x) => s + x.value, 0)).toBe(1);
    const retry = logsWith(stack, 'retrying upstream request');
    expect(retry).toHaveLength(1);
    expect(retry[0]).toMatchObject({ status: 429, delayMs: 1000, code: 'UPSTREAM_THROTTLED' });
  });

  it('rides out a short 500 burst with retries, and fails the run on a longer one', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'status', status: 500, remaining: 2 }]);
    let r = await stack.run();
    expect(r.result).toBe('success');
    expect(find(r.samples, 'conviva_exporter_http_retries_total').reduce((s, x) => s + x.value, 0)).toBe(2);
    expect(logsWith(stack, 'retrying upstream request').map((l) => l.status)).toEqual([500, 500]);
    expect(logsWith(stack, 'collector run failed')).toHaveLength(0);
    stack.sim.faults.set([{ kind: 'status', status: 503, match: 'group-by/device-os' }]);
    stack.clock.advance(MINUTE);
    r = await stack.run();
    // The failing scopes (device_os, for each of the 3 filters) fail the run, and the rest publish.
    expect(r.result).toBe('failure');
    expect(value(r.samples, 'conviva_exporter_collector_up', { collector: C })).toBe(0);
    const warn = logsWith(stack, 'collector run partly failed');
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ level: 40, code: 'UPSTREAM_STATUS', failedParts: 3 });
    expect((warn[0]!.err as { status: number }).status).toBe(503);
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(r.samples, 'conviva_attempts', total)).toBe(settledValue(stack.sim, total, SETTLED_AT_T0 + MINUTE, 'attempts'));
    expect(value(r.samples, 'conviva_attempts_total', total)).toBe(settledSum(stack.sim, total, SETTLED_AT_T0, SETTLED_AT_T0 + MINUTE, 'attempts'));
    // the failed scope shows no gauge, and its counters stay where they were
    const ios = { account: 'demo', filter: 'all', dimension: 'device_os', value: 'iOS' };
    expect(find(r.samples, 'conviva_attempts', ios)).toHaveLength(0);
    expect(value(r.samples, 'conviva_attempts_total', ios)).toBe(settledValue(stack.sim, ios, SETTLED_AT_T0, 'attempts'));
    expect(stack.app.runner.status()[0]!.lastError).toMatch(/503.*\(and 2 more failed parts\)/);
    // once the fault clears, the failed scope catches up its missed minute
    stack.sim.faults.clear();
    stack.clock.advance(MINUTE);
    r = await stack.run();
    expect(r.result).toBe('success');
    expect(value(r.samples, 'conviva_attempts_total', ios)).toBe(settledSum(stack.sim, ios, SETTLED_AT_T0, SETTLED_AT_T0 + 2 * MINUTE, 'attempts'));
  });

  it('times out a hanging upstream and reports UPSTREAM_TIMEOUT', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'hang' }]);
    const r = await stack.run();
    expect(r.result).toBe('failure');
    expect(logsWith(stack, 'collector run failed')[0]).toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
    expect(find(r.samples, 'conviva_exporter_http_requests_total', { code: 'error' }).reduce((s, x) => s + x.value, 0)).toBeGreaterThan(0);
    stack.sim.faults.clear();
    stack.clock.advance(MINUTE);
    expect((await stack.run()).result).toBe('success');
  });

  it('counts a malformed body as a parse error and a (partly) failed run, without crashing', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'malformed', remaining: 1 }]);
    const r = await stack.run();
    expect(r.result).toBe('failure');
    expect(logsWith(stack, 'collector run partly failed')[0]).toMatchObject({ code: 'UPSTREAM_MALFORMED' });
    expect(find(r.samples, 'conviva_exporter_parse_errors_total').reduce((s, x) => s + x.value, 0)).toBe(1);
    stack.clock.advance(MINUTE);
    expect((await stack.run()).result).toBe('success');
  });

  it('skips and counts a run that would overlap the previous one', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'latency', latencyMs: 300 }]);
    const first = stack.app.runner.run(C);
    const second = await stack.app.runner.run(C);
    expect(second).toBe('skipped');
    expect(await first).toBe('success');
    const samples = await stack.samples();
    expect(value(samples, 'conviva_exporter_collector_skipped_total', { collector: C })).toBe(1);
    expect(logsWith(stack, 'collector run skipped: previous run still in progress')).toHaveLength(1);
  });

  it('withdraws data series after the staleness window but keeps health series', async () => {
    stack = await startStack();
    await stack.run();
    stack.sim.faults.set([{ kind: 'status', status: 500 }]);
    stack.clock.advance(4 * MINUTE);
    let r = await stack.run();
    expect(find(r.samples, 'conviva_attempts').length).toBeGreaterThan(0);
    stack.clock.advance(2 * MINUTE);
    r = await stack.run();
    expect(find(r.samples, 'conviva_attempts')).toHaveLength(0);
    expect(find(r.samples, 'conviva_attempts_total')).toHaveLength(0);
    expect(value(r.samples, 'conviva_exporter_collector_up', { collector: C })).toBe(0);
    expect(value(r.samples, 'conviva_exporter_collector_series', { collector: C })).toBe(0);
    expect(logsWith(stack, 'collector data withdrawn: no successful run within the staleness window')).toHaveLength(1);
    // only one warning for a collector that keeps failing the same way
    expect(logsWith(stack, 'collector run failed').filter((l) => l.level === 40)).toHaveLength(1);
  });

  it('after an outage longer than the 15-minute window, counts the minutes it let go from the historical API, once', async () => {
    stack = await startStack();
    await stack.run();
    stack.clock.advance(20 * MINUTE);
    let { samples } = await stack.run();
    // 20 new settled minutes, of which only the last 13 settled ones are still readable (window 15,
    // minus 2 unsettled): the 7 others are owed, not lost; and so is the first minute's growth, read
    // once only, before its late revisions were in.
    expect(value(samples, 'conviva_exporter_buckets_missed_total', { collector: C })).toBe(0);
    expect(value(samples, 'conviva_exporter_buckets_owed', { collector: C })).toBe(8);
    const ls = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    const newest = SETTLED_AT_T0 + 20 * MINUTE;
    expect(value(samples, 'conviva_attempts_total', ls)).toBe(
      settledValue(stack.sim, ls, SETTLED_AT_T0, 'attempts') + settledSum(stack.sim, ls, newest - 12 * MINUTE, newest, 'attempts'),
    );
    // The next runs read them from /metrics (granularity PT1M, explicit start and end) once they
    // are final there (20 minutes after they ended), and then add nothing more.
    for (let i = 0; i < 6; i++) {
      stack.clock.advance(MINUTE);
      ({ samples } = await stack.run());
    }
    const historical = stack.sim.requests.filter((r) => r.path.startsWith('/metrics/custom-selection'));
    expect(historical.length).toBeGreaterThan(0);
    for (const r of historical) for (const param of [/granularity=PT1M/, /start_epoch_ms=\d+/, /end_epoch_ms=\d+/]) expect(r.query).toMatch(param);
    for (const r of historical) expect(Number(/end_epoch_ms=(\d+)/.exec(r.query)![1]) - Number(/start_epoch_ms=(\d+)/.exec(r.query)![1])).toBeLessThanOrEqual(60 * MINUTE);
    expect(value(samples, 'conviva_exporter_buckets_recovered_total', { collector: C })).toBe(7);
    expect(value(samples, 'conviva_exporter_buckets_owed', { collector: C })).toBe(0);
    const reads = stack.sim.requests.filter((r) => r.path.startsWith('/metrics/')).length;
    ({ samples } = await stack.run());
    const last = SETTLED_AT_T0 + 26 * MINUTE;
    for (const set of labelSets(stack.sim, 'demo', ['all', 'ios', 'sports'], ['total', 'device_os', 'tag_appVersion'])) {
      expect(value(samples, 'conviva_attempts_total', { ...set }), JSON.stringify(set)).toBe(settledSum(stack.sim, set, SETTLED_AT_T0, last, 'attempts'));
    }
    expect(stack.sim.requests.filter((r) => r.path.startsWith('/metrics/'))).toHaveLength(reads);
  });

  it('with catch_up off, counts the minutes an outage let go as lost', async () => {
    stack = await startStack({ mutate: (c) => (conviva(c).catch_up = { enabled: false, requests_per_run: 4 }) });
    await stack.run();
    stack.clock.advance(20 * MINUTE);
    const { samples } = await stack.run();
    expect(value(samples, 'conviva_exporter_buckets_missed_total', { collector: C })).toBe(7);
    const ls = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    const newest = SETTLED_AT_T0 + 20 * MINUTE;
    expect(value(samples, 'conviva_attempts_total', ls)).toBe(
      settledValue(stack.sim, ls, SETTLED_AT_T0, 'attempts') + settledSum(stack.sim, ls, newest - 12 * MINUTE, newest, 'attempts'),
    );
  });

  it('splits more than 12 metrics over several requests per scope and merges them', async () => {
    stack = await startStack({
      mutate: (c) => {
        const rt = conviva(c).realtime;
        rt.metrics = ['attempts', 'plays', 'concurrent-plays', 'unique-devices', 'video-start-failures', 'video-playback-failures', 'exit-before-video-starts',
          'rebuffering-ratio', 'connection-induced-rebuffering-ratio', 'bitrate', 'framerate', 'video-start-time', 'video-restart-time', 'ended-plays'];
        rt.filters = [{ name: 'all' }];
        rt.group_by = ['device-os'];
      },
    });
    const { result, samples } = await stack.run();
    expect(result).toBe('success');
    const calls = stack.sim.requests.filter((r) => r.path.includes('real-time-metrics'));
    expect(calls).toHaveLength(4); // (total + device-os) x 2 requests of at most 12 metrics
    for (const c of calls) expect(c.query.match(/metric=/g)!.length).toBeLessThanOrEqual(12);
    // Rows are ranked by a metric the same request asks for (the second chunk has no attempts).
    for (const c of calls.filter((x) => x.path.includes('group-by'))) {
      const q = new URLSearchParams(c.query);
      expect(q.getAll('metric')).toContain(q.get('sort_by'));
    }
    const ios = { account: 'demo', filter: 'all', dimension: 'device_os', value: 'iOS' };
    expect(value(samples, 'conviva_attempts', ios)).toBe(settledValue(stack.sim, ios, SETTLED_AT_T0, 'attempts'));
    expect(value(samples, 'conviva_ended_plays', ios)).toBe(settledValue(stack.sim, ios, SETTLED_AT_T0, 'ended_plays'));
    expect(value(samples, 'conviva_video_restart_time_seconds', ios)).toBe(settledValue(stack.sim, ios, SETTLED_AT_T0, 'video_restart_time'));
  });

  it('a minute revised down is not subtracted from the counter: the decrease is counted on its own', async () => {
    stack = await startStack({ configText: BASE_CONFIG.replace('group_by: [device-os, dimension-tag/appVersion]', 'group_by: []').replace(/filters:[\s\S]*$/, 'filters: [{ name: all }]\n') });
    await stack.run();
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    const counted = value(await stack.samples(), 'conviva_attempts_total', total);
    // A minute later the upstream says the first minute had 100 attempts fewer.
    stack.clock.advance(MINUTE);
    const first = SETTLED_AT_T0;
    const body = { time_series: [{ timestamp: { epoch_ms: first }, attempts: { count: counted - 100 } }] };
    stack.sim.faults.set([{ kind: 'body', body: JSON.stringify(body), remaining: 1 }]);
    const { result, samples } = await stack.run();
    expect(result).toBe('success');
    expect(value(samples, 'conviva_attempts_total', total)).toBe(counted);
    expect(value(samples, 'conviva_exporter_downward_revisions_total', { collector: C, family: 'conviva_attempts_total' })).toBe(100);
  });

  it('an answer without time_series (a filter that matches no traffic) is zero rows, not malformed', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'body', body: '{"_meta": {}}', match: 'custom-selection' }]);
    const { result, samples } = await stack.run();
    expect(result).toBe('success');
    expect(find(samples, 'conviva_attempts')).toEqual([]);
    expect(find(samples, 'conviva_exporter_parse_errors_total').every((s) => s.value === 0)).toBe(true);
  });

  it('series_dropped_total lists the families the config collects, and no others', async () => {
    stack = await startStack({ mutate: (c) => (conviva(c).realtime.metrics = ['attempts', 'bitrate']) });
    const { samples } = await stack.run();
    const families = find(samples, 'conviva_exporter_series_dropped_total').map((s) => s.labels.family).sort();
    expect(families).toEqual(['conviva_attempts', 'conviva_attempts_total', 'conviva_bitrate_bytes_per_second']);
    // after a reload that collects less, the families no longer collected are gone
    const next = structuredClone(stack.config);
    conviva(next).realtime.metrics = ['bitrate'];
    await stack.app.reload(next);
    const after = find(await stack.samples(), 'conviva_exporter_series_dropped_total').map((s) => s.labels.family);
    expect(after).toEqual(['conviva_bitrate_bytes_per_second']);
  });

  it('drops series past max_series_per_metric and counts them', async () => {
    stack = await startStack({ mutate: (c) => (conviva(c).realtime.max_series_per_metric = 10) });
    const { samples } = await stack.run();
    expect(find(samples, 'conviva_attempts')).toHaveLength(10);
    expect(find(samples, 'conviva_attempts_total')).toHaveLength(10);
    expect(value(samples, 'conviva_exporter_series_dropped_total', { family: 'conviva_attempts' })).toBeGreaterThan(0);
  });
});

describe('config reload', () => {
  it('keeps counters, watermarks and readiness of unchanged scopes, and starts changed ones afresh', async () => {
    stack = await startStack();
    const s = stack;
    await s.run();
    s.clock.advance(MINUTE);
    await s.run();
    expect(s.app.runner.ready()).toBe(true);
    const next = structuredClone(s.config);
    conviva(next).realtime.group_by = ['device-os']; // the appVersion scope goes away
    conviva(next).realtime.filters[1] = { name: 'ios', dimensions: { device_os: ['iOS', 'tvOS'] } }; // changed filter
    await s.app.reload(next);
    expect(s.app.runner.ready()).toBe(true);
    expect(logsWith(s, 'configuration reloaded')).toHaveLength(1);
    s.clock.advance(MINUTE);
    const { result, samples } = await s.run();
    expect(result).toBe('success');
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(samples, 'conviva_attempts_total', total)).toBe(settledSum(s.sim, total, SETTLED_AT_T0, SETTLED_AT_T0 + 2 * MINUTE, 'attempts'));
    expect(find(samples, 'conviva_attempts_total', { dimension: 'tag_appVersion' })).toHaveLength(0);
    // the changed filter restarted from the newest settled minute
    const ios = value(samples, 'conviva_attempts_total', { filter: 'ios', dimension: 'total' });
    expect(ios).toBe(value(samples, 'conviva_attempts', { filter: 'ios', dimension: 'total' }));
  });
});
