import fc from 'fast-check';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { Runner } from '../../src/engine/runner.js';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { createRealtimeCollector } from '../../src/sources/conviva/realtime.js';
import { parseExposition } from '../helpers/exposition.js';
import { fmt, report } from './figures.js';

// Property: whatever Metrics V3 answers (valid, nearly valid, hostile), the real-time collector never
// crashes, never serves a non-finite value, never lets a counter decrease, and its exposition parses.

const M = 60_000;
const T0 = Date.UTC(2026, 10, 23, 20, 0, 30);
const OFFSET = '__minute_offset'; // replaced by a bucket start relative to the run's newest settled minute

const hostileNumber = fc.oneof(
  fc.integer({ min: 0, max: 5000 }),
  fc.double({ noNaN: false }),
  fc.constantFrom(-1, -400, 1e308, 1.7e308, -1.7e308, 0, 5e-324, Number.MAX_SAFE_INTEGER),
  fc.string(),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
);
const valueObject = fc.record({ count: hostileNumber, percentage: hostileNumber, ratio: hostileNumber, bps: hostileNumber, value: hostileNumber }, { requiredKeys: [] });
const metrics = fc.dictionary(
  fc.constantFrom('attempts', 'plays', 'bitrate', 'rebuffering_ratio', 'video_start_time', 'concurrent_plays', 'video_start_failures', 'junk'),
  fc.oneof({ weight: 4, arbitrary: valueObject }, { weight: 1, arbitrary: hostileNumber }),
);
const deep = fc.integer({ min: 10, max: 3000 }).map((n) => {
  let v: unknown = 'x';
  for (let i = 0; i < n; i++) v = [v];
  return v;
});
const dimensionValue = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('iOS', 'Android', 'Roku') },
  { weight: 3, arbitrary: fc.string({ unit: 'binary' }) }, // unicode, quotes, backslashes, control bytes
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.constant(null), deep, fc.object()) },
);
const timestamp = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: -3, max: 1 }).map((k) => ({ epoch_ms: { [OFFSET]: k } })) },
  { weight: 1, arbitrary: fc.record({ iso_date: fc.string() }) },
  { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.integer(), fc.record({ epoch_ms: fc.oneof(fc.string(), fc.double()) })) },
);
const bucket = fc.record(
  {
    timestamp,
    dimensional_data: fc.oneof(
      fc.array(fc.record({ dimension: fc.record({ value: dimensionValue }, { requiredKeys: [] }), metrics }, { requiredKeys: [] }), { maxLength: 6 }),
      fc.anything(),
    ),
    attempts: valueObject,
    plays: valueObject,
    bitrate: valueObject,
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  { weight: 8, arbitrary: fc.record({ time_series: fc.array(bucket, { maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.anything() },
  { weight: 1, arbitrary: fc.record({ time_series: deep }) },
);

/** Replaces the minute-offset markers with bucket starts around the newest settled minute. */
function place(v: unknown, newestSettled: number, depth = 0): unknown {
  if (depth > 8) return v; // the markers sit a few levels down; deep hostile nesting is left as it is
  if (Array.isArray(v)) return v.map((x) => place(x, newestSettled, depth + 1));
  if (v && typeof v === 'object') {
    if (OFFSET in v) return newestSettled + (v as Record<string, number>)[OFFSET]! * M;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, place(x, newestSettled, depth + 1)]));
  }
  return v;
}

describe('Conviva real-time collector, property-based', () => {
  it('survives 10,000 generated answers: no crash, no non-finite value, no decreasing counter, a valid exposition', async () => {
    const config = parseConfig(
      'sources:\n  conviva:\n    accounts: [{ name: prod, client_id: x, client_secret: y }]\n    realtime: { metrics: [attempts, plays, bitrate, rebuffering-ratio, video-start-time, concurrent-plays, video-start-failures], group_by: [device-os] }\n',
      {},
      '.',
    );
    const stats = { sequences: 0, bodies: 0, runs: { success: 0, failure: 0 }, countersChecked: 0, seriesChecked: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(body, { minLength: 1, maxLength: 6 }), async (bodies) => {
        stats.sequences++;
        const clock = new ManualClock(T0);
        const metrics = createEngineMetrics(new Registry(), 't');
        let current: unknown;
        const collector = createRealtimeCollector({
          clients: [{ account: { name: 'prod', clientId: 'x', clientSecret: 'y' }, realtime: async () => current }],
          config: (config.sources.conviva as ConvivaConfig).realtime,
          engine: metrics,
          bucketsMissed: new Counter({ name: 'm_total', help: 'h', labelNames: ['collector'], registers: [] }),
        });
        let text = '';
        const runner = new Runner({
          collectors: [collector], metrics, clock, stalenessMs: 3_600_000, log: pino({ level: 'silent' }), saveState: async () => false,
          publisher: { publish: async (_n, t) => void (text = t), withdraw: () => {} },
          guard: new CardinalityGuard(() => 1000, 3_600_000, () => {}),
        });
        const totals = new Map<string, number>();
        for (const b of bodies) {
          clock.advance(M);
          const newestSettled = Math.floor((clock.now() - 2 * M) / M) * M;
          current = place(b, newestSettled);
          stats.bodies++;
          const result = await runner.run('conviva_realtime');
          stats.runs[result === 'success' ? 'success' : 'failure']++;
          for (const s of parseExposition(text)) {
            stats.seriesChecked++;
            expect(Number.isFinite(s.value), `${s.name} ${s.value}`).toBe(true);
            if (!s.name.endsWith('_total')) continue;
            const key = `${s.name}${JSON.stringify(s.labels)}`;
            expect(s.value, key).toBeGreaterThanOrEqual(totals.get(key) ?? 0);
            totals.set(key, s.value);
            stats.countersChecked++;
          }
        }
      }),
      { numRuns: 4000, seed: 20261130 },
    );
    expect(stats.bodies).toBeGreaterThanOrEqual(10_000);
    expect(stats.countersChecked).toBeGreaterThan(1000);
    report('conviva-bodies', {
      order: 2,
      title: 'Property-based: Conviva Metrics V3 real-time answers',
      about: `\`test/faults/conviva-bodies.test.ts\`: fast-check generates answers valid, nearly valid and hostile
(negative, huge and overflowing numbers, strings and arrays where numbers belong, dimension values
with unicode, quotes, backslashes and control bytes, arrays nested thousands deep, timestamps of
every wrong kind, and arbitrary JSON), in sequences of one to six minutes, and runs the real
collector on each. After every run: no crash, every served value finite, no counter lower than
before, and an exposition that parses.`,
      rows: [
        ['sequences (fresh collector each)', fmt(stats.sequences)],
        ['answers tried', fmt(stats.bodies)],
        ['runs that succeeded / failed (a failed run is a refused answer, not a crash)', `${fmt(stats.runs.success)} / ${fmt(stats.runs.failure)}`],
        ['series checked finite', fmt(stats.seriesChecked)],
        ['counter values checked never to decrease', fmt(stats.countersChecked)],
        ['crashes, non-finite values, decreasing counters', '0'],
      ],
    });
  });
});
