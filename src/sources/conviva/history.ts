import type { Counter, Gauge } from 'prom-client';
import type { RunContext } from '../../engine/collector.js';
import type { FamilyDef } from '../../engine/family.js';
import type { LedgerScope, LedgerWindow } from '../../engine/ledger.js';
import type { MetricSpec } from './catalogue.js';
import type { MergedBuckets } from './minutes.js';
import { readValue } from './schema.js';

// What the historical APIs add to the one-minute real-time collectors (Metrics V3 real time, DPI
// Flow): minutes the 15-minute real-time window no longer serves (an outage, a restart) are
// counted from the historical API instead of lost (catch-up), and what the counters added for a
// sample of scopes is compared with the historical record once it is final (audit).

const MINUTE = 60_000;
/** One historical request spans at most an hour (Conviva's rule for PT1M with group-by, and DPI Flow's). */
export const HISTORY_SPAN_MS = 3_600_000;

export interface HistoryConfig {
  catch_up: { enabled: boolean; requests_per_run: number };
  audit: { enabled: boolean; delay: number; interval: number };
}

/** Reads the one-minute buckets of [from, to) of one scope from a historical API. */
export type HistoryRead = (from: number, to: number, ctx: RunContext) => Promise<MergedBuckets>;

/** The self metrics the history step reports to. */
export interface HistoryMetrics {
  bucketsRecovered: Counter<'collector'>;
  bucketsMissed: Counter<'collector'>;
  bucketsOwed: Gauge<'collector'>;
  /** Downward revisions met when a minute counted from real time is read again from the historical API. */
  revisedDown: Counter<'collector' | 'family'>;
  auditCounted: Counter<'collector' | 'family'>;
  auditReference: Counter<'collector' | 'family'>;
  auditDivergence: Gauge<'collector' | 'family'>;
  auditMinutes: Counter<'collector'>;
}

/** One scope's historical reads of a run, applied after the fetch phase. */
export interface HistoryResult {
  fills: Array<{ from: number; to: number; merged: MergedBuckets }>;
  audit?: { from: number; to: number; merged: MergedBuckets };
  /** A read that failed (the ones before it are kept). */
  error?: unknown;
}

/**
 * A run's history counts, in minutes: recovered, lost and still owed as the most of any scope (as
 * buckets_missed_total, minutes of the collector: its scopes go through the same minutes), audited
 * summed over the audited scopes.
 */
export interface HistoryTotals {
  recovered: number;
  lost: number;
  audited: number;
  owed: number;
}

/** Adds one scope's counts to a run's. */
export function addTotals(into: HistoryTotals, t: HistoryTotals): void {
  into.recovered = Math.max(into.recovered, t.recovered);
  into.lost = Math.max(into.lost, t.lost);
  into.audited += t.audited;
  into.owed = Math.max(into.owed, t.owed);
}

export interface HistoryStep {
  /** Fetch phase: reads the holes (up to requests_per_run) and, when due, the audit batch of one scope. Never throws. */
  read(ls: LedgerScope, w: LedgerWindow, ctx: RunContext, read: HistoryRead): Promise<HistoryResult>;
  /** Apply phase: counts the filled minutes, compares the audited ones, drops holes past the horizon. Returns the counts. */
  apply(ls: LedgerScope, result: HistoryResult | undefined, labelsOf: (value: string | undefined) => string[], ctx: RunContext): HistoryTotals & { bad: number };
  /**
   * End of a run: reports the totals of every scope (metrics, one log line each). A failed
   * historical read is logged, not a failure of the run: the real-time data is whole, the holes wait
   * for the next run (conviva_exporter_buckets_owed shows them) and an audit is a sample.
   */
  report(ctx: RunContext, totals: HistoryTotals, results: ReadonlyArray<HistoryResult | undefined>): void;
}

/**
 * The history step of a collector over the settled-bucket ledger. `horizonMs`: how far back the
 * historical API keeps one-minute data (31 days for Metrics V3, 7 for DPI Flow).
 */
