import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { createFlowCollectors } from '../../src/sources/conviva/flow.js';
import { createSessionsCollector } from '../../src/sources/conviva/sessions.js';
import { fmt, report } from './figures.js';
import { engineMetrics, harness, looseCounter, newStats } from './harness.js';

// Property: whatever DPI Flow and Sessions V3 answer (valid, nearly valid, hostile), the flow and
// sessions collectors never crash, never serve a non-finite value, never let a counter, a bucket
// or a histogram count decrease, and their exposition parses.

const M = 60_000;
const T0 = Date.UTC(2026, 10, 23, 20, 0, 30);
const account = { name: 'prod', clientId: 'x', clientSecret: 'y' };
const config = parseConfig(
  'sources:\n  conviva:\n    accounts: [{ name: prod, client_id: x, client_secret: y }]\n    flows: { enabled: true, group_by: [platform] }\n    sessions: { enabled: true, limit: 20, group_by: [device_os_family, tag_appVersion] }\n',
  {},
  '.',
).sources.conviva as ConvivaConfig;

const hostileNumber = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 5000 }) },
  fc.double({ noNaN: false }),
  fc.constantFrom(-1, -400, 1e308, 1.7e308, -1.7e308, 0, 5e-324, Number.MAX_SAFE_INTEGER),
  fc.string(),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
);
const deep = fc.integer({ min: 10, max: 3000 }).map((n) => {
  let v: unknown = 'x';
  for (let i = 0; i < n; i++) v = [v];
  return v;
});
const text = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('iOS', 'Android', 'Web', 'Login', 'Checkout') }, { weight: 2, arbitrary: fc.string({ unit: 'binary' }) }, { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), deep, fc.object()) });
const OFFSET = '__minute_offset';
/** Replaces minute-offset markers with times around the run's newest settled minute. */
function place(v: unknown, base: number, depth = 0): unknown {
  if (depth > 10) return v;
  if (Array.isArray(v)) return v.map((x) => place(x, base, depth + 1));
  if (v && typeof v === 'object') {
    if (OFFSET in v) return base + (v as Record<string, number>)[OFFSET]!;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, place(x, base, depth + 1)]));
  }
  return v;
}
const time = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: -20 * M, max: M }).map((k) => ({ epoch_ms: { [OFFSET]: k } })) },
  { weight: 1, arbitrary: fc.record({ iso_date: fc.string() }) },
  { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.integer(), fc.record({ epoch_ms: fc.oneof(fc.string(), fc.double()) })) },
);

// DPI Flow
const flowMetrics = fc.dictionary(fc.constantFrom('init', 'complete', 'success', 'error', 'avg_duration', 'percentage', 'junk'), fc.oneof({ weight: 4, arbitrary: fc.record({ count: hostileNumber, value: hostileNumber }, { requiredKeys: [] }) }, { weight: 1, arbitrary: hostileNumber }));
const flowBucket = fc.record({
  timestamp: time,
  metrics: fc.oneof({ weight: 4, arbitrary: flowMetrics }, { weight: 1, arbitrary: fc.anything() }),
  dimensional_data: fc.oneof(fc.array(fc.record({ dimension: fc.record({ key: fc.constant('platform'), value: text }, { requiredKeys: [] }), metrics: flowMetrics }, { requiredKeys: [] }), { maxLength: 5 }), fc.anything()),
}, { requiredKeys: [] });
const flowAnswer = fc.oneof({ weight: 8, arbitrary: fc.record({ time_series: fc.array(flowBucket, { maxLength: 5 }) }) }, { weight: 1, arbitrary: fc.anything() }, { weight: 1, arbitrary: fc.record({ time_series: deep }) });
const model = fc.record({
  id: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('fm_a', 'fm_b', 'fm_c') }, { weight: 1, arbitrary: text }),
  label: text,
  metrics: fc.oneof(fc.constant(['init', 'complete', 'success', 'error', 'avg_duration', 'percentage']), fc.array(text, { maxLength: 7 }), fc.anything()),
  dimensions: fc.oneof(fc.constant(['platform']), fc.array(text, { maxLength: 3 }), fc.anything()),
  is_conviva_defined: fc.oneof(fc.boolean(), fc.anything()),
}, { requiredKeys: [] });
const modelsAnswer = fc.oneof({ weight: 8, arbitrary: fc.record({ flow_models: fc.array(model, { maxLength: 4 }) }) }, { weight: 1, arbitrary: fc.anything() }, { weight: 1, arbitrary: fc.record({ flow_models: deep }) });

