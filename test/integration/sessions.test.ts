import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { find, value, type ParsedSample } from '../helpers/exposition.js';
import { documentedOutcome, sessionsEnded } from '../conviva/expected.js';
import { MINUTE, T0, startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';
import type { SimSession } from '../../src/sources/conviva/sessions-fake.js';

const SEED = 7; // startStack's
const config = (limit: number) => `
engine: { staleness: 2h, shutdown_grace: 2s }
sources:
  conviva:
    request_timeout: 400ms
    retries: 1
    retry_base_delay: 10ms
    retry_max_delay: 40ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
    realtime: { enabled: false }
    sessions:
      enabled: true
      timeout: 20s
      limit: ${limit}
      group_by: [device_os_family, content_category]
`;
const LAG = 5 * MINUTE;
const INITIAL = 5 * MINUTE;
const START_BUCKETS = [0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 30];

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** Checks every outcome counter and the video start time histogram of every (dimension, value) against the sessions served. */
function checkAgainst(samples: ParsedSample[], sessions: SimSession[]): number {
  const rows = new Map<string, SimSession[]>();
  const add = (dimension: string, value: string, s: SimSession) => {
    const k = `${dimension}\u0000${value}`;
    rows.set(k, [...(rows.get(k) ?? []), s]);
  };
  for (const s of sessions) {
    add('total', 'total', s);
    add('device_os_family', s.device_info.os_family, s);
    add('content_category', s.content_info.category, s);
  }
  let checked = 0;
  for (const [k, list] of rows) {
    const [dimension, value_] = k.split('\u0000') as [string, string];
    const labels = { account: 'demo', dimension, value: value_ };
    for (const outcome of ['played', 'video_start_failure', 'exit_before_video_start', 'playback_failure', 'not_started']) {
      const want = list.filter((s) => documentedOutcome(s) === outcome).length;
      const got = find(samples, 'conviva_sessions_total', { ...labels, outcome });
      expect(got.map((g) => g.value), `${outcome} ${k}`).toEqual(want === 0 ? [] : [want]);
      checked++;
    }
    const started = list.filter((s) => ['played', 'playback_failure'].includes(documentedOutcome(s)));
    expect(value(samples, 'conviva_session_video_start_time_seconds_count', labels)).toBe(started.length);
    for (const le of START_BUCKETS) {
      expect(value(samples, 'conviva_session_video_start_time_seconds_bucket', { ...labels, le: String(le) }), `le=${le} ${k}`).toBe(started.filter((s) => s.lifetime_metrics.video_start_time_ms / 1000 <= le).length);
    }
    expect(value(samples, 'conviva_session_playing_time_seconds_count', labels)).toBe(started.length);
    checked++;
  }
  // Nothing else: no stray label sets.
  expect(new Set(find(samples, 'conviva_sessions_total').map((s) => `${s.labels.dimension}\u0000${s.labels.value}`))).toEqual(new Set(rows.keys()));
  return checked;
}

describe('sample sessions collector', () => {
  it('counts every session once into outcomes and histograms, across faults, split windows, a 40-minute outage and a restart', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'sessions-')), 'state.json');
    // limit 50: any window past a minute or so is full and read again in halves.
    stack = await startStack({ configText: config(50), mutate: (c) => (c.engine.state_file = path) });
    let s = stack;
    const first = await s.run('conviva_sessions');
    expect(first.result).toBe('success');
    expect(checkAgainst(first.samples, sessionsEnded(SEED, 'demo', T0 - LAG - INITIAL, T0 - LAG))).toBeGreaterThan(10);
    const steps: Array<{ advance: number; faults?: Array<{ kind: 'status' | 'malformed' | 'truncate'; status?: number; remaining?: number }> }> = [
      { advance: MINUTE },
      { advance: MINUTE, faults: [{ kind: 'status', status: 500 }] },
      { advance: MINUTE, faults: [{ kind: 'malformed' }] },
      { advance: 30_000 },
      { advance: 30_000 },
      { advance: 40 * MINUTE, faults: [{ kind: 'status', status: 503, remaining: 2 }] }, // a 40-minute outage, then a retry storm
      { advance: MINUTE, faults: [{ kind: 'truncate', remaining: 1 }] },
    ];
    for (const step of steps) {
      s.clock.advance(step.advance);
      s.sim.faults.set(step.faults ?? []);
      await s.run('conviva_sessions');
    }
    s.sim.faults.clear();
    const at = s.clock.now();
    await s.close();
    stack = await startStack({ configText: config(50), start: at + 7 * MINUTE, mutate: (c) => (c.engine.state_file = path) });
    s = stack;
    const { result, samples } = await s.run('conviva_sessions');
    expect(result).toBe('success');
    const served = sessionsEnded(SEED, 'demo', T0 - LAG - INITIAL, s.clock.now() - LAG);
    expect(served.length).toBeGreaterThan(1500);
    checkAgainst(samples, served);
    // Split, never truncated: no minute has 50 sessions.
    expect(value(samples, 'conviva_exporter_sessions_truncated_windows_total', { account: 'demo' })).toBe(0);
    expect(s.sim.requests.filter((r) => r.path.endsWith('/sessions/content')).length).toBeGreaterThan(10);
    // Never the viewer id or a session id in a label.
    const text = await s.app.text();
    for (const sess of served.slice(0, 50)) {
      expect(text).not.toContain(sess.viewer_id);
      expect(text).not.toContain(sess.conviva_session_id);
    }
  });

  it('a window still full at min_window is read as it is, logged and counted', async () => {
    stack = await startStack({ configText: config(10) });
    const { result, samples } = await stack.run('conviva_sessions');
    expect(result).toBe('success');
    // Five minutes of ~34 sessions, 10 a request: every one-minute window stays full.
    expect(value(samples, 'conviva_exporter_sessions_truncated_windows_total', { account: 'demo' })).toBeGreaterThanOrEqual(5);
    expect(stack.logs.some((l) => l.msg === 'sessions window still full at min_window: some sessions of it are not counted')).toBe(true);
    const total = find(samples, 'conviva_sessions_total', { dimension: 'total' }).reduce((a, x) => a + x.value, 0);
    expect(total).toBeLessThan(sessionsEnded(SEED, 'demo', T0 - LAG - INITIAL, T0 - LAG).length);
  });
});
