import type { FamilyDef } from './family.js';
import type { CardinalityGuard } from './guard.js';
import { labelKey, type SampleSet } from './samples.js';

/**
 * The settled-bucket ledger: exactly-once counting over an upstream that serves fixed-size time
 * buckets (one minute, say) which keep filling in for a while and can be read back only so
 * far. Per scope (one upstream query: account, filter, dimension, ...) it keeps a watermark, the
 * start of the newest bucket already counted, and the running totals per label set and counter
 * family. A run plans which buckets to ask for, fetches, settles the answer against the
 * watermark, adds the fresh buckets and commits; a re-read, a retry or an overlapping window
 * never adds a bucket twice, and a failed run leaves the scope as it was, so the next run reads the
 * missed buckets again while the upstream still serves them.
 */
export interface LedgerOptions {
  /** Bucket length in ms. */
  bucketMs: number;
  /** How many buckets back the upstream still serves, the current (filling) one included. */
  reach: number;
  /** A bucket is counted (settled) once it ended at least this long ago. */
  settleMs: number;
  /**
   * How many settled buckets, the newest included, are read again every run: an upstream that
   * revises a bucket after it settled (a minute that keeps filling in for minutes) has the
   * growth added while the bucket is this young. 1 (the default): only the newest.
   */
  reviseBuckets?: number;
  /**
   * Buckets owed to the counters that the upstream's window no longer serves are kept as holes,
   * to be filled from an upstream that keeps them longer (a historical API), rather than lost.
   */
  backfill?: boolean;
}

/** Where the buckets stand at one instant; all values are bucket starts (epoch ms). */
export interface LedgerWindow {
  /** The bucket that contains `now`. */
  current: number;
  /** The newest settled bucket. */
  newestSettled: number;
  /** The oldest bucket the upstream still serves. */
  oldestReadable: number;
}

/** What a scope should count from one answer. */
export interface Settlement {
  /** Settled buckets newer than the watermark, oldest first: count each once, then commit them. */
  fresh: number[];
  /** Buckets counted before and still young enough to be revised: count their growth. */
  revisable: number[];
  /** The newest settled bucket in the answer (what gauges show), if any. */
  newest?: number;
  /** Buckets owed to the counters that the upstream no longer serves (lost for every label set of the scope). */
  missed: number;
  /** With `backfill`, those buckets instead: [from, to), to be kept as a hole when the answer is applied. */
  gap?: [number, number];
}

interface Entry {
  labels: readonly string[];
  totals: Map<FamilyDef, number>;
}

/** One scope's watermark and running totals. */
export class LedgerScope {
  watermark: number | undefined;
  /** The first bucket this scope counted: nothing older is ever counted. */
  origin: number | undefined;
  /** Buckets up to here were counted by a version that kept no per-bucket values: never revised. */
  reviseFloor: number | undefined;
  readonly entries = new Map<string, Entry>();
  /** What was counted per revisable bucket: bucket start -> label key -> family -> value. */
  readonly counted = new Map<number, Map<string, Map<FamilyDef, number>>>();
  /**
   * Buckets skipped by the watermark but not counted yet ([from, to), oldest first, disjoint):
   * the upstream's window had moved past them (an outage, a restart). Filled from elsewhere.
   */
  holes: Array<[number, number]> = [];
  /** Whether what this scope counts is audited (see `pendingAudit`). */
  audited = false;
  /**
   * Audited scopes: per counted bucket, once it can no longer be revised, what was counted for it,
   * per family (summed over label sets). The audit compares it with the upstream's final record.
   */
  readonly pendingAudit = new Map<number, Map<FamilyDef, number>>();

  constructor(private readonly o: LedgerOptions) {}

  /** The oldest bucket still revised in this window. */
  private reviseFrom(w: LedgerWindow): number {
    const b = this.o.bucketMs;
    return Math.max(w.newestSettled - ((this.o.reviseBuckets ?? 1) - 1) * b, w.oldestReadable, this.origin ?? -Infinity, (this.reviseFloor ?? -Infinity) + b);
  }

