import type { FamilyDef } from './family.js';
import type { HistogramValue } from './samples.js';

/**
 * Observations of one histogram series, bucketed by a family's bounds (Prometheus semantics: a value
 * lands in the first bucket whose upper bound it does not exceed). Plain data, so it can be carried
 * across reloads and restarts as JSON.
 */
export class HistogramCounts implements HistogramValue {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  static of(family: FamilyDef): HistogramCounts {
    if (!family.buckets) throw new Error(`${family.name} is not a histogram`);
    return new HistogramCounts(family.buckets);
  }

  /** Adds one observation; a value that is not a finite number is refused (returns false). */
  observe(v: number): boolean {
    if (!Number.isFinite(v)) return false;
    let i = 0;
    // Bounds are few (tens at most): a linear scan beats a binary search here.
    while (i < this.bounds.length && v > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
    return true;
  }

  /** Adds another series' observations (same bounds): a batch counted apart, then taken in whole. */
  merge(other: HistogramValue): void {
    if (other.counts.length !== this.counts.length) throw new Error('histograms of different buckets cannot be merged');
    other.counts.forEach((c, i) => (this.counts[i]! += c));
    this.sum += other.sum;
    this.count += other.count;
  }

  toJSON(): HistogramValue {
    return { counts: [...this.counts], sum: this.sum, count: this.count };
  }

  /** Restores carried counts; undefined when they do not fit these bounds or are not sane. */
  static restore(bounds: readonly number[], v: unknown): HistogramCounts | undefined {
    if (!v || typeof v !== 'object') return undefined;
    const { counts, sum } = v as Record<string, unknown>;
    if (!Array.isArray(counts) || counts.length !== bounds.length + 1) return undefined;
    if (!counts.every((c) => Number.isSafeInteger(c) && (c as number) >= 0) || typeof sum !== 'number' || !Number.isFinite(sum)) return undefined;
    const h = new HistogramCounts(bounds);
    counts.forEach((c, i) => (h.counts[i] = c as number));
    h.count = (counts as number[]).reduce((a, b) => a + b, 0);
    h.sum = sum;
    return h;
  }
}
