import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defineFamily } from '../../src/engine/family.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { HistogramCounts } from '../../src/engine/histogram.js';
import { renderSampleSet } from '../../src/engine/render.js';
import { SampleSet } from '../../src/engine/samples.js';
import { parseExposition, value } from '../helpers/exposition.js';
import { requirePromtool } from '../helpers/promtool.js';

const startTime = defineFamily({
  name: 'test_session_start_time_seconds',
  help: 'Video start time of sampled sessions.',
  type: 'histogram',
  unit: 'seconds',
  source: 'test',
  labelNames: ['account', 'device'],
  buckets: [0.5, 1, 2.5, 5],
});
const plain = defineFamily({ name: 'test_latency_seconds', help: 'No labels.', type: 'histogram', unit: 'seconds', source: 'test', labelNames: [], buckets: [0.1, 1] });

describe('histogram families', () => {
  it('refuses buckets that are missing, unsorted or not finite, reserved suffixes, and buckets on other types', () => {
    const base = { help: 'h', type: 'histogram' as const, unit: 's', source: 't', labelNames: [] };
    expect(() => defineFamily({ ...base, name: 'x_seconds' })).toThrow('needs buckets');
    expect(() => defineFamily({ ...base, name: 'x_seconds', buckets: [1, 0.5] })).toThrow('strictly ascending');
    expect(() => defineFamily({ ...base, name: 'x_seconds', buckets: [1, 1] })).toThrow('strictly ascending');
    expect(() => defineFamily({ ...base, name: 'x_seconds', buckets: [1, Infinity] })).toThrow('finite');
    expect(() => defineFamily({ ...base, name: 'x_count', buckets: [1] })).toThrow('must not end in _bucket, _sum or _count');
    expect(() => defineFamily({ ...base, name: 'x_total', buckets: [1] })).toThrow('_total is for counters');
    expect(() => defineFamily({ ...base, type: 'gauge', name: 'x', buckets: [1] })).toThrow('only histograms have buckets');
  });

  it('counts an observation in the first bucket whose bound it does not exceed (le is inclusive)', () => {
    const h = HistogramCounts.of(startTime);
    for (const v of [0.5, 0.51, 1, 5, 5.01, 0, -1]) expect(h.observe(v)).toBe(true);
    expect(h.observe(NaN)).toBe(false);
    expect(h.observe(Infinity)).toBe(false);
    expect(h.counts).toEqual([3, 2, 0, 1, 1]);
    expect(h.count).toBe(7);
    expect(h.sum).toBeCloseTo(0.5 + 0.51 + 1 + 5 + 5.01 + 0 - 1, 10);
    // carried as JSON and restored; counts that do not fit the bounds are refused
    expect(HistogramCounts.restore(startTime.buckets!, JSON.parse(JSON.stringify(h)))?.counts).toEqual(h.counts);
    expect(HistogramCounts.restore(startTime.buckets!, { counts: [1, 2], sum: 1 })).toBeUndefined();
    expect(HistogramCounts.restore(startTime.buckets!, { counts: [1, 2, 3, 4, -5], sum: 1 })).toBeUndefined();
  });

  it('a sample set refuses bucket counts that do not fit the family or add up to another count', () => {
    const set = new SampleSet();
    expect(() => set.addHistogram(startTime, ['a', 'b'], { counts: [1, 2], sum: 1, count: 3 })).toThrow('expected 5 bucket counts');
    expect(() => set.addHistogram(startTime, ['a', 'b'], { counts: [1, 0, 0, 0, 0], sum: 1, count: 2 })).toThrow('add up to 1, count is 2');
    expect(() => set.add(startTime, ['a', 'b'], 1)).toThrow('use addHistogram');
  });

  it('renders cumulative _bucket{le} series ending in +Inf, _sum and _count (golden), which promtool accepts', (ctx) => {
    const set = new SampleSet();
    const ios = HistogramCounts.of(startTime);
    for (const v of [0.3, 0.7, 0.9, 1.8, 7.5]) ios.observe(v);
    set.addHistogram(startTime, ['prod', 'iOS "16"\n'], ios);
    set.addHistogram(startTime, ['prod', 'Roku'], HistogramCounts.of(startTime)); // no observations: all zero
    const lat = HistogramCounts.of(plain);
    lat.observe(0.05);
    set.addHistogram(plain, [], lat);
    const text = renderSampleSet(set);
    const golden = new URL('../fixtures/engine/histogram.golden.prom', import.meta.url);
    if (process.env.UPDATE_GOLDEN) writeFileSync(golden, text);
    expect(text).toBe(readFileSync(golden, 'utf8'));
    const samples = parseExposition(text);
    const labels = { account: 'prod', device: 'iOS "16"\n' };
    expect([0.5, 1, 2.5, 5, Infinity].map((le) => value(samples, 'test_session_start_time_seconds_bucket', { ...labels, le: le === Infinity ? '+Inf' : String(le) }))).toEqual([1, 3, 4, 4, 5]);
    expect(value(samples, 'test_session_start_time_seconds_count', labels)).toBe(5);
    expect(value(samples, 'test_session_start_time_seconds_sum', labels)).toBeCloseTo(11.2, 10);
    requirePromtool(ctx);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('a histogram series takes one place in the cardinality guard, whatever its number of buckets', () => {
    const drops: string[] = [];
    const guard = new CardinalityGuard(() => 2, 60_000, (f) => drops.push(f));
    // two label sets fit a limit of 2 although they render as 2 x (5 buckets + sum + count) lines
    expect(guard.admit(startTime.name, 'a', 0)).toBe(true);
    expect(guard.admit(startTime.name, 'b', 0)).toBe(true);
    expect(guard.admit(startTime.name, 'c', 0)).toBe(false);
    expect(drops).toEqual([startTime.name]);
  });
});