  /** The oldest bucket a run should ask for, and how many buckets that is back from the current one, inclusive. */
  plan(w: LedgerWindow): { from: number; buckets: number } {
    const b = this.o.bucketMs;
    // From the oldest bucket still owed to the counters or still revised, and never later than the
    // newest settled bucket, which the gauges show even when the counters owe nothing (a re-read).
    const owed = this.watermark === undefined ? w.newestSettled : Math.max(this.watermark + b, w.oldestReadable);
    // Only buckets whose counted values are still held can be revised (a new scope has none); a
    // bucket is held until a read of it when it is older than revise_window, so after runs that
    // failed the held buckets still readable are read again, however old.
    let held = w.newestSettled;
    for (const ts of this.counted.keys()) if (ts >= w.oldestReadable && ts < held) held = ts;
    const from = Math.min(owed, held, w.newestSettled);
    return { from, buckets: Math.min(this.o.reach, Math.max(1, (w.current - from) / b + 1)) };
  }

  /**
   * Settles the bucket starts of an answer against the watermark. A scope seen for the first time
   * counts only its newest settled bucket: a counter starts at the count of the first bucket seen.
   */
  settle(received: Iterable<number>, w: LedgerWindow): Settlement {
    const b = this.o.bucketMs;
    const settled = [...received].filter((ts) => ts <= w.newestSettled).sort((x, y) => x - y);
    if (settled.length === 0) return { fresh: [], revisable: [], missed: 0 };
    const newest = settled[settled.length - 1]!;
    const wm = this.watermark;
    const fresh = wm === undefined ? [newest] : settled.filter((ts) => ts > wm);
    // Only buckets whose counted values are still held: one whose values were let go (read when
    // older than revise_window, or counted before a restart from an earlier version) would be
    // counted again from zero, as after a clock stepped back brings old buckets into the window again.
    const revisable = wm === undefined ? [] : settled.filter((ts) => ts <= wm && this.counted.has(ts));
    // The gap ends where the answer's fresh buckets start: minutes after it are counted now.
    const gapEnd = Math.min(w.oldestReadable, w.newestSettled + b, fresh[0] ?? Infinity);
    if (wm === undefined || gapEnd <= wm + b) return { fresh, revisable, newest, missed: 0 };
    if (this.o.backfill) return { fresh, revisable, newest, missed: 0, gap: [wm + b, gapEnd] };
    return { fresh, revisable, newest, missed: (gapEnd - wm - b) / b };
  }

  /**
   * Counts bucket `ts`'s value for (labels, family): the first time all of it, later only its
   * growth since what was counted. Returns the decrease when the upstream revised it down: a
   * counter never goes down, so that is not subtracted (the caller reports it).
   */
  count(ts: number, labels: readonly string[], family: FamilyDef, value: number, guard: CardinalityGuard, now: number): number {
    const key = labelKey(labels);
    const prev = this.counted.get(ts)?.get(key)?.get(family) ?? 0;
    if (value < prev) return Number.isFinite(value) && value >= 0 ? prev - value : 0;
    // Growth only; a zero still creates the series, so a label set with no events reads 0.
    if (!this.add(labels, family, value - prev, guard, now)) return 0;
    let rows = this.counted.get(ts);
    if (!rows) {
      rows = new Map();
      this.counted.set(ts, rows);
    }
    let fams = rows.get(key);
    if (!fams) {
      fams = new Map();
      rows.set(key, fams);
    }
    fams.set(family, value);
    return 0;
  }

  /**
   * Adds `value` to the running total of (labels, family). A label set new to the family first asks
   * the guard for a place; refused, nothing is added. A counter never decreases and never becomes
   * non-finite: a negative or non-finite value, or one that would overflow the total, is refused.
   * Returns whether the value was added.
   */
  add(labels: readonly string[], family: FamilyDef, value: number, guard: CardinalityGuard, now: number): boolean {
    if (!(value >= 0) || !Number.isFinite(value)) return false;
    const key = labelKey(labels);
    let entry = this.entries.get(key);
    const had = entry?.totals.get(family);
    if (!Number.isFinite((had ?? 0) + value)) return false;
    if (had === undefined && !guard.admit(family.name, key, now)) return false;
    if (!entry) {
      entry = { labels, totals: new Map() };
      this.entries.set(key, entry);
    }
    entry.totals.set(family, (had ?? 0) + value);
    return true;
  }

