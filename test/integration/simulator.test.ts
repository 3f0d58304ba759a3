import { parseFaults } from '../../src/simulator/faults.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import { Simulator } from '../../src/simulator/server.js';

const T = Date.UTC(2026, 10, 23, 20, 0, 30);
const clock = new ManualClock(T);
const sim = new Simulator({ clock, seed: 1, dimensionCardinality: 700 });
const auth = { authorization: `Basic ${Buffer.from('demo-client:demo-secret').toString('base64')}` };

beforeAll(async () => {
  await sim.listen();
});
afterAll(async () => {
  await sim.close();
});

async function get(path: string, headers: Record<string, string> = auth) {
  const res = await fetch(`${sim.url}/insights/3.0${path}`, { headers });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body: body as Record<string, unknown>, headers: res.headers };
}

type Series = Array<{ timestamp: { epoch_ms: number }; attempts?: { count: number }; dimensional_data?: Array<{ dimension: { value: string } }> }>;

describe('simulator: Conviva Metrics V3', () => {
  it('requires Basic auth', async () => {
    expect((await get('/real-time-metrics/attempts', {})).status).toBe(401);
    const wrong = await get('/real-time-metrics/attempts', { authorization: `Basic ${Buffer.from('demo-client:nope').toString('base64')}` });
    expect(wrong).toMatchObject({ status: 401, body: { message: 'Unauthorized' } });
  });

  it('serves minutes=N real-time buckets labelled by their start, the newest one partial', async () => {
    const r = await get('/real-time-metrics/attempts?minutes=3');
    expect(r.status).toBe(200);
    const ts = r.body.time_series as Series;
    expect(ts.map((b) => b.timestamp.epoch_ms)).toEqual([T - 30_000 - 120_000, T - 30_000 - 60_000, T - 30_000]);
    // the same minute read later is never smaller; the partial one has grown; six minutes after
    // its start every minute is final (a late-revised one gets its last 3% between 2 and 6 minutes)
    const settledNow = ts[0]!.attempts!.count;
    const partialNow = ts[2]!.attempts!.count;
    clock.advance(120_000);
    const later = (await get('/real-time-metrics/attempts?minutes=5')).body.time_series as Series;
    expect(later.find((b) => b.timestamp.epoch_ms === ts[0]!.timestamp.epoch_ms)!.attempts!.count).toBeGreaterThanOrEqual(settledNow);
    expect(later.find((b) => b.timestamp.epoch_ms === ts[2]!.timestamp.epoch_ms)!.attempts!.count).toBeGreaterThan(partialNow);
    clock.advance(360_000);
    const final = (await get('/real-time-metrics/attempts?minutes=15')).body.time_series as Series;
    clock.advance(120_000);
    const muchLater = (await get('/real-time-metrics/attempts?minutes=15')).body.time_series as Series;
    for (const b of final.filter((x) => x.timestamp.epoch_ms >= ts[0]!.timestamp.epoch_ms && x.timestamp.epoch_ms <= ts[2]!.timestamp.epoch_ms)) {
      expect(muchLater.find((x) => x.timestamp.epoch_ms === b.timestamp.epoch_ms)!.attempts!.count).toBe(b.attempts!.count);
    }
    clock.set(T);
  });

  it('answers 400 to invalid parameters', async () => {
    for (const q of [
      '/real-time-metrics/attempts?minutes=16',
      '/real-time-metrics/attempts?days=1',
      '/real-time-metrics/attempts?granularity=PT5S',
      '/real-time-metrics/attempts?filter_id=1234&device_os=iOS',
      '/real-time-metrics/custom-selection',
      `/real-time-metrics/custom-selection?${Array.from({ length: 13 }, () => 'metric=attempts').join('&')}`,
      '/real-time-metrics/nonsense-metric',
      '/real-time-metrics/attempts/group-by/not-a-dimension',
      '/real-time-metrics/attempts/group-by/cdn?limit=501',
      `/real-time-metrics/attempts?start_epoch=${(T - 20 * 60_000) / 1000}&end_epoch=${T / 1000}`,
      '/metrics/attempts?days=91',
      '/metrics/attempts?minutes=5',
      '/metrics/attempts/group-by/cdn?days=1&granularity=PT1M',
    ]) {
      const r = await get(q);
      expect(r.status, q).toBe(400);
      expect(r.body, q).toMatchObject({ name: 'InvalidParameter' });
    }
  });

  it('accepts both spellings of exit-before-video-starts and answers under one key', async () => {
    for (const p of ['exit-before-video-starts', 'exits-before-video-start']) {
      const r = await get(`/real-time-metrics/${p}?minutes=1`);
      expect(r.status).toBe(200);
      expect((r.body.time_series as Array<Record<string, unknown>>)[0]).toHaveProperty('exit_before_video_starts');
    }
  });

  it('groups by dimension and custom tag, honouring limit, sort and filters', async () => {
    const r = await get('/real-time-metrics/custom-selection/group-by/asn?metric=attempts&metric=plays&minutes=1&limit=25&sort_by=attempts&order=desc');
    const rows = (r.body.time_series as Series)[0]!.dimensional_data as unknown as Array<{ metrics: { attempts: { count: number } } }>;
    expect(rows).toHaveLength(25);
    const counts = rows.map((x) => x.metrics.attempts.count);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
    const tag = await get('/real-time-metrics/attempts/group-by/dimension-tag/appVersion?minutes=1');
    expect(((tag.body.time_series as Series)[0]!.dimensional_data ?? []).map((d) => d.dimension.value)).toContain('beta "canary" \\ build\n7');
    const ios = await get('/real-time-metrics/attempts/group-by/device-os?minutes=1&device_os=iOS');
    expect(((ios.body.time_series as Series)[0]!.dimensional_data ?? []).map((d) => d.dimension.value)).toEqual(['iOS']);
  });

  it('serves historical buckets and the _meta references', async () => {
    const h = await get('/metrics/attempts?days=2');
    expect(h.status).toBe(200);
    expect((h.body.time_series as Series)).toHaveLength(48);
    const daily = await get('/metrics/attempts?days=7&granularity=P1D');
    expect((daily.body.time_series as Series)).toHaveLength(7);
    expect((await get('/metrics/_meta/references/filters')).body).toEqual({ filters: [{ id: '1234', name: 'Sports live events' }, { id: '5678', name: 'Kids profile' }] });
    const dims = (await get('/metrics/_meta/references/dimensions')).body.dimensions as Array<{ key: string }>;
    expect(dims.map((d) => d.key)).toContain('device_os');
  });

  it('answers 413 when a response would pass 5,700,000 bytes', async () => {
    const q = `/metrics/custom-selection/group-by/geo-city-name?${Array.from({ length: 12 }, (_, i) => `metric=${['attempts', 'plays', 'bitrate', 'framerate', 'video-start-time', 'video-restart-time', 'rebuffering-ratio', 'concurrent-plays', 'unique-devices', 'ended-plays', 'video-start-failures', 'video-playback-failures'][i]}`).join('&')}&limit=500&days=3`;
    expect((await get(q)).status).toBe(413);
  });

  it('applies fault switches set through the admin endpoint, and counts them down', async () => {
    const put = await fetch(`${sim.url}/_admin/faults`, {
      method: 'PUT', headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ kind: 'status', status: 429, retryAfter: 7, remaining: 1 }, { kind: 'status', status: 503, match: 'group-by', remaining: 1 }]),
    });
    expect(put.status).toBe(200);
    const throttled = await get('/real-time-metrics/attempts?minutes=1');
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('7');
    expect((await get('/real-time-metrics/attempts?minutes=1')).status).toBe(200);
    expect((await get('/real-time-metrics/attempts/group-by/cdn?minutes=1')).status).toBe(503);
    expect((await get('/real-time-metrics/attempts/group-by/cdn?minutes=1')).status).toBe(200);
    const bad = await fetch(`${sim.url}/_admin/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'explode' }) });
    expect(bad.status).toBe(400);
    await fetch(`${sim.url}/_admin/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'malformed', remaining: 1 }) });
    const malformed = await get('/real-time-metrics/attempts?minutes=1');
    expect(malformed.status).toBe(200);
    expect(typeof malformed.body).toBe('string');
    expect(await (await fetch(`${sim.url}/_admin/faults`, { method: 'DELETE' })).json()).toEqual([]);
  });

  it('serves a given body, echoes the Authorization header when told, and drops a connection mid-body', async () => {
    sim.faults.set([
      { kind: 'body', status: 202, body: '[1, "é"]', remaining: 1 },
      { kind: 'status', status: 401, echoAuth: true, remaining: 1 },
      { kind: 'truncate', remaining: 1 },
    ]);
    const body = await get('/real-time-metrics/attempts?minutes=1');
    expect(body.status).toBe(202);
    expect(body.body).toEqual([1, 'é']);
    const echoed = await get('/real-time-metrics/attempts?minutes=1');
    expect(echoed.status).toBe(401);
    expect(JSON.stringify(echoed.body)).toContain(auth.authorization);
    // fetch sees the body end before the promised length
    await expect(get('/real-time-metrics/attempts?minutes=1')).rejects.toThrow();
    expect((await get('/real-time-metrics/attempts?minutes=1')).status).toBe(200);
    expect(() => parseFaults([{ kind: 'body' }])).toThrow('faults[0].body: required string');
  });
});
