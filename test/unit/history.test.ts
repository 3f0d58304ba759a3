import pino from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { RunContext } from '../../src/engine/collector.js';
import { defineFamily } from '../../src/engine/family.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { SettledLedger } from '../../src/engine/ledger.js';
import { SampleSet } from '../../src/engine/samples.js';
import type { MetricSpec } from '../../src/sources/conviva/catalogue.js';
import { historyStep, type HistoryConfig } from '../../src/sources/conviva/history.js';
import type { MergedBuckets } from '../../src/sources/conviva/minutes.js';

const M = 60_000;
const fam = defineFamily({ name: 'x_events_total', help: 'h', type: 'counter', unit: 'count', source: 't', labelNames: ['k'] });
const T = Date.UTC(2026, 10, 23, 20, 0, 30);
const opts = { bucketMs: M, reach: 15, settleMs: 60_000, backfill: true, reviseBuckets: 3 };
const guard = new CardinalityGuard(() => 100, 3_600_000, () => {});
/** The upstream's value of minute ts: a function of ts, so any read of it agrees. */
const valueOf = (ts: number) => Math.floor(ts / M) % 97;

function emitted(ledger: SettledLedger): number {
  const set = new SampleSet();
  ledger.emit(set, guard, T);
  return set.families.get(fam)?.[0]?.value ?? 0;
}

