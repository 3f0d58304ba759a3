import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import { AggregationTemporality, DataPointType, type DataPoint, type MetricData } from '@opentelemetry/sdk-metrics';
import type { ParsedFamily, ParsedSeries } from './parse.js';

// Prometheus families to OTLP metrics, as the OpenTelemetry specification's Prometheus
// compatibility section maps them: a counter becomes a cumulative monotonic sum, a gauge (and an
// untyped family) a gauge, a histogram an explicit-bucket histogram with per-bucket (not
// cumulative) counts. Label pairs become attributes; a label with an empty value is left out, as
// Prometheus treats it (an empty label value is the same as no label).

/**
 * Start times of cumulative points. A series keeps the time it was first pushed for as long as it
 * is pushed and does not go down; when it goes down (its counter started again, as a reload that
 * changes a query's scope does) its start moves to the previous push, after which the reset
 * happened. A series absent from a push is forgotten.
 */
export class StartTimes {
  private entries = new Map<string, { start: number; last: number }>();
  private next = new Map<string, { start: number; last: number }>();
  private previousPush: number | undefined;

  /** The start time (ms) of `key` whose cumulative value is `value` in the push at `now`. */
  start(key: string, value: number, now: number): number {
    const e = this.entries.get(key) ?? this.next.get(key);
    let start: number;
    if (!e) start = now;
    else if (value < e.last) start = this.previousPush !== undefined && this.previousPush < now ? this.previousPush : now;
    else start = e.start;
    this.next.set(key, { start, last: value });
    return start;
  }

  /** Ends a push: series not seen in it are forgotten. */
  commit(now: number): void {
    this.entries = this.next;
    this.next = new Map();
    this.previousPush = now;
  }

  /** Drops a push that was not converted to the end (the previous one stays the reference). */
  abandon(): void {
    this.next = new Map();
  }
}

/** OTLP's unit for our base-unit name suffixes (UCUM, as the specification asks); '' when the name says none. */
export function unitOf(name: string): string {
  const base = name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
  if (base.endsWith('_seconds')) return 's';
  if (base.endsWith('_bytes')) return 'By';
  if (base.endsWith('_ratio')) return '1';
  return '';
}

function attributes(labels: readonly [string, string][], skip?: string): Attributes {
  const out: Attributes = {};
  for (const [k, v] of labels) if (v !== '' && k !== skip) out[k] = v;
  return out;
}

function keyOf(name: string, labels: readonly [string, string][], skip?: string): string {
  let key = name;
  const sorted = labels.filter(([k, v]) => v !== '' && k !== skip).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [k, v] of sorted) key += `\u0000${k}\u0001${v}`;
  return key;
}

/** One family as an OTLP metric; undefined for a summary (none is served today) or an empty family. */
export function convertFamily(f: ParsedFamily, now: number, starts: StartTimes): MetricData | undefined {
  if (f.samples.length === 0) return undefined;
  const end: HrTime = millisToHrTime(now);
  const descriptor = { name: f.name, description: f.help, unit: unitOf(f.name), valueType: ValueType.DOUBLE };
  switch (f.type) {
    case 'counter': {
      const dataPoints: DataPoint<number>[] = f.samples.map((s) => ({
        startTime: millisToHrTime(starts.start(keyOf(f.name, s.labels), s.value, now)),
        endTime: end,
        attributes: attributes(s.labels),
        value: s.value,
      }));
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints };
    }
    case 'gauge':
    case 'untyped': {
      const dataPoints: DataPoint<number>[] = f.samples.map((s) => ({ startTime: end, endTime: end, attributes: attributes(s.labels), value: s.value }));
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints };
    }
    case 'histogram':
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.HISTOGRAM, dataPoints: histogramPoints(f, now, end, starts) };
    case 'summary':
      return undefined;
  }
}

interface Building {
  labels: [string, string][];
  buckets: { le: number; cumulative: number }[];
  sum: number;
  count: number | undefined;
}

function histogramPoints(f: ParsedFamily, now: number, end: HrTime, starts: StartTimes): DataPoint<{ buckets: { boundaries: number[]; counts: number[] }; sum: number; count: number }>[] {
  const series = new Map<string, Building>();
  const get = (s: ParsedSeries): Building => {
    const key = keyOf(f.name, s.labels, 'le');
    let b = series.get(key);
    if (!b) {
      b = { labels: s.labels.filter(([k]) => k !== 'le'), buckets: [], sum: 0, count: undefined };
      series.set(key, b);
    }
    return b;
  };
  for (const s of f.samples) {
    const suffix = s.name.slice(f.name.length);
    const b = get(s);
    if (suffix === '_bucket') {
      const le = s.labels.find(([k]) => k === 'le')?.[1];
      if (le === undefined) continue;
      b.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), cumulative: s.value });
    } else if (suffix === '_sum') b.sum = s.value;
    else if (suffix === '_count') b.count = s.value;
  }
  const out = [];
  for (const [key, b] of series) {
    b.buckets.sort((x, y) => x.le - y.le);
    const boundaries: number[] = [];
    const counts: number[] = [];
    let below = 0;
    for (const { le, cumulative } of b.buckets) {
      if (le !== Infinity) boundaries.push(le);
      counts.push(cumulative - below);
      below = cumulative;
    }
    const count = b.count ?? below;
    // The +Inf bucket is always written; if it were not, the observations above the last bound are the rest of the count.
    if (b.buckets.at(-1)?.le !== Infinity) counts.push(count - below);
    out.push({
      startTime: millisToHrTime(starts.start(key, count, now)),
      endTime: end,
      attributes: attributes(b.labels),
      value: { buckets: { boundaries, counts }, sum: b.sum, count },
    });
  }
  return out;
}
