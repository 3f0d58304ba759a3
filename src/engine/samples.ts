import type { FamilyDef } from './family.js';

export interface Series {
  readonly labels: readonly string[];
  readonly value: number;
}

/** The samples of one collector run, grouped by family, in insertion order. */
export class SampleSet {
  readonly families = new Map<FamilyDef, Series[]>();
  private count = 0;

  /** Adds one sample; label values are given in the family's labelNames order. */
  add(family: FamilyDef, labels: readonly string[], value: number): void {
    if (labels.length !== family.labelNames.length) {
      throw new Error(`${family.name}: expected ${family.labelNames.length} label values, got ${labels.length}`);
    }
    let list = this.families.get(family);
    if (!list) {
      list = [];
      this.families.set(family, list);
    }
    list.push({ labels, value });
    this.count++;
  }

  get size(): number {
    return this.count;
  }
}

/** Joins label values into a map key that no pair of distinct label sets can share. */
export function labelKey(labels: readonly string[]): string {
  return labels.join('\u0000');
}