  /**
   * Moves the watermark past the buckets just counted (keeping the buckets a gap skipped as a
   * hole), and forgets the values of buckets too old to be revised (an audited scope keeps their
   * sums for the audit).
   */
  commit(fresh: readonly number[], w?: LedgerWindow, gap?: readonly [number, number]): void {
    if (gap) this.addHole(gap[0], gap[1]);
    if (fresh.length > 0) {
      this.watermark = Math.max(this.watermark ?? -Infinity, fresh[fresh.length - 1]!);
      this.origin ??= fresh[0];
      // A bucket with no rows has nothing in `counted`: the audit still compares it (with 0).
      if (this.audited) for (const ts of fresh) if (!this.counted.has(ts) && !this.pendingAudit.has(ts)) this.pendingAudit.set(ts, new Map());
    }
    if (w) {
      const from = this.reviseFrom(w);
      for (const [ts, rows] of this.counted) {
        if (ts >= from) continue;
        // Read in this run when older than revise_window: final. One the real-time window let go
        // before such a read (runs failed for a while) is, with backfill, read again from the
        // historical API like a hole, its counted values kept so that only its growth is added.
        if (this.o.backfill && ts < w.oldestReadable) {
          this.addHole(ts, ts + this.o.bucketMs);
          continue;
        }
        this.counted.delete(ts);
        // Read in full now (a clock stepped back brought a bucket kept as a hole into the window
        // again): it is owed no more, and filling it later would count it again from zero.
        this.filled(ts, ts + this.o.bucketMs);
        if (!this.audited) continue;
        const sums = new Map<FamilyDef, number>();
        for (const fams of rows.values()) for (const [f, v] of fams) sums.set(f, (sums.get(f) ?? 0) + v);
        this.pendingAudit.set(ts, sums);
      }
    }
  }

  /** Records [from, to) as buckets still owed (merged with the holes already known). */
  addHole(from: number, to: number): void {
    if (to <= from) return;
    const all = [...this.holes, [from, to] as [number, number]].sort((x, y) => x[0] - y[0]);
    const merged: Array<[number, number]> = [];
    for (const h of all) {
      const last = merged[merged.length - 1];
      if (last && h[0] <= last[1]) last[1] = Math.max(last[1], h[1]);
      else merged.push([h[0], h[1]]);
    }
    this.holes = merged;
  }

  /** Removes [from, to) from the holes: those buckets have been counted. */
  filled(from: number, to: number): void {
    const out: Array<[number, number]> = [];
    for (const [a, z] of this.holes) {
      if (z <= from || a >= to) out.push([a, z]);
      else {
        if (a < from) out.push([a, from]);
        if (z > to) out.push([to, z]);
      }
    }
    this.holes = out;
  }

  /** Drops the parts of holes older than `horizon` (no upstream keeps them any more); returns how many buckets that was. */
  expire(horizon: number): number {
    let lost = 0;
    const out: Array<[number, number]> = [];
    for (const [a, z] of this.holes) {
      if (z <= horizon) lost += (z - a) / this.o.bucketMs;
      else if (a < horizon) {
        lost += (horizon - a) / this.o.bucketMs;
        out.push([horizon, z]);
      } else out.push([a, z]);
    }
    this.holes = out;
    return lost;
  }

  /**
   * Sets label `index` of every running total to `value` (an upstream object renamed: its series
   * move to the new label and keep counting from their totals, with no reset).
   */
  relabel(index: number, value: string): void {
    for (const [key, entry] of [...this.entries]) {
      if (entry.labels[index] === value) continue;
      const labels = entry.labels.map((l, i) => (i === index ? value : l));
      const moved = labelKey(labels);
      this.entries.delete(key);
      this.entries.set(moved, { labels, totals: entry.totals });
      for (const rows of this.counted.values()) {
        const v = rows.get(key);
        if (!v) continue;
        rows.delete(key);
        rows.set(moved, v);
      }
    }
  }
}

interface CarriedScope {
  key: string;
  watermark: number | null;
  counters: Array<{ labels: string[]; totals: Record<string, number> }>;
  /** Absent in files of earlier versions (then nothing up to the watermark is revised). */
  origin?: number | null;
  /** Per revisable bucket, what was counted: [bucket start, [[label key, {family: value}]]]. */
  counted?: Array<[number, Array<[string, Record<string, number>]>]>;
  /** Buckets still owed, to be filled from a historical upstream: [from, to). Absent in earlier files. */
  holes?: Array<[number, number]>;
}