function metrics() {
  const registers = [new Registry()];
  return {
    bucketsRecovered: new Counter({ name: 'recovered', help: 'h', labelNames: ['collector'], registers }),
    bucketsMissed: new Counter({ name: 'missed', help: 'h', labelNames: ['collector'], registers }),
    bucketsOwed: new Gauge({ name: 'owed', help: 'h', labelNames: ['collector'], registers }),
    revisedDown: new Counter({ name: 'down', help: 'h', labelNames: ['collector', 'family'], registers }),
    auditCounted: new Counter({ name: 'counted', help: 'h', labelNames: ['collector', 'family'], registers }),
    auditReference: new Counter({ name: 'reference', help: 'h', labelNames: ['collector', 'family'], registers }),
    auditDivergence: new Gauge({ name: 'divergence', help: 'h', labelNames: ['collector', 'family'], registers }),
    auditMinutes: new Counter({ name: 'minutes', help: 'h', labelNames: ['collector'], registers }),
  };
}
const get = async (m: Counter | Gauge, labels: Record<string, string>) => (await m.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;

const spec = { key: 'events', path: 'events', gauges: [], counter: fam } as unknown as MetricSpec;
const lim = { signal: new AbortController().signal, deadline: Infinity };
const ctxAt = (now: number) => ({ now, guard, log: pino({ level: 'silent' }), signal: new AbortController().signal, deadline: now + 50_000 }) as unknown as RunContext;
const config: HistoryConfig = { catch_up: { enabled: true, requests_per_run: 2 }, audit: { enabled: true, delay: 20 * M, interval: 15 * M } };
/** A historical read of [from, to): the upstream's value per minute, one row. */
const history = (reads: Array<[number, number]>, scale = 1) => async (from: number, to: number): Promise<MergedBuckets> => {
  reads.push([from, to]);
  const out: MergedBuckets = new Map();
  for (let ts = from; ts < to; ts += M) out.set(ts, new Map([[undefined, { events: { count: Math.round(valueOf(ts) * scale) } }]]));
  return out;
};

/** One real-time run: settles the served minutes of the window and counts them (the collector's apply step). */
function realtimeRun(ledger: SettledLedger, now: number, upstream = valueOf) {
  const sc = ledger.scope('s');
  const w = ledger.window(now);
  const { from } = sc.plan(w);
  const received: number[] = [];
  for (let ts = Math.max(from, w.oldestReadable); ts <= w.current; ts += M) received.push(ts);
  const st = sc.settle(received, w);
  for (const ts of [...st.revisable, ...st.fresh]) sc.count(ts, ['a'], fam, upstream(ts), guard, now);
  sc.commit(st.fresh, w, st.gap);
  return st;
}

describe('ledger holes and the history step', () => {
  it('keeps the minutes an outage skipped as a hole instead of missing them, and the history step fills it exactly once', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const m = metrics();
    const step = historyStep({ collector: 'c', config, horizonMs: 31 * 24 * 60 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: m });
    realtimeRun(ledger, T);
    const first = ledger.window(T).newestSettled;
    // 150 minutes of outage: the real-time window serves only the last 15.
    const now = T + 150 * M;
    const st = realtimeRun(ledger, now);
    expect(st.missed).toBe(0);
    const w = ledger.window(now);
    expect(st.gap).toEqual([first + M, w.oldestReadable]);
    const sc = ledger.scope('s');
    // The first minute was counted but never read again once its revisions were in: it is owed too
    // (its growth only), its counted value kept.
    expect(sc.holes).toEqual([[first, w.oldestReadable]]);
    expect(sc.counted.has(first)).toBe(true);
    // Two one-hour reads a run: the 137 owed minutes take two runs, each minute read once.
    const reads: Array<[number, number]> = [];
    // Nothing is read while the newest owed minutes are younger than the historical API's finality
    // (audit.delay, 20m): the first hour is.
    let r = await step.read(sc, w, ctxAt(now), lim, history(reads));
    expect(reads).toEqual([[first, first + 60 * M], [first + 60 * M, first + 120 * M]]);
    expect(step.apply(sc, r, () => ['a'], ctxAt(now)).recovered).toBe(119); // minutes never counted
    expect(sc.counted.has(first)).toBe(false);
    r = await step.read(sc, w, ctxAt(now), lim, history(reads));
    expect(reads[2]).toEqual([first + 120 * M, Math.floor((now - 20 * M) / M) * M]);
    step.apply(sc, r, () => ['a'], ctxAt(now));
    expect(sc.holes).toEqual([[Math.floor((now - 20 * M) / M) * M, w.oldestReadable]]);
    // Six minutes on, the rest is final.
    const later = now + 6 * M;
    r = await step.read(sc, ledger.window(later), ctxAt(later), lim, history(reads));
    expect(reads[3]).toEqual([Math.floor((now - 20 * M) / M) * M, w.oldestReadable]);
    step.apply(sc, r, () => ['a'], ctxAt(later));
    expect(sc.holes).toEqual([]);
    // Nothing more to read; every minute from the first to the newest settled counted once.
    r = await step.read(sc, w, ctxAt(later), lim, history(reads));
    expect(r.fills).toEqual([]);
    let expected = 0;
    for (let ts = first; ts <= w.newestSettled; ts += M) expected += valueOf(ts);
    expect(emitted(ledger)).toBe(expected);
  });

  it('fills only the owed minutes of a read spanning two holes, keeps a hole across a failed read, and carries holes in the state', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    sc.watermark = T - 60 * M; // holes are always behind the watermark
    sc.addHole(T - 100 * M, T - 90 * M);
    sc.addHole(T - 80 * M, T - 70 * M);
    sc.addHole(T - 85 * M, T - 79 * M); // merges with the second
    expect(sc.holes).toEqual([[T - 100 * M, T - 90 * M], [T - 85 * M, T - 70 * M]]);
    const step = historyStep({ collector: 'c', config: { ...config, catch_up: { enabled: true, requests_per_run: 1 } }, horizonMs: 31 * 24 * 60 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: metrics() });
    const w = ledger.window(T);
    const failed = await step.read(sc, w, ctxAt(T), lim, () => Promise.reject(new Error('503')));
    expect((failed.error as Error).message).toBe('503');
    step.apply(sc, failed, () => ['a'], ctxAt(T));
    expect(sc.holes).toHaveLength(2);
    // State written now and read by a new process keeps the holes.
    const restored = new SettledLedger(opts, [fam]);
    const rs = restored.scope('s');
    restored.adopt(JSON.parse(JSON.stringify(ledger.carry())));
    expect(rs.holes).toEqual(sc.holes);
    const reads: Array<[number, number]> = [];
    const r = await step.read(rs, w, ctxAt(T), lim, history(reads));
    expect(reads).toEqual([[T - 100 * M, T - 70 * M]]); // both holes in one read, up to the last one's end
    expect(step.apply(rs, r, () => ['a'], ctxAt(T)).recovered).toBe(25);
    expect(rs.holes).toEqual([]);
    let expected = 0;
    for (let ts = T - 100 * M; ts < T - 90 * M; ts += M) expected += valueOf(ts);
    for (let ts = T - 85 * M; ts < T - 70 * M; ts += M) expected += valueOf(ts);
    expect(emitted(restored)).toBe(expected);
  });

  it('counts as lost the owed minutes older than the historical API keeps', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    sc.watermark = T - 3000 * M;
    sc.addHole(T - 3000 * M, T - 100 * M);
    const m = metrics();
    const step = historyStep({ collector: 'c', config, horizonMs: 24 * 60 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: m });
    const out = step.apply(sc, undefined, () => ['a'], ctxAt(T));
    // The horizon is the first whole minute inside the last 24 hours, with a minute to spare.
    const horizon = Math.floor((T - 24 * 60 * M) / M) * M + 2 * M;
    expect(out.lost).toBe((horizon - (T - 3000 * M)) / M);
    expect(sc.holes).toEqual([[horizon, T - 100 * M]]);
    step.report(ctxAt(T), out, []);
    expect(await get(m.bucketsOwed, { collector: 'c' })).toBe((T - 100 * M - horizon) / M);
    expect(await get(m.bucketsMissed, { collector: 'c' })).toBe(out.lost);
  });

  it('audits each counted minute once, after it can no longer be revised and is final, and exports the divergence', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    sc.audited = true;
    const m = metrics();
    const step = historyStep({ collector: 'c', config, horizonMs: 31 * 24 * 60 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: m });
    // Real time undercounts by a tenth (a unit or settling assumption gone wrong).
    const under = (ts: number) => Math.round(valueOf(ts) * 0.9);
    const reads: Array<[number, number]> = [];
    let audited = 0;
    let counted = 0;
    let reference = 0;
    for (let i = 0; i <= 60; i++) {
      const now = T + i * M;
      realtimeRun(ledger, now, under);
      const r = await step.read(sc, ledger.window(now), ctxAt(now), lim, history(reads));
      const before = new Set(sc.pendingAudit.keys());
      const out = step.apply(sc, r, () => ['a'], ctxAt(now));
      step.report(ctxAt(now), out, [r]);
      if (r.audit) {
        // Only minutes that left the revise window, and ended at least `delay` ago.
        for (let ts = r.audit.from; ts < r.audit.to; ts += M) {
          if (!before.has(ts)) continue;
          expect(ts + M).toBeLessThanOrEqual(now - config.audit.delay);
          counted += under(ts);
          reference += valueOf(ts);
        }
      }
      audited += out.audited;
    }
    // Batches come every interval, not every run.
    expect(reads.length).toBeGreaterThanOrEqual(2);
    expect(reads.length).toBeLessThanOrEqual(4);
    expect(audited).toBeGreaterThan(20);
    // No minute audited twice: the reads do not overlap.
    for (let i = 1; i < reads.length; i++) expect(reads[i]![0]).toBeGreaterThanOrEqual(reads[i - 1]![1]);
    expect(await get(m.auditCounted, { family: fam.name })).toBe(counted);
    expect(await get(m.auditReference, { family: fam.name })).toBe(reference);
    expect(await get(m.auditDivergence, { family: fam.name })).toBeLessThan(-0.05);
    expect(await get(m.auditDivergence, { family: fam.name })).toBeGreaterThan(-0.15);
  });

  it('an unaudited scope keeps no pending audit, and a scope without backfill still reports missed minutes', () => {
    const ledger = new SettledLedger({ ...opts, backfill: false }, [fam]);
    realtimeRun(ledger, T);
    const st = realtimeRun(ledger, T + 40 * M);
    expect(st.missed).toBeGreaterThan(0);
    expect(st.gap).toBeUndefined();
    expect(ledger.scope('s').holes).toEqual([]);
    expect(ledger.scope('s').pendingAudit.size).toBe(0);
  });
  it('halves the span of a scope whose hour is too large (413), and never reads before the horizon', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    const Tm = Math.floor(T / M) * M;
    sc.watermark = Tm - 30 * M;
    sc.addHole(Tm - 2000 * M, Tm - 100 * M);
    const step = historyStep({ collector: 'c', config: { ...config, catch_up: { enabled: true, requests_per_run: 1 } }, horizonMs: 1440 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: metrics() });
    const spans: Array<[number, number]> = [];
    const tooLarge = async (from: number, to: number): Promise<MergedBuckets> => {
      spans.push([from, to]);
      throw Object.assign(new Error('413'), { status: 413 });
    };
    const w = ledger.window(T);
    for (let i = 0; i < 3; i++) step.apply(sc, await step.read(sc, w, ctxAt(T), lim, tooLarge), () => ['a'], ctxAt(T));
    const horizon = Math.floor((T - 1440 * M) / M) * M + 2 * M;
    expect(spans).toEqual([[horizon, horizon + 60 * M], [horizon, horizon + 30 * M], [horizon, horizon + 15 * M]]);
    // The part older than the horizon is lost, once; the rest is still owed.
    expect(sc.holes).toEqual([[horizon, Tm - 100 * M]]);
  });

  it('never counts a minute past the watermark, and keeps a gap from reaching past the fresh minutes', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    const Tm = Math.floor(T / M) * M;
    sc.watermark = Tm - 100 * M;
    sc.addHole(Tm - 90 * M, Tm - 50 * M); // a hole that (wrongly) reaches past the watermark
    const step = historyStep({ collector: 'c', config, horizonMs: 31 * 1440 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: metrics() });
    const reads: Array<[number, number]> = [];
    step.apply(sc, await step.read(sc, ledger.window(T), ctxAt(T), lim, history(reads)), () => ['a'], ctxAt(T));
    expect(emitted(ledger)).toBe(0);
    expect(sc.holes).toEqual([[Tm - 90 * M, Tm - 50 * M]]);
    // A gap ends where the answer's fresh minutes begin, even when the window says otherwise.
    const w = ledger.window(T);
    const st = sc.settle([w.oldestReadable + 3 * M, w.newestSettled], w);
    expect(st.gap).toEqual([Tm - 99 * M, w.oldestReadable]);
    const skewed = { ...w, oldestReadable: w.oldestReadable + 5 * M };
    expect(sc.settle([w.oldestReadable + 3 * M, w.newestSettled], skewed).gap).toEqual([Tm - 99 * M, w.oldestReadable + 3 * M]);
  });

  it('exports the divergence of the whole run, all audited scopes together', async () => {
    const m = metrics();
    const step = historyStep({ collector: 'c', config, horizonMs: 31 * 1440 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: m });
    const ledger = new SettledLedger(opts, [fam]);
    const Tm = Math.floor(T / M) * M;
    const scopes = ['short', 'exact'].map((k) => {
      const sc = ledger.scope(k);
      sc.audited = true;
      sc.pendingAudit.set(Tm - 40 * M, new Map([[fam, k === 'short' ? 95 : 100]]));
      return sc;
    });
    const reference = async (from: number, to: number): Promise<MergedBuckets> => new Map([...Array((to - from) / M).keys()].map((i) => [from + i * M, new Map([[undefined, { events: { count: 100 } }]])]));
    const results = await Promise.all(scopes.map((sc) => step.read(sc, ledger.window(T), ctxAt(T), lim, reference)));
    step.applyRun(scopes.map((sc, i) => ({ ls: sc, result: results[i], labelsOf: () => ['a'] })), ctxAt(T));
    expect(await get(m.auditCounted, { family: fam.name })).toBe(195);
    expect(await get(m.auditReference, { family: fam.name })).toBe(200);
    expect(await get(m.auditDivergence, { family: fam.name })).toBeCloseTo(-0.025, 10);
    expect(await get(m.auditMinutes, { collector: 'c' })).toBe(2);
  });
  it('a held minute kept as a hole, then read in full in real time after the clock stepped back, is not filled again', async () => {
    const ledger = new SettledLedger(opts, [fam]);
    const sc = ledger.scope('s');
    realtimeRun(ledger, T);
    const first = ledger.window(T).newestSettled;
    // Runs fail for 16 minutes: the first minute, counted once, is let go by the real-time window
    // before its revisions were read: kept as a hole.
    realtimeRun(ledger, T + 16 * M);
    expect(sc.holes[0]![0]).toBe(first);
    expect(sc.counted.has(first)).toBe(true);
    // The clock steps back 10 minutes: the minute is readable again, read when older than the
    // revise window, counted to its final value, let go, and owed no more.
    realtimeRun(ledger, T + 6 * M);
    expect(sc.counted.has(first)).toBe(false);
    expect(sc.holes.some(([a, z]) => first >= a && first < z)).toBe(false);
    const step = historyStep({ collector: 'c', config, horizonMs: 31 * 1440 * M, counterSpecs: [spec], counterFamilies: [fam], metrics: metrics() });
    const later = T + 60 * M;
    for (let i = 0; i < 3; i++) step.apply(sc, await step.read(sc, ledger.window(later), ctxAt(later), lim, history([])), () => ['a'], ctxAt(later));
    let expected = 0;
    for (let ts = first; ts <= (sc.watermark as number); ts += M) expected += valueOf(ts);
    expect(emitted(ledger)).toBe(expected);
  });
});
