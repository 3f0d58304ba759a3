import { describe, expect, it } from 'vitest';
import { defineFamily } from '../../src/engine/family.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { SettledLedger } from '../../src/engine/ledger.js';
import { SampleSet } from '../../src/engine/samples.js';

const M = 60_000;
const fam = defineFamily({ name: 'x_events_total', help: 'h', type: 'counter', unit: 'count', source: 't', labelNames: ['k'] });
const T = Date.UTC(2026, 10, 23, 20, 0, 30); // 30 s into 20:00
const guard = () => new CardinalityGuard(() => 100, 3_600_000, () => {});

function emitted(ledger: SettledLedger, g = guard()): Record<string, number> {
  const set = new SampleSet();
  ledger.emit(set, g, T);
  return Object.fromEntries((set.families.get(fam) ?? []).map((s) => [s.labels[0], s.value]));
}

describe('settled-bucket ledger', () => {
  const opts = { bucketMs: M, reach: 15, settleMs: 60_000 };

  it('knows the newest settled bucket and how far back the upstream still serves', () => {
    const w = new SettledLedger(opts, [fam]).window(T);
    expect(w.current).toBe(T - 30_000); // 20:00
    expect(w.newestSettled).toBe(T - 30_000 - 2 * M); // 19:58: ended a minute ago, plus the settle delay
    expect(w.oldestReadable).toBe(T - 30_000 - 14 * M);
  });

  it('a new scope asks for the newest settled bucket only and counts it; later runs ask from the watermark', () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    let w = ledger.window(T);
    expect(sc.plan(w)).toEqual({ from: w.newestSettled, buckets: 3 });
    let st = sc.settle([w.newestSettled - M, w.newestSettled, w.newestSettled + M], w); // the newest one still fills in
    expect(st).toEqual({ fresh: [w.newestSettled], revisable: [], newest: w.newestSettled, missed: 0 });
    sc.add(['a'], fam, 5, guard(), T);
    sc.commit(st.fresh);
    // a re-read of the same minute adds nothing
    st = sc.settle([w.newestSettled], w);
    expect(st.fresh).toEqual([]);
    expect(st.newest).toBe(w.newestSettled);
    // three minutes later: the three owed minutes, once each
    w = ledger.window(T + 3 * M);
    expect(sc.plan(w)).toEqual({ from: w.newestSettled - 2 * M, buckets: 5 });
    st = sc.settle([w.newestSettled - 3 * M, w.newestSettled - 2 * M, w.newestSettled - M, w.newestSettled], w);
    expect(st.fresh).toEqual([w.newestSettled - 2 * M, w.newestSettled - M, w.newestSettled]);
    for (const _ of st.fresh) sc.add(['a'], fam, 1, guard(), T);
    sc.commit(st.fresh);
    expect(emitted(ledger)).toEqual({ a: 8 });
  });

  it('after a long outage asks only for what the upstream still serves, and counts the rest as missed', () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    const w0 = ledger.window(T);
    sc.commit([w0.newestSettled]);
    const w = ledger.window(T + 20 * M);
    expect(sc.plan(w)).toEqual({ from: w.oldestReadable, buckets: 15 });
    const received = Array.from({ length: 15 }, (_, i) => w.oldestReadable + i * M);
    const st = sc.settle(received, w);
    expect(st.missed).toBe(7); // 20 minutes owed, 13 still readable and settled
    expect(st.fresh).toHaveLength(13);
  });

  it('refuses a new label set the guard has no place for, and keeps admitted ones', () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    const g = new CardinalityGuard(() => 1, 3_600_000, () => {});
    expect(sc.add(['a'], fam, 1, g, T)).toBe(true);
    expect(sc.add(['b'], fam, 1, g, T)).toBe(false);
    expect(sc.add(['a'], fam, 1, g, T)).toBe(true);
    expect(emitted(ledger, g)).toEqual({ a: 2 });
  });

  it('a counter never decreases or becomes non-finite: negative, NaN, infinite and overflowing values are refused', () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    const g = guard();
    expect(sc.add(['a'], fam, 5, g, T)).toBe(true);
    for (const bad of [-1, NaN, Infinity, -Infinity]) expect(sc.add(['a'], fam, bad, g, T)).toBe(false);
    expect(sc.add(['a'], fam, 1.7e308, g, T)).toBe(true);
    expect(sc.add(['a'], fam, 1.7e308, g, T)).toBe(false); // would overflow to +Inf
    expect(emitted(ledger, g)).toEqual({ a: 5 + 1.7e308 });
  });

  it('carries watermarks and totals as JSON for declared scopes only, and refuses totals that are not sane', () => {
    const a = new SettledLedger(opts, [fam]);
    a.scope('kept').add(['x'], fam, 7, guard(), T);
    a.scope('kept').commit([T - 150_000]);
    a.scope('gone').add(['y'], fam, 1, guard(), T);
    const carried = JSON.parse(JSON.stringify(a.carry())) as { scopes: Array<{ key: string; counters: Array<{ totals: Record<string, number> }> }> };
    const b = new SettledLedger(opts, [fam]);
    b.scope('kept');
    b.adopt(carried);
    expect(b.scope('kept').watermark).toBe(T - 150_000);
    expect(emitted(b)).toEqual({ x: 7 });
    // a negative, non-finite or unknown total, or labels that do not fit, are dropped
    const c = new SettledLedger(opts, [fam]);
    c.scope('kept');
    c.adopt({ scopes: [{ key: 'kept', watermark: 5, counters: [
      { labels: ['n'], totals: { x_events_total: -1 } },
      { labels: ['i'], totals: { x_events_total: null } },
      { labels: ['u'], totals: { other_total: 3 } },
      { labels: ['too', 'many'], totals: { x_events_total: 3 } },
      { labels: ['ok'], totals: { x_events_total: 3 } },
    ] }] });
    expect(emitted(c)).toEqual({ ok: 3 });
    c.adopt('garbage');
    c.adopt({ scopes: [{ key: 'kept', watermark: 'x', counters: [] }] });
    expect(emitted(c)).toEqual({ ok: 3 });
  });

  it('relabels a scope\'s totals (an upstream object renamed) and lets scopes go (one deleted)', () => {
    const ledger = new SettledLedger(opts, [fam]);
    ledger.scope('s').add(['old'], fam, 5, guard(), T);
    ledger.scope('t').add(['other'], fam, 2, guard(), T);
    ledger.scope('s').relabel(0, 'new');
    ledger.scope('s').add(['new'], fam, 1, guard(), T);
    expect(emitted(ledger)).toEqual({ new: 6, other: 2 });
    ledger.retain((key) => key === 's');
    expect(emitted(ledger)).toEqual({ new: 6 });
  });

  it('keeps carried state of scopes not declared yet until they are, or until retain lets them go', () => {
    const first = new SettledLedger(opts, [fam]);
    first.scope('a').add(['x'], fam, 3, guard(), T);
    first.scope('a').commit([T - 3 * M]);
    first.scope('b').add(['y'], fam, 4, guard(), T);
    const carried = first.carry();
    // Without keepUndeclared, state of undeclared scopes is dropped.
    const strict = new SettledLedger(opts, [fam]);
    strict.adopt(carried);
    strict.scope('a');
    expect(emitted(strict)).toEqual({});
    const lazy = new SettledLedger(opts, [fam]);
    lazy.adopt(carried, new Map(), { keepUndeclared: true });
    expect(emitted(lazy)).toEqual({}); // nothing declared yet: nothing served
    expect(lazy.carry().scopes.map((sc) => sc.key).sort()).toEqual(['a', 'b']); // but nothing lost either
    expect(lazy.scope('a').watermark).toBe(T - 3 * M);
    expect(emitted(lazy)).toEqual({ x: 3 });
    lazy.retain((key) => key === 'a');
    expect(lazy.carry().scopes.map((sc) => sc.key)).toEqual(['a']);
  });

  it('re-reads the buckets it counted while they are young enough, adds their growth, and reports a downward revision instead of subtracting it', () => {
    const ledger = new SettledLedger({ ...opts, reviseBuckets: 3 }, [fam]);
    const sc = ledger.scope('s');
    let w = ledger.window(T);
    const first = w.newestSettled;
    let st = sc.settle([first], w);
    expect(sc.count(first, ['a'], fam, 90, guard(), T)).toBe(0);
    sc.commit(st.fresh, w);
    // A minute later: the first minute is still revisable, and grew to 100.
    w = ledger.window(T + M);
    expect(sc.plan(w)).toEqual({ from: first, buckets: 4 });
    st = sc.settle([first, first + M], w);
    expect(st).toMatchObject({ fresh: [first + M], revisable: [first] });
    sc.count(first, ['a'], fam, 100, guard(), T);
    sc.count(first + M, ['a'], fam, 50, guard(), T);
    sc.commit(st.fresh, w);
    expect(emitted(ledger)).toEqual({ a: 150 });
    // Revised down: the counter stays, the decrease is reported.
    expect(sc.count(first, ['a'], fam, 97, guard(), T)).toBe(3);
    expect(emitted(ledger)).toEqual({ a: 150 });
    // Three minutes on (the run in between missed): the first minute is past its revise window but
    // was not read at that age, so it is read once more, then its values are let go.
    w = ledger.window(T + 3 * M);
    expect(sc.plan(w).from).toBe(first);
    st = sc.settle([first, first + M, first + 2 * M, first + 3 * M], w);
    expect(st.revisable).toEqual([first, first + M]);
    sc.commit(st.fresh, w);
    expect([...sc.counted.keys()]).toEqual([first + M]);
    // The next minute: not asked for again.
    w = ledger.window(T + 4 * M);
    expect(sc.plan(w).from).toBe(first + M);
  });

  it('never revises the buckets a state file of an earlier version counted (their values were not kept)', () => {
    const ledger = new SettledLedger({ ...opts, reviseBuckets: 5 }, [fam]);
    const w = ledger.window(T);
    ledger.scope('s');
    ledger.adopt({ scopes: [{ key: 's', watermark: w.newestSettled, counters: [{ labels: ['a'], totals: { x_events_total: 10 } }] }] });
    const sc = ledger.scope('s');
    expect(sc.plan(w).from).toBe(w.newestSettled); // the gauges' minute, not a revision
    expect(sc.settle([w.newestSettled - M, w.newestSettled], w).revisable).toEqual([]);
    const carried = ledger.carry().scopes[0]!;
    expect(carried.origin).toBe(w.newestSettled + M);
  });

  it('after a clock stepped back, does not count again the buckets whose values it let go', () => {
    const ledger = new SettledLedger({ ...opts, reviseBuckets: 3 }, [fam]);
    const sc = ledger.scope('s');
    let now = T;
    for (let i = 0; i < 30; i++, now += M) {
      const w = ledger.window(now);
      const st = sc.settle([w.newestSettled - M, w.newestSettled], w);
      for (const ts of [...st.revisable, ...st.fresh]) sc.count(ts, ['a'], fam, 10, guard(), now);
      sc.commit(st.fresh, w);
    }
    expect(emitted(ledger)).toEqual({ a: 300 });
    // The clock steps back 20 minutes: those minutes are in the window again, their values long let go.
    const w = ledger.window(now - 20 * M);
    const st = sc.settle([w.newestSettled - 2 * M, w.newestSettled - M, w.newestSettled], w);
    expect(st.fresh).toEqual([]);
    expect(st.revisable).toEqual([]);
  });
});
