import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import type { ConvivaFake } from '../../src/sources/conviva/fake.js';
import { sessionsEndingIn, sessionVisibleAt, type SimSession } from '../../src/sources/conviva/sessions-fake.js';
import { Simulator } from '../../src/simulator/server.js';

const SEED = 7;
const T = Date.UTC(2026, 10, 23, 20, 0, 30);
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MINUTE_NOW = T - 30_000;
const clock = new ManualClock(T);
const sim = new Simulator({ clock, seed: SEED });
const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
const auth = basic('demo-client', 'demo-secret');

beforeAll(async () => {
  await sim.listen();
});
afterAll(async () => {
  await sim.close();
});
afterEach(() => {
  clock.set(T);
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

/** GET sessions/content with these parameters (repeat a key by giving an array). */
async function sessions(params: Record<string, string | number | Array<string | number>>, headers: Record<string, string> = auth) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  const r = await get(`/insights/3.0/sessions/content?${q}`, headers);
  return { ...r, sessions: r.body.sessions as SimSession[] };
}

/** What the fake must serve, from the oracle helpers alone. */
function expected(account: string, start: number, end: number, now: number, limit = 50, keep: (s: SimSession) => boolean = () => true): SimSession[] {
  const out: SimSession[] = [];
  for (let m = Math.floor(start / MINUTE) * MINUTE; m < end; m += MINUTE) {
    for (const s of sessionsEndingIn(SEED, account, m)) {
      const e = s.timestamps.end.epoch_ms;
      if (e >= start && e < end && sessionVisibleAt(s) <= now && keep(s)) out.push(s);
    }
  }
  return out.slice(0, limit);
}

const ids = (xs: SimSession[]) => xs.map((s) => s.conviva_session_id);
const ends = (xs: SimSession[]) => xs.map((s) => s.timestamps.end.epoch_ms);

describe('simulator: Conviva sample sessions', () => {
  it('requires Basic auth like the rest of /insights/3.0, and knows only sessions/content', async () => {
    const window = { start_epoch_ms: T - HOUR, end_epoch_ms: T };
    expect(await sessions(window, {})).toMatchObject({ status: 401, body: { message: 'Unauthorized' } });
    expect((await sessions(window, basic('demo-client', 'nope'))).status).toBe(401);
    for (const p of ['/insights/3.0/sessions/ad', '/insights/3.0/sessions/content/viewer', '/insights/3.0/sessions']) {
      const r = await get(`${p}?start_epoch_ms=${T - HOUR}&end_epoch_ms=${T}`);
      expect(r, p).toMatchObject({ status: 404, body: { name: 'NotFound' } });
    }
  });

  it('answers 400 InvalidParameter to windows, limits and filters outside the rules', async () => {
    const ok = { start_epoch_ms: T - HOUR, end_epoch_ms: T };
    const cases: Array<[Record<string, string | number | Array<string | number>>, string]> = [
      [{ start_epoch_ms: T - 3 * HOUR - 1, end_epoch_ms: T }, 'one request spans at most 3 hours'],
      [{ start_epoch: (T - 4 * HOUR) / 1000, end_epoch: T / 1000 }, 'one request spans at most 3 hours'],
      [{ start_epoch_ms: T - 31 * DAY - 1, end_epoch_ms: T - 31 * DAY + HOUR }, 'the start must be within the last 31 days'],
      [{ ...ok, limit: 0 }, 'limit must be an integer 1..1500'],
      [{ ...ok, limit: 1501 }, 'limit must be an integer 1..1500'],
      [{ ...ok, limit: 2.5 }, 'limit must be an integer 1..1500'],
      [{ ...ok, limit: 'ten' }, 'limit must be an integer 1..1500'],
      [{ ...ok, limit: '' }, 'limit must be an integer 1..1500'],
      [{}, 'start_epoch_ms (or start_epoch) is required'],
      [{ end_epoch_ms: T }, 'start_epoch_ms (or start_epoch) is required'],
      [{ start_epoch_ms: T - HOUR }, 'end_epoch_ms (or end_epoch) is required'],
      [{ start_epoch_ms: 'yesterday', end_epoch_ms: T }, 'start_epoch_ms must be a number'],
      [{ start_epoch_ms: T - HOUR, end_epoch: '' }, 'end_epoch must be a number'],
      [{ ...ok, start_epoch: (T - HOUR) / 1000 }, 'start_epoch_ms and start_epoch: give one'],
      [{ start_epoch_ms: T - HOUR, end_epoch_ms: T - HOUR }, 'end must be after start'],
      [{ start_epoch_ms: T, end_epoch_ms: T - HOUR }, 'end must be after start'],
      [{ ...ok, is_video_start_failure: 'yes' }, 'is_video_start_failure must be true or false'],
      [{ ...ok, is_exit_before_video_start: ['true', 'false'] }, 'is_exit_before_video_start must be true or false'],
      [{ ...ok, isp: 'Comcast' }, 'the simulator does not filter on isp (device_os, tag_*, is_* only)'],
    ];
    for (const [params, message] of cases) {
      const r = await sessions(params);
      expect(r, JSON.stringify(params)).toMatchObject({ status: 400, body: { name: 'InvalidParameter', message } });
    }
    // the edges are allowed
    for (const params of [
      { start_epoch_ms: T - 3 * HOUR, end_epoch_ms: T },
      { start_epoch_ms: T - 31 * DAY, end_epoch_ms: T - 31 * DAY + MINUTE },
      { ...ok, limit: 1 },
      { ...ok, limit: 1500 },
    ]) {
      expect((await sessions(params)).status, JSON.stringify(params)).toBe(200);
    }
    // a window wholly in the future is valid and empty
    expect(await sessions({ start_epoch_ms: T + HOUR, end_epoch_ms: T + 2 * HOUR })).toMatchObject({ status: 200, body: { sessions: [] } });
  });

  it('selects visible sessions by end time, in (end, id) order, exactly as the oracle helpers compute', async () => {
    const start = T - 10 * MINUTE + 12_345;
    const r = await sessions({ start_epoch_ms: start, end_epoch_ms: T, limit: 1500 });
    expect(r.status).toBe(200);
    expect(Object.keys(r.body)).toEqual(['sessions']);
    const want = expected('demo', start, T, T, 1500);
    expect(want.length).toBeGreaterThan(200);
    expect(r.sessions).toEqual(want);
    for (const s of r.sessions) {
      expect(s.timestamps.end.epoch_ms).toBeGreaterThanOrEqual(start);
      expect(s.timestamps.end.epoch_ms).toBeLessThan(T);
      expect(sessionVisibleAt(s)).toBeLessThanOrEqual(T);
    }
    const sorted = [...r.sessions].sort((a, b) => a.timestamps.end.epoch_ms - b.timestamps.end.epoch_ms || (a.conviva_session_id < b.conviva_session_id ? -1 : 1));
    expect(ids(r.sessions)).toEqual(ids(sorted));
    // by end, not by start: sessions that started before the window are in it
    expect(r.sessions.some((s) => s.timestamps.start.epoch_ms < start)).toBe(true);
    // sessions ending just before the window are not
    expect(sessionsEndingIn(SEED, 'demo', Math.floor(start / MINUTE) * MINUTE).some((s) => s.timestamps.end.epoch_ms < start)).toBe(true);

    // the seconds form, and another account
    const secs = await sessions({ start_epoch: (T - 10 * MINUTE) / 1000, end_epoch: MINUTE_NOW / 1000, limit: 1500 });
    expect(secs.sessions).toEqual(expected('demo', T - 10 * MINUTE, MINUTE_NOW, T, 1500));
    const eu = await sessions({ start_epoch_ms: start, end_epoch_ms: T, limit: 1500 }, basic('demo-eu-client', 'demo-eu-secret'));
    expect(eu.sessions).toEqual(expected('demo-eu', start, T, T, 1500));
    const demoIds = new Set(ids(r.sessions));
    expect(ids(eu.sessions).some((id) => demoIds.has(id))).toBe(false);
  });

  it('serves a session only once its visible time has come, up to 3 minutes after it ended', async () => {
    const minute = MINUTE_NOW - MINUTE;
    const all = sessionsEndingIn(SEED, 'demo', minute);
    const late = all.find((s) => sessionVisibleAt(s) > T)!;
    expect(late).toBeDefined();
    const window = { start_epoch_ms: late.timestamps.end.epoch_ms, end_epoch_ms: late.timestamps.end.epoch_ms + 1 };
    clock.set(sessionVisibleAt(late) - 1);
    expect(ids((await sessions(window)).sessions)).not.toContain(late.conviva_session_id);
    clock.set(sessionVisibleAt(late));
    expect(ids((await sessions(window)).sessions)).toContain(late.conviva_session_id);

    // the newest minutes fill in as their sessions become visible; after 3 minutes all are there
    clock.set(T);
    const minuteWindow = { start_epoch_ms: minute, end_epoch_ms: minute + MINUTE, limit: 1500 };
    const now = (await sessions(minuteWindow)).sessions;
    expect(now.length).toBeGreaterThan(0);
    expect(now.length).toBeLessThan(all.length);
    clock.set(minute + MINUTE + 180_000);
    expect((await sessions(minuteWindow)).sessions).toEqual(all);
    for (const s of all) {
      expect(sessionVisibleAt(s)).toBeGreaterThanOrEqual(s.timestamps.end.epoch_ms);
      expect(sessionVisibleAt(s)).toBeLessThanOrEqual(s.timestamps.end.epoch_ms + 180_000);
    }

    // an end past now is allowed: nothing that has not ended and become visible comes back
    clock.set(T);
    const ahead = await sessions({ start_epoch_ms: T - 2 * HOUR, end_epoch_ms: T + HOUR, limit: 1500 });
    expect(ahead.status).toBe(200);
    expect(ahead.sessions).toEqual(expected('demo', T - 2 * HOUR, T + HOUR, T, 1500));
    expect(Math.max(...ends(ahead.sessions))).toBeLessThanOrEqual(T);
  });

  it('returns the first limit sessions by end time when more match, without a marker', async () => {
    const window = { start_epoch_ms: T - 2 * HOUR, end_epoch_ms: T - HOUR };
    const all = expected('demo', T - 2 * HOUR, T - HOUR, T, 1500);
    expect(all.length).toBeGreaterThan(1000);
    const byDefault = await sessions(window);
    expect(byDefault.body).toEqual({ sessions: all.slice(0, 50) });
    expect((await sessions({ ...window, limit: 7 })).sessions).toEqual(all.slice(0, 7));
    // the client splits the window to read on: the rest starts after the last one served
    const lastEnd = byDefault.sessions[49]!.timestamps.end.epoch_ms;
    const next = await sessions({ start_epoch_ms: lastEnd + 1, end_epoch_ms: T - HOUR, limit: 3 });
    expect(next.sessions).toEqual(all.filter((s) => s.timestamps.end.epoch_ms > lastEnd).slice(0, 3));
  });

  it('filters by device OS, custom tag and outcome; repeated keys OR their values', async () => {
    const start = T - 3 * HOUR;
    const window = { start_epoch_ms: start, end_epoch_ms: T, limit: 1500 };
    const visible = expected('demo', start, T, T, Infinity);
    const want = (keep: (s: SimSession) => boolean, limit = 1500) => visible.filter(keep).slice(0, limit);
    const cases: Array<[Record<string, string | string[]>, (s: SimSession) => boolean]> = [
      [{ device_os: 'iOS' }, (s) => s.device_info.os === 'iOS'],
      [{ device_os: ['Roku', 'Fire OS'] }, (s) => ['Roku', 'Fire OS'].includes(s.device_info.os)],
      [{ tag_appVersion: 'beta "canary" \\ build\n7' }, (s) => s.tags.custom_tags.appVersion === 'beta "canary" \\ build\n7'],
      [{ tag_subscription: 'premium', device_os: 'Tizen' }, (s) => s.tags.custom_tags.subscription === 'premium' && s.device_info.os === 'Tizen'],
      [{ tag_noSuchTag: 'x' }, () => false],
      [{ is_video_start_failure: 'true' }, (s) => s.status_info.is_video_start_failure],
      [{ is_video_start_failure: 'false', device_os: 'macOS' }, (s) => !s.status_info.is_video_start_failure && s.device_info.os === 'macOS'],
      [{ is_exit_before_video_start: 'true' }, (s) => s.status_info.is_exit_before_video_start],
      [{ is_video_playback_failure: 'true' }, (s) => s.status_info.is_video_playback_failure],
      [{ is_video_playback_failure_tech: 'true' }, (s) => s.status_info.is_video_playback_failure_tech],
    ];
    for (const [filter, keep] of cases) {
      const r = await sessions({ ...window, ...filter });
      expect(r.status, JSON.stringify(filter)).toBe(200);
      expect(r.sessions, JSON.stringify(filter)).toEqual(want(keep));
      if (!('tag_noSuchTag' in filter)) expect(r.sessions.length, JSON.stringify(filter)).toBeGreaterThan(0);
    }
    const failed = (await sessions({ ...window, is_video_start_failure: 'true' })).sessions;
    for (const s of failed) expect(s.lifetime_metrics).toMatchObject({ video_start_time_ms: -1, playing_time_ms: 0 });
    const vpf = (await sessions({ ...window, is_video_playback_failure: 'true' })).sessions;
    for (const s of vpf) expect(s.lifetime_metrics.video_start_time_ms).toBeGreaterThanOrEqual(300);
    // filters apply before the limit
    const few = await sessions({ ...window, device_os: 'Android', is_video_playback_failure: 'false', limit: 20 });
    expect(few.sessions).toEqual(want((s) => s.device_info.os === 'Android' && !s.status_info.is_video_playback_failure, 20));
  });

  it('generates varied, realistic sessions with mutually exclusive outcomes', () => {
    const day: SimSession[] = [];
    const misplaced: string[] = [];
    const perMinute: number[] = [];
    for (let m = MINUTE_NOW - DAY; m < MINUTE_NOW; m += MINUTE) {
      const xs = sessionsEndingIn(SEED, 'demo', m);
      if (m >= MINUTE_NOW - 30 * MINUTE) perMinute.push(xs.length);
      for (const s of xs) if (s.timestamps.end.epoch_ms < m || s.timestamps.end.epoch_ms >= m + MINUTE) misplaced.push(s.conviva_session_id);
      day.push(...xs);
    }
    expect(misplaced).toEqual([]);
    // near the 20:00 peak: roughly baseAttempts / 80 a minute
    expect(Math.min(...perMinute)).toBeGreaterThanOrEqual(25);
    expect(Math.max(...perMinute)).toBeLessThanOrEqual(70);
    expect(new Set(ids(day)).size).toBe(day.length);
    const share = (keep: (s: SimSession) => boolean) => day.filter(keep).length / day.length;
    expect(share((s) => s.status_info.is_video_start_failure)).toBeGreaterThan(0.015);
    expect(share((s) => s.status_info.is_video_start_failure)).toBeLessThan(0.025);
    expect(share((s) => s.status_info.is_exit_before_video_start)).toBeGreaterThan(0.025);
    expect(share((s) => s.status_info.is_exit_before_video_start)).toBeLessThan(0.035);
    expect(share((s) => s.status_info.is_video_playback_failure)).toBeGreaterThan(0.007);
    expect(share((s) => s.status_info.is_video_playback_failure)).toBeLessThan(0.013);

    /** The rules one session breaks, by name. */
    const broken = (s: SimSession): string[] => {
      const st = s.status_info;
      const m = s.lifetime_metrics;
      const rules: Record<string, boolean> = {
        id: /^[0-9a-f]{16}$/.test(s.conviva_session_id),
        ended: st.is_ended && st.errors.length === 0,
        exclusive: [st.is_video_start_failure, st.is_exit_before_video_start, st.is_video_playback_failure].filter(Boolean).length <= 1,
        vsfKind: st.is_video_start_failure === (st.is_video_start_failure_business !== st.is_video_start_failure_tech),
        vpfKind: st.is_video_playback_failure === (st.is_video_playback_failure_business !== st.is_video_playback_failure_tech),
        endedStatus: st.ended_status === (st.is_video_start_failure ? 'VSF' : st.is_exit_before_video_start ? 'EBVS' : st.is_video_playback_failure ? 'VPF' : 'NORMAL'),
        startBeforeEnd: s.timestamps.start.epoch_ms < s.timestamps.end.epoch_ms,
        isoDate: s.timestamps.end.iso_date === new Date(s.timestamps.end.epoch_ms).toISOString().replace('.000Z', 'Z'),
      };
      if (st.is_video_start_failure || st.is_exit_before_video_start) {
        rules.neverStarted = m.video_start_time_ms === -1 && m.playing_time_ms === 0 && m.rebuffering_time_ms === 0;
      } else {
        Object.assign(rules, {
          startTime: m.video_start_time_ms >= 300 && m.video_start_time_ms <= 8000,
          playingTime: m.playing_time_ms >= 5000 && m.playing_time_ms <= 2 * HOUR,
          rebuffering: m.rebuffering_ratio_percent >= 0 && m.rebuffering_ratio_percent <= 5,
          connectionInduced: m.connection_induced_rebuffering_ratio_percent <= m.rebuffering_ratio_percent,
          bitrate: m.average_peak_bitrate_bps >= 800_000 && m.average_peak_bitrate_bps <= 8_000_000,
          complete: m.average_percentage_complete >= 0 && m.average_percentage_complete <= 100,
          duration: s.timestamps.end.epoch_ms - s.timestamps.start.epoch_ms === m.video_start_time_ms + m.playing_time_ms + m.rebuffering_time_ms + m.paused_time_ms,
        });
      }
      return Object.entries(rules).filter(([, ok]) => !ok).map(([rule]) => `${s.conviva_session_id} ${rule}`);
    };
    expect(day.flatMap(broken)).toEqual([]);

    // spread over the buckets an exporter would use
    const started = day.filter((s) => s.lifetime_metrics.video_start_time_ms >= 0);
    const spread = (values: number[], lo: number, hi: number) => values.filter((v) => v >= lo && v < hi).length / values.length;
    const vst = started.map((s) => s.lifetime_metrics.video_start_time_ms);
    for (const [lo, hi] of [[0, 500], [500, 1000], [1000, 2000], [2000, 4000], [4000, 8001]] as const) expect(spread(vst, lo, hi), `${lo}..${hi}`).toBeGreaterThan(0.05);
    const playing = started.map((s) => s.lifetime_metrics.playing_time_ms);
    for (const [lo, hi] of [[5_000, 60_000], [60_000, 600_000], [600_000, HOUR], [HOUR, 2 * HOUR + 1]] as const) expect(spread(playing, lo, hi), `${lo}..${hi}`).toBeGreaterThan(0.05);
    const rebuffering = started.map((s) => s.lifetime_metrics.rebuffering_ratio_percent);
    expect(spread(rebuffering, 0, Number.MIN_VALUE)).toBeGreaterThan(0.4);
    expect(spread(rebuffering, 1, 5.001)).toBeGreaterThan(0.1);
    for (const key of ['device_info', 'geo_info', 'network_info', 'content_info'] as const) expect(new Set(day.map((s) => JSON.stringify(s[key]))).size, key).toBeGreaterThan(5);
    expect(new Set(day.map((s) => s.content_info.category))).toEqual(new Set(['VoD', 'Live']));
    expect(day.every((s) => s.viewer_id.length > 0)).toBe(true);
  });

  it('is deterministic: the same seed serves the same sessions, another seed others', async () => {
    expect(sessionsEndingIn(SEED, 'demo', MINUTE_NOW - HOUR)).toEqual(sessionsEndingIn(SEED, 'demo', MINUTE_NOW - HOUR));
    const path = `/insights/3.0/sessions/content?start_epoch_ms=${T - 2 * HOUR}&end_epoch_ms=${T - HOUR}&limit=200`;
    const same = new Simulator({ clock, seed: SEED });
    const other = new Simulator({ clock, seed: SEED + 1 });
    try {
      const [a, b, c] = await Promise.all([get(path), same.listen().then((u) => get(path, auth, u)), other.listen().then((u) => get(path, auth, u))]);
      expect(a.status).toBe(200);
      expect(b.body).toEqual(a.body);
      expect(c.status).toBe(200);
      expect(c.body).not.toEqual(a.body);
    } finally {
      await Promise.all([same.close(), other.close()]);
    }
    expect(sim.fake<ConvivaFake>('conviva').sessions.content(new URLSearchParams(`start_epoch_ms=${T - 2 * HOUR}&end_epoch_ms=${T - HOUR}&limit=200`), 'demo'))
      .toEqual((await get(path)).body);
  });

  it('keeps Metrics V3 and the DPI Flow API answering beside it', async () => {
    const rt = await get('/insights/3.0/real-time-metrics/attempts?minutes=2');
    expect(rt.status).toBe(200);
    expect(rt.body.time_series).toHaveLength(2);
    const hist = await get(`/insights/3.0/metrics/custom-selection/group-by/device-os?metric=attempts&metric=plays&granularity=PT1M&start_epoch_ms=${MINUTE_NOW - HOUR}&end_epoch_ms=${MINUTE_NOW}`);
    expect(hist.status).toBe(200);
    expect(hist.body.time_series).toHaveLength(60);
    expect((await get('/insights/3.0/metrics/_meta/references/dimensions')).status).toBe(200);
    expect(await get('/insights/3.0/metrics/no-such-metric')).toMatchObject({ status: 400, body: { name: 'InvalidParameter' } });
    expect(await get('/insights/3.0/no-such-path')).toMatchObject({ status: 404, body: { name: 'NotFound' } });
    const flows = await get('/flow-data/metadata/flow-models');
    expect(flows.status).toBe(200);
    expect(flows.body.flow_models).toHaveLength(4);
    expect((await get('/flow-data/real-time-metrics/fm_login_01/last_2_minutes')).body.time_series).toHaveLength(2);
    expect((await get('/flow-data/metadata/flow-models', {})).status).toBe(401);
  });
});
