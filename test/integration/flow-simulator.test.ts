import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import type { ConvivaFake } from '../../src/sources/conviva/fake.js';
import { FLOW_DIMENSIONS, FLOW_METRICS, flowMinuteValues, flowServedValues, type FlowMinuteValues } from '../../src/sources/conviva/flow-fake.js';
import { Simulator } from '../../src/simulator/server.js';

const SEED = 3;
const T = Date.UTC(2026, 10, 23, 20, 0, 30);
const MINUTE_NOW = T - 30_000;
const clock = new ManualClock(T);
const sim = new Simulator({ clock, seed: SEED });
const flows = sim.fake<ConvivaFake>('conviva').flows;
const auth = { authorization: `Basic ${Buffer.from('demo-client:demo-secret').toString('base64')}` };

beforeAll(async () => {
  await sim.listen();
});
afterAll(async () => {
  await sim.close();
});
afterEach(() => {
  clock.set(T);
  sim.faults.clear();
});

async function get(path: string, headers: Record<string, string> = auth, base = sim.url) {
  const res = await fetch(`${base}${path}`, { headers });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body: body as Record<string, unknown> };
}

async function admin(method: string, path: string, body?: unknown) {
  const res = await fetch(`${sim.url}/_admin/conviva${path}`, {
    method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> };
}

type Metrics = Record<string, { count?: number; value?: number }>;
interface Bucket {
  timestamp: { epoch_ms: number; iso_date: string };
  metrics?: Metrics;
  dimensional_data?: Array<{ dimension: { key: string; value: string }; metrics: Metrics }>;
}
interface ModelJson { id: string; label: string; created_at: { epoch_ms: number }; updated_at: { epoch_ms: number } }

const series = (r: { body: Record<string, unknown> }) => r.body.time_series as Bucket[];

/** The response's metrics object for the values, keeping only the model's metrics. */
function expected(v: FlowMinuteValues, metrics: readonly string[]): Metrics {
  return Object.fromEntries(metrics.map((k) => [k, k === 'avg_duration' || k === 'percentage' ? { value: v[k] } : { count: v[k as keyof FlowMinuteValues] }]));
}

describe('simulator: Conviva DPI Flow API', () => {
  it('lists the four default flow models at the host root', async () => {
    const r = await get('/flow-data/metadata/flow-models');
    expect(r.status).toBe(200);
    const models = r.body.flow_models as Array<Record<string, unknown>>;
    expect(models.map((m) => m.id)).toEqual(['fm_login_01', 'fm_signup_01', 'fm_checkout_01', 'fm_playback_start']);
    expect(models[0]).toEqual({
      id: 'fm_login_01', label: 'Login',
      metrics: ['init', 'complete', 'avg_duration', 'success', 'error', 'percentage'],
      dimensions: ['platform', 'app_version', 'geo_country_code'],
      is_conviva_defined: false,
      created_at: { epoch_ms: 1700000000000, iso_date: '2023-11-14T22:13:20Z' },
      updated_at: { epoch_ms: 1700000000000, iso_date: '2023-11-14T22:13:20Z' },
    });
    expect(models[1]).toMatchObject({ metrics: ['init', 'complete', 'success', 'error', 'percentage'], dimensions: ['platform'] });
    expect(models[3]).toMatchObject({ label: 'Playback start', is_conviva_defined: true });
    expect((await get('/insights/3.0/flow-data/metadata/flow-models')).status).toBe(404);
  });

  it('requires Basic auth and answers GET only', async () => {
    expect((await get('/flow-data/metadata/flow-models', {})).status).toBe(401);
    const wrong = await get('/flow-data/real-time-metrics/fm_login_01/last_1_minutes', { authorization: `Basic ${Buffer.from('demo-client:nope').toString('base64')}` });
    expect(wrong).toMatchObject({ status: 401, body: { message: 'Unauthorized' } });
    const post = await fetch(`${sim.url}/flow-data/metadata/flow-models`, { method: 'POST', headers: auth });
    expect(post.status).toBe(405);
  });

  it('serves last_N_minutes ungrouped: the model\'s metrics only, minute buckets up to the current partial one', async () => {
    const r = await get('/flow-data/real-time-metrics/fm_signup_01/last_3_minutes');
    expect(r.status).toBe(200);
    const ts = series(r);
    expect(ts.map((b) => b.timestamp.epoch_ms)).toEqual([MINUTE_NOW - 120_000, MINUTE_NOW - 60_000, MINUTE_NOW]);
    expect(ts[2]!.timestamp.iso_date).toBe('2026-11-23T20:00:00Z');
    const metrics = ['init', 'complete', 'success', 'error', 'percentage'];
    for (const b of ts) {
      expect(Object.keys(b.metrics!)).toEqual(metrics);
      expect(b.metrics).toEqual(expected(flowServedValues(SEED, 'demo', 'fm_signup_01', '', 1, b.timestamp.epoch_ms, T), metrics));
    }
    // two minutes old is settled; the current minute is a quarter in
    expect(ts[0]!.metrics).toEqual(expected(flowMinuteValues(SEED, 'demo', 'fm_signup_01', '', 1, MINUTE_NOW - 120_000), metrics));
    const full = flowMinuteValues(SEED, 'demo', 'fm_signup_01', '', 1, MINUTE_NOW);
    expect(ts[2]!.metrics!.init!.count).toBe(Math.floor(full.init * 0.25));
    expect(ts[2]!.metrics!.init!.count).toBeLessThan(full.init);
    clock.advance(120_000);
    const later = series(await get('/flow-data/real-time-metrics/fm_signup_01/last_5_minutes'));
    expect(later.find((b) => b.timestamp.epoch_ms === MINUTE_NOW)!.metrics).toEqual(expected(full, metrics));
    expect(series(await get('/flow-data/real-time-metrics/fm_login_01/last_15_minutes'))).toHaveLength(15);
  });

  it('groups by a dimension the model lists, one row per value as rows() selects', async () => {
    const r = await get('/flow-data/real-time-metrics/fm_login_01/last_2_minutes/group-by/geo_country_code');
    expect(r.status).toBe(200);
    const rows = flows.rows('demo', 'fm_login_01', 'geo_country_code');
    expect(rows.map((x) => x.value)).toEqual([...FLOW_DIMENSIONS.geo_country_code!]);
    expect(rows.reduce((s, x) => s + x.weight, 0)).toBeCloseTo(1, 10);
    for (const b of series(r)) {
      expect(b.metrics).toBeUndefined();
      expect(b.dimensional_data).toEqual(rows.map((x) => ({
        dimension: { key: 'geo_country_code', value: x.value },
        metrics: expected(flowServedValues(SEED, 'demo', 'fm_login_01', x.rowKey, x.weight, b.timestamp.epoch_ms, T), FLOW_METRICS),
      })));
    }
    const eu = await get('/flow-data/real-time-metrics/fm_playback_start/last_1_minutes/group-by/platform', { authorization: `Basic ${Buffer.from('demo-eu-client:demo-eu-secret').toString('base64')}` });
    const row = flows.rows('demo-eu', 'fm_playback_start', 'platform')[0]!;
    expect(series(eu)[0]!.dimensional_data![0]!.metrics).toEqual(expected(flowServedValues(SEED, 'demo-eu', 'fm_playback_start', row.rowKey, row.weight, MINUTE_NOW, T), FLOW_METRICS));
  });

  it('serves historical minutes in [start, end), at most an hour, at most 7 days back, never past now', async () => {
    const start = T - 3 * 3_600_000 - 30_000;
    const r = await get(`/flow-data/metrics/fm_checkout_01/${start}_to_${start + 3_600_000}/group-by/platform`);
    expect(r.status).toBe(200);
    const ts = series(r);
    expect(ts).toHaveLength(60);
    expect(ts[0]!.timestamp.epoch_ms).toBe(start);
    const rows = flows.rows('demo', 'fm_checkout_01', 'platform');
    for (const b of ts) {
      expect(b.dimensional_data!.map((d) => d.metrics)).toEqual(rows.map((x) => expected(flowMinuteValues(SEED, 'demo', 'fm_checkout_01', x.rowKey, x.weight, b.timestamp.epoch_ms), FLOW_METRICS)));
    }
    const aWeekAgo = T - 7 * 24 * 3_600_000;
    expect(series(await get(`/flow-data/metrics/fm_checkout_01/${aWeekAgo}_to_${aWeekAgo + 1_800_000}`))).toHaveLength(30);
    // unaligned: minutes starting inside the range
    expect(series(await get(`/flow-data/metrics/fm_checkout_01/${start + 1}_to_${start + 180_001}`)).map((b) => b.timestamp.epoch_ms)).toEqual([start + 60_000, start + 120_000, start + 180_000]);
    // the end is cut at now: the current minute comes partial, later ones not at all
    const edge = series(await get(`/flow-data/metrics/fm_checkout_01/${MINUTE_NOW - 60_000}_to_${MINUTE_NOW + 1_800_000}`));
    expect(edge.map((b) => b.timestamp.epoch_ms)).toEqual([MINUTE_NOW - 60_000, MINUTE_NOW]);
    expect(edge[1]!.metrics).toEqual(expected(flowServedValues(SEED, 'demo', 'fm_checkout_01', '', 1, MINUTE_NOW, T), FLOW_METRICS));
  });

  it('answers 400 to bad parameters and 404 to unknown models and paths', async () => {
    const start = T - 7_200_000;
    for (const p of [
      '/flow-data/real-time-metrics/fm_login_01/last_16_minutes',
      '/flow-data/real-time-metrics/fm_login_01/last_0_minutes',
      '/flow-data/real-time-metrics/fm_login_01/last_5_hours',
      '/flow-data/real-time-metrics/fm_signup_01/last_5_minutes/group-by/app_version',
      '/flow-data/real-time-metrics/fm_login_01/last_5_minutes/group-by/device_os',
      `/flow-data/metrics/fm_login_01/${start}_to_${start + 3_600_001}`,
      `/flow-data/metrics/fm_login_01/${T - 7 * 24 * 3_600_000 - 1}_to_${T - 7 * 24 * 3_600_000 + 60_000}`,
      `/flow-data/metrics/fm_login_01/${start}_to_${start}`,
      `/flow-data/metrics/fm_login_01/${start}-${start + 60_000}`,
      '/flow-data/metrics/fm_login_01/yesterday_to_today',
    ]) {
      const r = await get(p);
      expect(r.status, p).toBe(400);
      expect(r.body, p).toMatchObject({ name: 'InvalidParameter' });
    }
    for (const p of [
      '/flow-data/real-time-metrics/fm_nope/last_5_minutes',
      `/flow-data/metrics/fm_nope/${start}_to_${start + 60_000}`,
      '/flow-data/real-time-metrics/fm_login_01',
      '/flow-data/real-time-metrics/fm_login_01/last_5_minutes/by/platform',
      '/flow-data/metadata/dimensions',
    ]) {
      const r = await get(p);
      expect(r.status, p).toBe(404);
      expect(r.body, p).toMatchObject({ name: 'NotFound' });
    }
  });

  it('keeps the flow invariants on every model and row over a day', () => {
    for (const m of flows.models('demo')) {
      for (const dim of [undefined, ...m.dimensions]) {
        for (const r of flows.rows('demo', m.id, dim)) {
          for (let ts = MINUTE_NOW - 86_400_000; ts <= MINUTE_NOW; ts += 37 * 60_000) {
            const v = flowMinuteValues(SEED, 'demo', m.id, r.rowKey, r.weight, ts);
            for (const k of ['init', 'complete', 'success', 'error'] as const) expect(Number.isInteger(v[k])).toBe(true);
            expect(v.complete).toBe(v.success + v.error);
            expect(v.complete).toBeLessThanOrEqual(v.init);
            expect(v.avg_duration).toBeGreaterThanOrEqual(800);
            expect(v.avg_duration).toBeLessThanOrEqual(6000);
            expect(v.percentage).toBe(v.complete > 0 ? Math.round((v.success / v.complete) * 10000) / 100 : 0);
            const partial = flowServedValues(SEED, 'demo', m.id, r.rowKey, r.weight, ts, ts + 30_000);
            expect(partial).toMatchObject({ init: Math.floor(v.init / 4), avg_duration: v.avg_duration, percentage: v.percentage });
          }
        }
      }
    }
    // flows are fewer than video attempts, login more than checkout
    const login = flowMinuteValues(SEED, 'demo', 'fm_login_01', '', 1, MINUTE_NOW).init;
    const checkout = flowMinuteValues(SEED, 'demo', 'fm_checkout_01', '', 1, MINUTE_NOW).init;
    expect(login).toBeGreaterThan(checkout);
  });

  it('is deterministic: the same seed serves the same numbers, another seed others', async () => {
    const path = `/flow-data/metrics/fm_login_01/${T - 7_200_000}_to_${T - 3_600_000}/group-by/app_version`;
    const same = new Simulator({ clock, seed: SEED });
    const other = new Simulator({ clock, seed: SEED + 1 });
    try {
      const [a, b, c] = await Promise.all([get(path), same.listen().then((u) => get(path, auth, u)), other.listen().then((u) => get(path, auth, u))]);
      expect(a.status).toBe(200);
      expect(b.body).toEqual(a.body);
      expect(c.body).not.toEqual(a.body);
    } finally {
      await Promise.all([same.close(), other.close()]);
    }
  });

  it('adds, renames and deletes models through /_admin/conviva/flow-models', async () => {
    const model = { id: 'fm_search_01', label: 'Search', metrics: ['init', 'success', 'percentage'], dimensions: ['platform'] };
    const added = await admin('POST', '/flow-models', { account: 'demo', model });
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ ...model, is_conviva_defined: false, created_at: { epoch_ms: T }, updated_at: { epoch_ms: T } });
    expect((await admin('POST', '/flow-models', { account: 'demo', model })).status).toBe(409);
    for (const bad of [{}, { model: { ...model, id: 'fm_other', metrics: ['views'] } }, { model: { ...model, id: 'fm_other', dimensions: ['cdn'] } }, { model: { ...model, label: 3 } }, { account: 'nobody', model: { ...model, id: 'fm_other' } }]) {
      expect((await admin('POST', '/flow-models', bad)).status, JSON.stringify(bad)).toBe(bad.account === 'nobody' ? 404 : 400);
    }
    // only the named account has it, and the API serves it
    expect(((await admin('GET', '/flow-models?account=demo-eu')).body.flow_models as ModelJson[]).map((m) => m.id)).not.toContain('fm_search_01');
    const served = series(await get('/flow-data/real-time-metrics/fm_search_01/last_1_minutes/group-by/platform'));
    expect(Object.keys(served[0]!.dimensional_data![0]!.metrics)).toEqual(['init', 'success', 'percentage']);

    clock.advance(90_000);
    expect((await admin('PATCH', '/flow-models/fm_search_01', { label: 'Site search' })).status).toBe(204);
    const listed = ((await admin('GET', '/flow-models?account=demo')).body.flow_models as ModelJson[]).find((m) => m.id === 'fm_search_01')!;
    expect(listed).toMatchObject({ id: 'fm_search_01', label: 'Site search', created_at: { epoch_ms: T }, updated_at: { epoch_ms: T + 90_000 } });
    expect(((await get('/flow-data/metadata/flow-models')).body.flow_models as ModelJson[]).find((m) => m.id === 'fm_search_01')!.label).toBe('Site search');
    expect((await admin('PATCH', '/flow-models/fm_search_01', {})).status).toBe(400);
    expect((await admin('PATCH', '/flow-models/fm_nope', { label: 'x' })).status).toBe(404);

    expect((await admin('DELETE', '/flow-models/fm_search_01?account=demo')).status).toBe(204);
    expect((await get('/flow-data/real-time-metrics/fm_search_01/last_1_minutes')).status).toBe(404);
    expect((await admin('DELETE', '/flow-models/fm_search_01?account=demo')).status).toBe(404);
    expect((await admin('GET', '/flow-models')).status).toBe(400);
  });

  it('adds to every account when none is named', async () => {
    const model = { id: 'fm_everywhere', label: 'Everywhere', metrics: ['init'], dimensions: [], is_conviva_defined: true };
    expect((await admin('POST', '/flow-models', { model })).status).toBe(201);
    for (const account of ['demo', 'demo-eu']) expect(flows.models(account).find((m) => m.id === 'fm_everywhere')).toMatchObject({ isConvivaDefined: true });
    expect((await admin('DELETE', '/flow-models/fm_everywhere')).status).toBe(204);
    expect(flows.models('demo-eu').map((m) => m.id)).not.toContain('fm_everywhere');
  });

  it('applies fault switches to /flow-data but not to the admin routes', async () => {
    sim.faults.set([{ kind: 'status', status: 503, match: '/flow-data' }, { kind: 'status', status: 429, retryAfter: 3 }]);
    expect((await get('/flow-data/real-time-metrics/fm_login_01/last_1_minutes')).status).toBe(503);
    expect((await get('/flow-data/metadata/flow-models')).status).toBe(503);
    expect((await get('/insights/3.0/real-time-metrics/attempts?minutes=1')).status).toBe(429);
    const listed = await admin('GET', '/flow-models?account=demo');
    expect(listed.status).toBe(200);
    expect((listed.body.flow_models as ModelJson[])).toHaveLength(4);
    sim.faults.clear();
    expect((await get('/flow-data/real-time-metrics/fm_login_01/last_1_minutes')).status).toBe(200);
  });
});
