import { describe, expect, it } from 'vitest';
import { EventLedger } from '../../src/engine/events.js';
import { defineFamily } from '../../src/engine/family.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { SampleSet } from '../../src/engine/samples.js';

const M = 60_000;
const events = defineFamily({ name: 'x_events_total', help: 'h', type: 'counter', unit: 'count', source: 't', labelNames: ['k'] });
const lat = defineFamily({ name: 'x_latency_seconds', help: 'h', type: 'histogram', unit: 'seconds', source: 't', labelNames: ['k'], buckets: [1, 5] });
const guard = () => new CardinalityGuard(() => 100, 3_600_000, () => {});
const opts = { lagMs: 5 * M, overlapMs: 10 * M, reachMs: 31 * 24 * 60 * M, initialMs: 5 * M };
const T = Date.UTC(2026, 10, 23, 20, 0, 0);

function emitted(ledger: EventLedger) {
  const set = new SampleSet();
  ledger.emit(set, guard(), T);
  return {
    counters: Object.fromEntries((set.families.get(events) ?? []).map((s) => [s.labels[0], s.value])),
    histograms: Object.fromEntries((set.families.get(lat) ?? []).map((s) => [s.labels[0], s.histogram])),
  };
}

describe('event ledger', () => {
  it('plans from the watermark less the overlap to now less the lag; a new scope starts initial before that', () => {
    const l = new EventLedger(opts, [events]);
    const sc = l.scope('a');
    expect(sc.plan(T)).toEqual({ from: T - 10 * M, to: T - 5 * M, lostMs: 0 });
    sc.commit(T - 5 * M);
    expect(sc.plan(T + M)).toEqual({ from: T - 15 * M, to: T - 4 * M, lostMs: 0 });
  });

  it('counts each event id once across overlapping windows, and forgets ids the overlap no longer reaches', () => {
    const l = new EventLedger(opts, [events, lat]);
    const sc = l.scope('a');
    for (const [id, t, v] of [['s1', T - 9 * M, 0.5], ['s2', T - 6 * M, 3]] as const) {
      if (sc.take(id, t)) {
        sc.count([id.slice(0, 1)], events, 1, guard(), T);
        sc.observe([id.slice(0, 1)], lat, v, guard(), T);
      }
    }
    sc.commit(T - 5 * M);
    // The next window re-reads the overlap: s2 again (skipped), s3 listed late (counted).
    expect(sc.take('s2', T - 6 * M)).toBe(false);
    expect(sc.take('s3', T - 7 * M)).toBe(true);
    sc.count(['s'], events, 1, guard(), T);
    expect(emitted(l).counters).toEqual({ s: 3 });
    expect(emitted(l).histograms).toEqual({ s: { counts: [1, 1, 0], sum: 3.5, count: 2 } });
    // Far later, old ids are forgotten, and an event older than the overlap is not taken.
    sc.commit(T + 60 * M);
    expect(sc.seen.size).toBe(0);
    expect(sc.take('s9', T - 6 * M)).toBe(false);
  });

  it('refuses counts that are not sane and label sets past the guard', () => {
    const l = new EventLedger(opts, [events]);
    const sc = l.scope('a');
    expect(sc.count(['a'], events, -1, guard(), T)).toBe(false);
    expect(sc.count(['a'], events, Number.POSITIVE_INFINITY, guard(), T)).toBe(false);
    const tight = new CardinalityGuard(() => 1, 3_600_000, () => {});
    expect(sc.count(['a'], events, 1, tight, T)).toBe(true);
    expect(sc.count(['b'], events, 1, tight, T)).toBe(false);
  });

  it('reports the span an outage longer than the reach lost', () => {
    const l = new EventLedger({ ...opts, reachMs: 60 * M }, [events]);
    const sc = l.scope('a');
    sc.commit(T);
    expect(sc.plan(T + 125 * M)).toEqual({ from: T + 65 * M, to: T + 120 * M, lostMs: 65 * M });
  });

  it('carries watermark, hashed ids and totals across a restart, and reads carried state defensively', () => {
    const first = new EventLedger(opts, [events, lat]);
    const sc = first.scope('a');
    sc.take('session-42', T - 6 * M);
    sc.count(['a'], events, 4, guard(), T);
    sc.observe(['a'], lat, 2, guard(), T);
    sc.commit(T - 5 * M);
    const carried = JSON.parse(JSON.stringify(first.carry())) as { scopes: Array<{ seen: Array<[string, number]> }> };
    expect(JSON.stringify(carried)).not.toContain('session-42');
    const second = new EventLedger(opts, [events, lat]);
    second.scope('a');
    second.adopt(carried);
    expect(second.scope('a').take('session-42', T - 6 * M)).toBe(false);
    expect(emitted(second).counters).toEqual({ a: 4 });
    expect(emitted(second).histograms).toEqual({ a: { counts: [0, 1, 0], sum: 2, count: 1 } });
    const third = new EventLedger(opts, [events, lat]);
    third.scope('a');
    third.adopt({ scopes: [{ key: 'a', watermark: 'x', seen: [], entries: [] }, { key: 'a', watermark: 1, seen: 'no', entries: [] }] });
    expect(third.scope('a').watermark).toBeUndefined();
    third.adopt({ scopes: [{ key: 'a', watermark: 1, seen: [], entries: [{ labels: ['a'], counters: { x_events_total: -5 }, histograms: { x_latency_seconds: { counts: [1], sum: 1 } } }] }] });
    expect(emitted(third).counters).toEqual({});
  });

  it('never re-reads before where counting began: the overlap of the second window does not count what ended before the first', () => {
    const l = new EventLedger(opts, [events]);
    const sc = l.scope('a');
    const w1 = sc.plan(T);
    sc.commit(w1.to, w1.from);
    const w2 = sc.plan(T + M);
    expect(w2.from).toBe(w1.from);
    expect(sc.take('before', w1.from - 1)).toBe(false);
    expect(sc.take('late', w1.from + 1)).toBe(true);
  });
});