export function historyStep(opts: {
  collector: string;
  config: HistoryConfig;
  horizonMs: number;
  counterSpecs: readonly MetricSpec[];
  counterFamilies: readonly FamilyDef[];
  metrics: HistoryMetrics;
}): HistoryStep {
  const { collector, config, counterSpecs, counterFamilies, metrics } = opts;
  metrics.bucketsRecovered.inc({ collector }, 0);
  metrics.bucketsOwed.set({ collector }, 0);
  metrics.auditMinutes.inc({ collector }, 0);
  if (config.audit.enabled) {
    for (const f of counterFamilies) {
      metrics.auditCounted.inc({ collector, family: f.name }, 0);
      metrics.auditReference.inc({ collector, family: f.name }, 0);
    }
  }
  /** A scope's last audit read, so batches come every `interval`. */
  const auditedAt = new WeakMap<LedgerScope, number>();

  /**
   * The next span to read: from the oldest hole not read yet, at most an hour (several holes in one
   * read when they are close), ending at the last hole in it, and only minutes the real-time
   * window has let go.
   */
  function nextFill(ls: LedgerScope, w: LedgerWindow, after: number): [number, number] | undefined {
    const first = ls.holes.find(([, z]) => z > after);
    if (!first) return undefined;
    const from = Math.max(first[0], after);
    const limit = Math.min(from + HISTORY_SPAN_MS, w.oldestReadable);
    let to = from;
    for (const [a, z] of ls.holes) if (a < limit && z > from) to = Math.min(Math.max(to, z), limit);
    return to > from ? [from, to] : undefined;
  }

  /** The audit batch due, if any: pending minutes final for `delay`, once the oldest has waited an `interval` more. */
  function auditSpan(ls: LedgerScope, now: number): [number, number] | undefined {
    if (!config.audit.enabled || !ls.audited || ls.pendingAudit.size === 0) return undefined;
    const oldest = Math.min(...ls.pendingAudit.keys());
    const finalEnd = Math.floor((now - config.audit.delay) / MINUTE) * MINUTE;
    if (oldest + MINUTE > finalEnd) return undefined;
    const last = auditedAt.get(ls);
    if (oldest + MINUTE > finalEnd - config.audit.interval && last !== undefined && now - last < config.audit.interval) return undefined;
    return [oldest, Math.min(finalEnd, oldest + HISTORY_SPAN_MS)];
  }

  return {
    async read(ls, w, ctx, read) {
      const result: HistoryResult = { fills: [] };
      try {
        if (config.catch_up.enabled) {
          let after = -Infinity;
          for (let i = 0; i < config.catch_up.requests_per_run; i++) {
            const span = nextFill(ls, w, after);
            if (!span) break;
            result.fills.push({ from: span[0], to: span[1], merged: await read(span[0], span[1], ctx) });
            after = span[1];
          }
        }
        const span = auditSpan(ls, ctx.now);
        if (span) result.audit = { from: span[0], to: span[1], merged: await read(span[0], span[1], ctx) };
      } catch (e) {
        result.error = e;
      }
      return result;
    },

    apply(ls, result, labelsOf, ctx) {
      const out = { recovered: 0, lost: 0, audited: 0, owed: 0, bad: 0 };
      const bad = () => out.bad++;
      for (const fill of result?.fills ?? []) {
        // Count only the minutes still owed (a span may cover minutes between two holes): all of a
        // minute never counted, the growth of one counted from real time but let go by the
        // real-time window before its revisions were in. Either is final now.
        const owed = (ts: number) => ls.holes.some(([a, z]) => ts >= a && ts < z);
        for (let ts = fill.from; ts < fill.to; ts += MINUTE) {
          if (!owed(ts)) continue;
          if (!ls.counted.has(ts)) out.recovered++;
          for (const [value, row] of fill.merged.get(ts) ?? []) {
            const labels = labelsOf(value);
            counterSpecs.forEach((spec, j) => {
              const v = readValue(row, spec.key, 'count', bad);
              if (v === undefined) return;
              const d = ls.count(ts, labels, counterFamilies[j]!, v, ctx.guard, ctx.now);
              if (d > 0) metrics.revisedDown.inc({ collector, family: counterFamilies[j]!.name }, d);
            });
          }
          ls.counted.delete(ts);
        }
        ls.filled(fill.from, fill.to);
      }
      if (result?.audit) {
        const { from, to, merged } = result.audit;
        const counted = new Map<FamilyDef, number>();
        const reference = new Map<FamilyDef, number>();
        for (const [ts, sums] of [...ls.pendingAudit]) {
          if (ts < from || ts >= to) continue;
          ls.pendingAudit.delete(ts);
          out.audited++;
          for (const [f, v] of sums) counted.set(f, (counted.get(f) ?? 0) + v);
          for (const row of merged.get(ts)?.values() ?? []) {
            counterSpecs.forEach((spec, j) => {
              const v = readValue(row, spec.key, 'count', bad);
              if (v !== undefined) reference.set(counterFamilies[j]!, (reference.get(counterFamilies[j]!) ?? 0) + v);
            });
          }
        }
        for (const f of counterFamilies) {
          const c = counted.get(f);
          const r = reference.get(f);
          // A family neither side has (a flow model that does not list it) is not compared.
          if (c === undefined && r === undefined) continue;
          metrics.auditCounted.inc({ collector, family: f.name }, c ?? 0);
          metrics.auditReference.inc({ collector, family: f.name }, r ?? 0);
          metrics.auditDivergence.set({ collector, family: f.name }, r ? ((c ?? 0) - r) / r : c ? 1 : 0);
        }
        auditedAt.set(ls, ctx.now);
      }
      // A historical API that failed for long: pending audits are a sample, keep the newest day.
      if (ls.pendingAudit.size > 1440) for (const ts of [...ls.pendingAudit.keys()].sort((a, b) => a - b).slice(0, ls.pendingAudit.size - 1440)) ls.pendingAudit.delete(ts);
      if (config.catch_up.enabled) {
        const horizon = Math.floor((ctx.now - opts.horizonMs) / MINUTE) * MINUTE + MINUTE;
        out.lost = ls.expire(horizon);
        // Minutes counted from real time whose revisions no upstream serves any more: as they are.
        for (const ts of ls.counted.keys()) if (ts < horizon) ls.counted.delete(ts);
      } else out.lost = ls.expire(Infinity); // holes carried from a run with catch_up on
      out.owed = ls.holes.reduce((n, [a, z]) => n + (z - a) / MINUTE, 0);
      return out;
    },

    report(ctx, totals, results) {
      const failed = results.filter((r) => r?.error !== undefined);
      if (failed.length > 0) {
        const e = failed[0]!.error as { code?: string; message?: string };
        ctx.log.warn({ scopes: failed.length, code: e.code, err: e.message }, 'historical reads failed (catch-up and audit wait for the next run)');
      }
      if (totals.recovered > 0) {
        metrics.bucketsRecovered.inc({ collector }, totals.recovered);
        ctx.log.info({ buckets: totals.recovered }, 'counted minutes the real-time window no longer served from the historical API');
      }
      if (totals.audited > 0) metrics.auditMinutes.inc({ collector }, totals.audited);
      metrics.bucketsOwed.set({ collector }, totals.owed);
      if (totals.lost > 0) {
        metrics.bucketsMissed.inc({ collector }, totals.lost);
        ctx.log.warn({ buckets: totals.lost }, config.catch_up.enabled ? 'minutes owed to the counters are older than the historical API keeps: lost' : 'settled buckets fell out of the 15-minute real-time window before they could be counted (catch_up is off)');
      }
    },
  };
}