// Sessions V3
const session = fc.record({
  conviva_session_id: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 60 }).map((i) => `s${i}`) }, { weight: 1, arbitrary: text }),
  timestamps: fc.oneof({ weight: 8, arbitrary: fc.record({ end: time }) }, { weight: 1, arbitrary: fc.anything() }),
  status_info: fc.oneof(fc.record({ is_video_start_failure: fc.boolean(), is_exit_before_video_start: fc.boolean(), is_video_playback_failure: fc.boolean() }, { requiredKeys: [] }), fc.anything()),
  lifetime_metrics: fc.oneof({ weight: 4, arbitrary: fc.record({ video_start_time_ms: hostileNumber, rebuffering_ratio_percent: hostileNumber, playing_time_ms: hostileNumber, average_peak_bitrate_bps: hostileNumber }, { requiredKeys: [] }) }, { weight: 1, arbitrary: fc.anything() }),
  device_info: fc.record({ os_family: text }, { requiredKeys: [] }),
  tags: fc.record({ custom_tags: fc.oneof(fc.record({ appVersion: text }), fc.anything()) }, { requiredKeys: [] }),
  viewer_id: fc.string(),
}, { requiredKeys: [] });
const sessionsAnswer = fc.oneof({ weight: 8, arbitrary: fc.record({ sessions: fc.array(session, { maxLength: 25 }) }) }, { weight: 1, arbitrary: fc.anything() }, { weight: 1, arbitrary: fc.record({ sessions: deep }) });

describe('DPI Flow and sessions collectors, property-based', () => {
  it('survive 10,000 generated model lists and flow answers, and 10,000 session answers', async () => {
    const flows = newStats();
    let modelBodies = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(modelsAnswer, fc.array(flowAnswer, { minLength: 1, maxLength: 2 })), { minLength: 1, maxLength: 5 }), async (steps) => {
        flows.sequences++;
        const clock = new ManualClock(T0);
        const metrics = engineMetrics();
        let models: unknown;
        const answers: unknown[] = [];
        const collectors = createFlowCollectors({
          clients: [{ account, models: async () => models, realtime: async () => answers.shift() ?? { time_series: [] } }],
          config: config.flows, engine: metrics, bucketsMissed: looseCounter('m_total', ['collector']), budget: { perMinute: 500, realtimePerMinute: 0 },
        });
        const run = harness(collectors, clock, metrics, flows);
        for (const [list, bodies] of steps) {
          clock.advance(M);
          const base = Math.floor((clock.now() - 2 * M) / M) * M;
          models = place(list, base);
          modelBodies++;
          await run('conviva_flow_models');
          answers.push(...bodies.map((b) => place(b, base)));
          flows.bodies += bodies.length;
          await run('conviva_flow');
        }
      }),
      { numRuns: 3500, seed: 20261130 },
    );
    expect(modelBodies).toBeGreaterThanOrEqual(10_000);
    expect(flows.bodies).toBeGreaterThanOrEqual(10_000);

    const sessions = newStats();
    await fc.assert(
      fc.asyncProperty(fc.array(sessionsAnswer, { minLength: 1, maxLength: 6 }), async (bodies) => {
        sessions.sequences++;
        const clock = new ManualClock(T0);
        const metrics = engineMetrics();
        const answers: unknown[] = [];
        const collector = createSessionsCollector({
          clients: [{ account, sessions: async () => answers.shift() ?? { sessions: [] } }],
          config: config.sessions, engine: metrics, truncated: looseCounter('t_total', ['account']), unread: looseCounter('u_total', ['account']),
        });
        const run = harness([collector], clock, metrics, sessions);
        for (const b of bodies) {
          clock.advance(M);
          // A full answer is split: the halves get the rest of the sequence's answers, then empty ones.
          answers.push(place(b, clock.now() - 5 * M));
          sessions.bodies++;
          await run('conviva_sessions');
        }
      }),
      { numRuns: 3000, seed: 20261130 },
    );
    expect(sessions.bodies).toBeGreaterThanOrEqual(10_000);
    report('conviva-flow-sessions-bodies', {
      order: 4,
      title: 'Property-based: DPI Flow and sample sessions answers',
      about: `\`test/faults/conviva-flow-sessions-bodies.test.ts\`: fast-check generates DPI Flow model lists and
metric answers, and Sessions V3 answers, valid, nearly valid and hostile (ids and labels of every
type, unicode and control bytes, numbers negative, huge, overflowing or not numbers at all, times of
every wrong kind, arrays nested thousands deep, arbitrary JSON), and runs the real collectors on
them through the runner. After every run: no crash, every served value finite, no counter, bucket,
histogram count or sum lower than before, an exposition that parses.`,
      rows: [
        ['flow sequences / model lists / metric answers tried', `${fmt(flows.sequences)} / ${fmt(modelBodies)} / ${fmt(flows.bodies)}`],
        ['flow runs that succeeded / failed', `${fmt(flows.runs.success)} / ${fmt(flows.runs.failure)}`],
        ['session sequences / answers tried', `${fmt(sessions.sequences)} / ${fmt(sessions.bodies)}`],
        ['session runs that succeeded / failed', `${fmt(sessions.runs.success)} / ${fmt(sessions.runs.failure)}`],
        ['series checked finite', fmt(flows.seriesChecked + sessions.seriesChecked)],
        ['counter, bucket and histogram values checked never to decrease', fmt(flows.countersChecked + sessions.countersChecked)],
        ['crashes, non-finite values, decreasing counters', '0'],
      ],
    });
  });
});
