import type { RunContext } from '../../engine/collector.js';
import type { FamilyDef } from '../../engine/family.js';
import type { LedgerScope, LedgerWindow, SettledLedger, Settlement } from '../../engine/ledger.js';
import type { EngineMetrics } from '../../engine/self-metrics.js';
import { labelKey } from '../../engine/samples.js';
import type { GaugeSpec, MetricSpec } from './catalogue.js';
import { readValue, type Bucket } from './schema.js';

// One-minute Conviva answers (Metrics V3 real time, DPI Flow) turned into counter increments and
// gauge values: shared by the real-time and the flow collector, which differ in what they ask.

/** Bucket start -> row value (undefined for the total) -> the row's metric objects. */
export type MergedBuckets = Map<number, Map<string | undefined, Record<string, unknown>>>;

/** Merges answers for one scope (chunks of metrics, say): ts -> row value -> metrics of all answers. */
export function mergeBuckets(answers: Bucket[][]): MergedBuckets {
  const out: MergedBuckets = new Map();
  for (const buckets of answers) {
    for (const b of buckets) {
      let rows = out.get(b.ts);
      if (!rows) {
        rows = new Map();
        out.set(b.ts, rows);
      }
      for (const r of b.rows) rows.set(r.value, { ...rows.get(r.value), ...r.metrics });
    }
  }
  return out;
}

/** A gauge spec with the metric key it reads. */
export type KeyedGauge = GaugeSpec & { key: string };

export function keyedGauges(specs: readonly MetricSpec[]): KeyedGauge[] {
  return specs.flatMap((s) => s.gauges.map((g) => ({ ...g, key: s.key })));
}

/** One scope's answer, reduced to what the apply step needs. */
export interface ScopeResult {
  settlement: Settlement;
  /** Rows of the fresh and the revisable buckets: the count of each counter spec (undefined when absent or unreadable). */
  fresh: Array<{ ts: number; labels: string[]; values: Array<number | undefined> }>;
  /** Rows of the newest settled bucket: the value of each gauge spec. */
  gauges: Array<{ labels: string[]; values: Array<number | undefined> }>;
  /** Non-numeric values met. */
  bad: number;
}

/**
 * Reduces a scope's merged answer at once to the numbers the apply step needs: the counts of the
 * fresh buckets and the gauge values of the newest settled one (the parsed JSON can then go).
 */
export function reduceScope(
  merged: MergedBuckets,
  settlement: Settlement,
  labelsOf: (value: string | undefined) => string[],
  counterSpecs: readonly MetricSpec[],
  gaugeSpecs: readonly KeyedGauge[],
): ScopeResult {
  const result: ScopeResult = { settlement, fresh: [], gauges: [], bad: 0 };
  const gaugeTs = settlement.newest;
  if (gaugeTs === undefined) return result;
  const bad = () => result.bad++;
  const noop = () => {};
  for (const ts of [...settlement.revisable, ...settlement.fresh]) {
    for (const [value, rowMetrics] of merged.get(ts)!) {
      // A count in the gauges' bucket is read twice (counter and gauge); only the gauge pass
      // reports it, so each bad value counts once.
      result.fresh.push({ ts, labels: labelsOf(value), values: counterSpecs.map((spec) => readValue(rowMetrics, spec.key, 'count', ts === gaugeTs ? noop : bad)) });
    }
  }
  for (const [value, rowMetrics] of merged.get(gaugeTs)!) {
    result.gauges.push({ labels: labelsOf(value), values: gaugeSpecs.map((g) => readValue(rowMetrics, g.key, g.field, bad)) });
  }
  return result;
}

/**
 * Counts a scope's fresh minutes, and the growth of the minutes it counted that are young enough to
 * be revised; commits them; shows the newest settled minute's gauges. Returns the downward
 * revisions (not subtracted: a counter never goes down), per counter family.
 */
export function applyScope(ls: LedgerScope, result: ScopeResult, counterFamilies: readonly FamilyDef[], gaugeSpecs: readonly KeyedGauge[], ctx: RunContext, w: LedgerWindow): Map<FamilyDef, number> {
  const down = new Map<FamilyDef, number>();
  for (const row of result.fresh) {
    row.values.forEach((count, j) => {
      if (count === undefined) return;
      const family = counterFamilies[j]!;
      const d = ls.count(row.ts, row.labels, family, count, ctx.guard, ctx.now);
      if (d > 0) down.set(family, (down.get(family) ?? 0) + d);
    });
  }
  ls.commit(result.settlement.fresh, w, result.settlement.gap);
  for (const row of result.gauges) {
    const key = labelKey(row.labels);
    row.values.forEach((v, j) => {
      const g = gaugeSpecs[j]!;
      if (v === undefined || !ctx.guard.admit(g.family.name, key, ctx.now)) return;
      // toPrecision(15) drops float noise from the division (98.53 / 100 is 0.9853000000000001).
      ctx.samples.add(g.family, row.labels, g.divisor === 1 ? v : Number((v / g.divisor).toPrecision(15)));
    });
  }
  return down;
}

/**
 * Reports, every run, how far a ledger's watermark is ahead of the clock (the gauge), warning once
 * when it starts: counters freeze until the clock passes it, and that must never be silent.
 */
export function aheadReporter(ledger: SettledLedger, gauge: EngineMetrics['watermarkAhead'], collector: string): (w: LedgerWindow, ctx: RunContext) => void {
  gauge.set({ collector }, 0);
  let logged = false;
  return (w, ctx) => {
    const ahead = ledger.aheadMs(w);
    gauge.set({ collector }, ahead / 1000);
    if (ahead > 0 && !logged) ctx.log.warn({ aheadSeconds: ahead / 1000 }, 'counter watermark ahead of the clock: counters wait until the clock passes it');
    logged = ahead > 0;
  };
}

/** A run's callback for unreadable upstream data: logged once a run (the parse errors are counted by the caller). */
export function skipLogger(ctx: RunContext): (what: string) => void {
  let skipped = 0;
  return (what) => {
    if (++skipped === 1) ctx.log.warn({ what }, 'skipped unreadable upstream data');
  };
}
