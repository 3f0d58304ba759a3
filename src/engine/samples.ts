import type { FamilyDef } from './family.js';

/** The observations of one histogram series: per-bucket (not cumulative) counts, their sum and count. */
export interface HistogramValue {
  /** One count per finite bucket of the family, plus one for the values above the last bound (+Inf). */
  readonly counts: readonly number[];
  readonly sum: number;
  /** Number of observations; equals the sum of `counts`. */
  readonly count: number;
}

export interface Series {
  readonly labels: readonly string[];
  /** Gauges and counters. */
  readonly value: number;
  /** Histograms (then `value` is the count). */
  readonly histogram?: HistogramValue;
}

/** The samples of one collector run, grouped by family, in insertion order. */
export class SampleSet {
  readonly families = new Map<FamilyDef, Series[]>();
  private count = 0;

  /** Adds one gauge or counter sample; label values are given in the family's labelNames order. */
  add(family: FamilyDef, labels: readonly string[], value: number): void {
    if (family.type === 'histogram') throw new Error(`${family.name} is a histogram: use addHistogram`);
    this.push(family, { labels, value });
  }

  /** Adds one histogram series: one label set, whatever the number of buckets. */
  addHistogram(family: FamilyDef, labels: readonly string[], h: HistogramValue): void {
    const bounds = family.buckets;
    if (family.type !== 'histogram' || !bounds) throw new Error(`${family.name} is not a histogram`);
    if (h.counts.length !== bounds.length + 1) {
      throw new Error(`${family.name}: expected ${bounds.length + 1} bucket counts (the last for +Inf), got ${h.counts.length}`);
    }
    let total = 0;
    for (const c of h.counts) total += c;
    if (total !== h.count) throw new Error(`${family.name}: bucket counts add up to ${total}, count is ${h.count}`);
    this.push(family, { labels, value: h.count, histogram: { counts: [...h.counts], sum: h.sum, count: h.count } });
  }

  get size(): number {
    return this.count;
  }

  private push(family: FamilyDef, s: Series): void {
    if (s.labels.length !== family.labelNames.length) {
      throw new Error(`${family.name}: expected ${family.labelNames.length} label values, got ${s.labels.length}`);
    }
    let list = this.families.get(family);
    if (!list) {
      list = [];
      this.families.set(family, list);
    }
    list.push(s);
    this.count++;
  }
}

/** Joins label values into a map key that no pair of distinct label sets can share. */
export function labelKey(labels: readonly string[]): string {
  return labels.join('\u0000');
}