/** A ledger of scopes by key. The collector declares its scopes; state of other scopes is dropped. */
export class SettledLedger {
  /** Version of the carried-state format. */
  static readonly STATE_VERSION = 1;
  private readonly scopes = new Map<string, LedgerScope>();
  /** Carried scopes not declared yet (a collector that learns its scopes at run time), by key. */
  private readonly pending = new Map<string, CarriedScope>();

  constructor(
    readonly options: LedgerOptions,
    /** Counter families this ledger may hold, by name, to restore carried totals. */
    private readonly families: readonly FamilyDef[],
  ) {}

  window(now: number): LedgerWindow {
    const b = this.options.bucketMs;
    const current = Math.floor(now / b) * b;
    return {
      current,
      newestSettled: Math.floor((now - b - this.options.settleMs) / b) * b,
      oldestReadable: current - (this.options.reach - 1) * b,
    };
  }

  /**
   * How far the newest watermark is ahead of the newest settled bucket, in ms (0 when none is).
   * A watermark ahead of the clock (a clock stepped back, state from a host whose clock was wrong)
   * freezes its counters until the clock passes it: counting earlier buckets again could count
   * them twice. The collector reports it, so the freeze is never silent.
   */
  aheadMs(w: LedgerWindow): number {
    let ahead = 0;
    for (const sc of this.scopes.values()) if (sc.watermark !== undefined) ahead = Math.max(ahead, sc.watermark - w.newestSettled);
    return ahead;
  }

  /** The scope with this identity (created on first use). A scope's key changes when what it asks for changes. */
  scope(key: string): LedgerScope {
    let s = this.scopes.get(key);
    if (!s) {
      s = new LedgerScope(this.options);
      this.scopes.set(key, s);
      const carried = this.pending.get(key);
      if (carried) {
        this.pending.delete(key);
        this.restore(s, carried);
      }
    }
    return s;
  }

  /**
   * Keeps only the scopes (declared or carried) whose key `keep` accepts: the series of the others
   * are withdrawn at the next emit (an upstream object deleted, a scope no longer asked for).
   */
  retain(keep: (key: string) => boolean): void {
    for (const key of [...this.scopes.keys()]) if (!keep(key)) this.scopes.delete(key);
    for (const key of [...this.pending.keys()]) if (!keep(key)) this.pending.delete(key);
  }

  /**
   * Adds every running total to the samples, whether or not its label set had data this run. A
   * total whose place the guard gave away (idle too long, then refused) is dropped.
   */
  emit(samples: SampleSet, guard: CardinalityGuard, now: number): void {
    for (const scope of this.scopes.values()) {
      for (const [key, entry] of scope.entries) {
        for (const [family, total] of entry.totals) {
          if (guard.admit(family.name, key, now)) samples.add(family, entry.labels, total);
          else entry.totals.delete(family);
        }
        if (entry.totals.size === 0) scope.entries.delete(key);
      }
    }
  }

  /** Plain JSON: per scope its watermark and totals, family names for keys. */
  carry(): { scopes: CarriedScope[] } {
    return {
      scopes: [
        ...[...this.scopes].map(([key, sc]): CarriedScope => ({
          key,
          watermark: sc.watermark ?? null,
          counters: [...sc.entries.values()].map((e) => ({ labels: [...e.labels], totals: Object.fromEntries([...e.totals].map(([f, v]) => [f.name, v])) })),
          // A scope restored from an earlier version revises nothing up to its floor, after a restart too.
          origin: sc.origin ?? (sc.reviseFloor === undefined ? null : sc.reviseFloor + this.options.bucketMs),
          counted: [...sc.counted].map(([ts, rows]) => [ts, [...rows].map(([k, fams]) => [k, Object.fromEntries([...fams].map(([f, v]) => [f.name, v]))])]),
          holes: sc.holes.map(([a, z]) => [a, z]),
        })),
        ...this.pending.values(),
      ],
    };
  }

