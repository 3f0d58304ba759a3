import { createHash } from 'node:crypto';
import type { FamilyDef } from './family.js';
import type { CardinalityGuard } from './guard.js';
import { HistogramCounts } from './histogram.js';
import { labelKey, type SampleSet } from './samples.js';

/**
 * The event ledger: exactly-once counting over an upstream that lists events (sessions, CSV rows)
 * by time, with no pagination marker, and that may list an event some time after it happened.
 * Per scope (one account, say) it keeps a watermark (events before it are counted), the ids of the
 * events counted in the last `overlapMs` before it, and the running counters and histograms per
 * label set. A run plans a window from the watermark, less the overlap (late events), to now less
 * the lag; takes each event once by id; commits the part of the window it read in full. A re-read,
 * an overlap, a retry or a restart (the state carried) never counts an event twice, and a failed
 * window is read again by the next run while the upstream still lists it.
 */
export interface EventLedgerOptions {
  /** Events newer than now - lag may not be listed yet: windows end there. */
  lagMs: number;
  /** Each window starts this long before the watermark, for events listed late; ids de-duplicate. */
  overlapMs: number;
  /** How far back the upstream still lists events. */
  reachMs: number;
  /** A scope seen for the first time starts this long before now - lag. */
  initialMs: number;
}

export interface EventWindow {
  from: number;
  to: number;
  /** Milliseconds owed to the counters that the upstream no longer lists (lost). */
  lostMs: number;
}

interface Entry {
  labels: readonly string[];
  counters: Map<FamilyDef, number>;
  histograms: Map<FamilyDef, HistogramCounts>;
}

/** Ids are kept hashed: the state file needs them to de-duplicate, not to be read. */
function idKey(id: string): string {
  return createHash('sha256').update(id).digest('base64url').slice(0, 16);
}

/** One scope's watermark, recent ids and running totals. */
export class EventScope {
  watermark: number | undefined;
  /** Where counting began (the first window's start): the overlap never re-reads before it. */
  origin: number | undefined;
  /** Hashed id -> event time, for events at or after watermark - overlap. */
  readonly seen = new Map<string, number>();
  readonly entries = new Map<string, Entry>();

  constructor(private readonly o: EventLedgerOptions) {}

  /** The window a run should read at `now`. */
  plan(now: number): EventWindow {
    const to = now - this.o.lagMs;
    const oldest = now - this.o.reachMs;
    const wanted = this.watermark === undefined ? to - this.o.initialMs : Math.max(this.watermark - this.o.overlapMs, this.origin ?? -Infinity);
    const from = Math.max(wanted, oldest);
    // Only the part after the watermark was owed: the overlap is a re-read.
    const owedFrom = this.watermark ?? to - this.o.initialMs;
    const lostMs = Math.max(0, Math.min(oldest, to) - owedFrom);
    return { from: Math.min(from, to), to, lostMs };
  }

  /** True the first time an event id is taken (count it), false after (skip it). */
  take(id: string, time: number): boolean {
    const k = idKey(id);
    if (this.seen.has(k)) return false;
    // An event older than what the overlap re-reads was counted before, or was listed too late to be.
    if (this.watermark !== undefined && time < this.watermark - this.o.overlapMs) return false;
    // Before counting began: not owed (a first window starts somewhere; what ended before is not counted).
    if (this.origin !== undefined && time < this.origin) return false;
    this.seen.set(k, time);
    return true;
  }

  /** Adds n to a counter of a label set; refused (false) when the guard has no place or n is not a sane count. */
  count(labels: readonly string[], family: FamilyDef, n: number, guard: CardinalityGuard, now: number): boolean {
    if (!(n >= 0) || !Number.isFinite(n)) return false;
    const e = this.entry(labels, family, guard, now);
    if (!e) return false;
    const had = e.counters.get(family) ?? 0;
    if (!Number.isFinite(had + n)) return false;
    e.counters.set(family, had + n);
    return true;
  }

  /** Observes a value in a histogram of a label set; refused (false) when not finite or no place. */
  observe(labels: readonly string[], family: FamilyDef, value: number, guard: CardinalityGuard, now: number): boolean {
    if (!Number.isFinite(value)) return false;
    const e = this.entry(labels, family, guard, now);
    if (!e) return false;
    let h = e.histograms.get(family);
    if (!h) {
      h = HistogramCounts.of(family);
      e.histograms.set(family, h);
    }
    return h.observe(value);
  }

  /**
   * The window [from, to) is read in full: move the watermark, forget ids the overlap no longer
   * reaches. The first commit's `from` is where counting began.
   */
  commit(to: number, from?: number): void {
    if (this.origin === undefined && from !== undefined) this.origin = from;
    this.watermark = Math.max(this.watermark ?? -Infinity, to);
    const keepFrom = this.watermark - this.o.overlapMs;
    for (const [k, t] of this.seen) if (t < keepFrom) this.seen.delete(k);
  }

