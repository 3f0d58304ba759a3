/**
 * Cardinality guard: at most `limit` label sets per family. Label sets already admitted keep
 * their place (a counter that vanished and came back would read as a reset); a label set not
 * seen for `idleMs` gives its place up. Each refused label set is reported through onDrop.
 */
export class CardinalityGuard {
  private readonly families = new Map<string, Map<string, number>>();

  constructor(
    private readonly limitFor: (family: string) => number,
    private readonly idleMs: number,
    private readonly onDrop: (family: string, count: number) => void,
  ) {}

  /** True when the label set `key` of `family` may be exported at time `now`. */
  admit(family: string, key: string, now: number): boolean {
    let seen = this.families.get(family);
    if (!seen) {
      seen = new Map();
      this.families.set(family, seen);
    }
    if (seen.has(key)) {
      seen.set(key, now);
      return true;
    }
    const limit = this.limitFor(family);
    if (seen.size >= limit) this.evictIdle(seen, now);
    if (seen.size < limit) {
      seen.set(key, now);
      return true;
    }
    this.onDrop(family, 1);
    return false;
  }

  /** True when `key` currently holds a place in `family`. */
  has(family: string, key: string): boolean {
    return this.families.get(family)?.has(key) ?? false;
  }

  private evictIdle(seen: Map<string, number>, now: number): void {
    for (const [k, last] of seen) if (now - last > this.idleMs) seen.delete(k);
  }
}