  /**
   * Takes over carried state for the scopes declared so far (same key: same query; `aliases` maps
   * keys an earlier version wrote to today's), read defensively: it may come from a file written
   * by another version. Totals must be finite and non-negative, labels must fit the family. With
   * `keepUndeclared`, state of scopes not declared yet is kept until they are (or until `retain`
   * lets them go), for collectors that learn their scopes at run time; otherwise it is dropped.
   */
  adopt(state: unknown, aliases: ReadonlyMap<string, string> = new Map(), opts: { keepUndeclared?: boolean } = {}): void {
    const scopes = (state as { scopes?: unknown } | null)?.scopes;
    if (!Array.isArray(scopes)) return;
    for (const raw of scopes as Array<Record<string, unknown> | null>) {
      if (typeof raw?.key !== 'string') continue;
      const key = this.scopes.has(raw.key) ? raw.key : (aliases.get(raw.key) ?? raw.key);
      const carried = this.readCarried(key, raw);
      if (!carried) continue;
      const scope = this.scopes.get(key);
      if (scope) this.restore(scope, carried);
      else if (opts.keepUndeclared) this.pending.set(key, carried);
    }
  }

  /** A carried scope checked field by field; undefined when its watermark or counters are unreadable. */
  private readCarried(key: string, raw: Record<string, unknown>): CarriedScope | undefined {
    const wm = raw.watermark;
    if (!(wm === null || (typeof wm === 'number' && Number.isFinite(wm))) || !Array.isArray(raw.counters)) return undefined;
    const byName = new Map(this.families.map((f) => [f.name, f]));
    const counters: CarriedScope['counters'] = [];
    for (const c of raw.counters as Array<Record<string, unknown> | null>) {
      const labels = c?.labels;
      const totals = c?.totals;
      if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string') || !totals || typeof totals !== 'object') continue;
      const kept: Record<string, number> = {};
      for (const [name, v] of Object.entries(totals)) {
        const family = byName.get(name);
        if (family && family.labelNames.length === labels.length && typeof v === 'number' && Number.isFinite(v) && v >= 0) kept[name] = v;
      }
      if (Object.keys(kept).length > 0) counters.push({ labels: labels as string[], totals: kept });
    }
    const out: CarriedScope = { key, watermark: wm as number | null, counters };
    if (Array.isArray(raw.holes)) {
      out.holes = (raw.holes as unknown[]).filter((h): h is [number, number] => Array.isArray(h) && h.length === 2 && h.every((x) => typeof x === 'number' && Number.isFinite(x)) && h[0] < h[1]);
    }
    if (Array.isArray(raw.counted) && (raw.origin === null || (typeof raw.origin === 'number' && Number.isFinite(raw.origin)))) {
      out.origin = raw.origin;
      out.counted = [];
      for (const c of raw.counted as unknown[]) {
        if (!Array.isArray(c) || typeof c[0] !== 'number' || !Number.isFinite(c[0]) || !Array.isArray(c[1])) continue;
        const rows: Array<[string, Record<string, number>]> = [];
        for (const r of c[1] as unknown[]) {
          if (!Array.isArray(r) || typeof r[0] !== 'string' || !r[1] || typeof r[1] !== 'object') continue;
          const vals: Record<string, number> = {};
          for (const [name, v] of Object.entries(r[1] as Record<string, unknown>)) if (byName.has(name) && typeof v === 'number' && Number.isFinite(v) && v >= 0) vals[name] = v;
          rows.push([r[0], vals]);
        }
        out.counted.push([c[0], rows]);
      }
    }
    return out;
  }

  private byName(): Map<string, FamilyDef> {
    return new Map(this.families.map((f) => [f.name, f]));
  }

  private restore(scope: LedgerScope, carried: CarriedScope): void {
    const byName = this.byName();
    scope.watermark = carried.watermark ?? undefined;
    scope.entries.clear();
    for (const c of carried.counters) {
      const map = new Map<FamilyDef, number>();
      for (const [name, v] of Object.entries(c.totals)) map.set(byName.get(name)!, v);
      scope.entries.set(labelKey(c.labels), { labels: c.labels, totals: map });
    }
    scope.counted.clear();
    scope.holes = [];
    for (const [a, z] of carried.holes ?? []) scope.addHole(a, z);
    if (carried.counted) {
      scope.origin = carried.origin ?? undefined;
      scope.reviseFloor = undefined;
      for (const [ts, rows] of carried.counted) {
        scope.counted.set(ts, new Map(rows.map(([k, vals]) => [k, new Map(Object.entries(vals).map(([name, v]) => [byName.get(name)!, v]))])));
      }
    } else {
      // State of an earlier version: the buckets up to its watermark were counted, their values
      // not kept; revising them would count them again.
      scope.origin = undefined;
      scope.reviseFloor = scope.watermark;
    }
  }
}