  private entry(labels: readonly string[], family: FamilyDef, guard: CardinalityGuard, now: number): Entry | undefined {
    const key = labelKey(labels);
    let e = this.entries.get(key);
    const known = e !== undefined && (e.counters.has(family) || e.histograms.has(family));
    if (!known && !guard.admit(family.name, key, now)) return undefined;
    if (!e) {
      e = { labels: [...labels], counters: new Map(), histograms: new Map() };
      this.entries.set(key, e);
    }
    return e;
  }
}

interface CarriedScope {
  key: string;
  watermark: number | null;
  origin: number | null;
  seen: Array<[string, number]>;
  entries: Array<{ labels: string[]; counters: Record<string, number>; histograms: Record<string, unknown> }>;
}

/** Event scopes by key, with the carried state of scopes not declared yet kept until they are. */
export class EventLedger {
  static readonly STATE_VERSION = 1;
  private readonly scopes = new Map<string, EventScope>();
  private readonly byName: Map<string, FamilyDef>;

  constructor(
    readonly options: EventLedgerOptions,
    /** Counter and histogram families this ledger may hold, to restore carried totals. */
    families: readonly FamilyDef[],
  ) {
    this.byName = new Map(families.map((f) => [f.name, f]));
  }

  scope(key: string): EventScope {
    let s = this.scopes.get(key);
    if (!s) {
      s = new EventScope(this.options);
      this.scopes.set(key, s);
    }
    return s;
  }

  /** Every running total, whether or not its label set had events this run. */
  emit(samples: SampleSet, guard: CardinalityGuard, now: number): void {
    for (const scope of this.scopes.values()) {
      for (const [key, e] of scope.entries) {
        for (const [family, v] of e.counters) {
          if (guard.admit(family.name, key, now)) samples.add(family, e.labels, v);
          else e.counters.delete(family);
        }
        for (const [family, h] of e.histograms) {
          if (guard.admit(family.name, key, now)) samples.addHistogram(family, e.labels, h);
          else e.histograms.delete(family);
        }
        if (e.counters.size === 0 && e.histograms.size === 0) scope.entries.delete(key);
      }
    }
  }

  carry(): { scopes: CarriedScope[] } {
    return {
      scopes: [...this.scopes].map(([key, s]) => ({
        key,
        watermark: s.watermark ?? null,
        origin: s.origin ?? null,
        seen: [...s.seen],
        entries: [...s.entries.values()].map((e) => ({
          labels: [...e.labels],
          counters: Object.fromEntries([...e.counters].map(([f, v]) => [f.name, v])),
          histograms: Object.fromEntries([...e.histograms].map(([f, h]) => [f.name, h.toJSON()])),
        })),
      })),
    };
  }

  /**
   * Takes over carried state for the scopes declared so far, read defensively (it may come from a
   * file another version wrote): a scope whose watermark or ids are unreadable starts afresh;
   * totals must be finite and non-negative, labels and buckets must fit their family.
   */
  adopt(state: unknown): void {
    const scopes = (state as { scopes?: unknown } | null)?.scopes;
    if (!Array.isArray(scopes)) return;
    for (const raw of scopes as Array<Record<string, unknown> | null>) {
      const scope = typeof raw?.key === 'string' ? this.scopes.get(raw.key) : undefined;
      if (!scope || !raw) continue;
      const wm = raw.watermark;
      if (!(wm === null || (typeof wm === 'number' && Number.isFinite(wm))) || !Array.isArray(raw.seen) || !Array.isArray(raw.entries)) continue;
      scope.watermark = wm ?? undefined;
      scope.origin = typeof raw.origin === 'number' && Number.isFinite(raw.origin) ? raw.origin : undefined;
      scope.seen.clear();
      for (const s of raw.seen as unknown[]) {
        if (Array.isArray(s) && typeof s[0] === 'string' && typeof s[1] === 'number' && Number.isFinite(s[1])) scope.seen.set(s[0], s[1]);
      }
      scope.entries.clear();
      for (const e of raw.entries as Array<Record<string, unknown> | null>) {
        const labels = e?.labels;
        if (!e || !Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) continue;
        const entry: Entry = { labels: labels as string[], counters: new Map(), histograms: new Map() };
        for (const [name, v] of Object.entries((e.counters ?? {}) as Record<string, unknown>)) {
          const f = this.byName.get(name);
          if (f?.type === 'counter' && f.labelNames.length === labels.length && typeof v === 'number' && Number.isFinite(v) && v >= 0) entry.counters.set(f, v);
        }
        for (const [name, v] of Object.entries((e.histograms ?? {}) as Record<string, unknown>)) {
          const f = this.byName.get(name);
          const h = f?.type === 'histogram' && f.labelNames.length === labels.length ? HistogramCounts.restore(f.buckets!, v) : undefined;
          if (f && h) entry.histograms.set(f, h);
        }
        if (entry.counters.size > 0 || entry.histograms.size > 0) scope.entries.set(labelKey(entry.labels), entry);
      }
    }
  }
}
