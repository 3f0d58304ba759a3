import { setMaxListeners } from 'node:events';
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

/**
 * Reads the one-minute buckets of [from, to) of one scope from a historical API, with the signal
 * and deadline of the history step (earlier than the run's: history never costs a run its
 * real-time data).
 */
export type HistoryRead = (from: number, to: number, limits: { signal: AbortSignal; deadline: number }) => Promise<MergedBuckets>;

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
  /**
   * The signal and deadline of a run's historical reads: the run's, but aborted at 60% of the time
   * left, so that reads waiting on the historical budget (shared with sessions) or slow answers end
   * before the run's deadline would discard its real-time data. Call `done()` when the fetch phase ends.
   */
  limits(ctx: RunContext): { signal: AbortSignal; deadline: number; done: () => void };
  /** Fetch phase: reads the holes (up to requests_per_run) and, when due, the audit batch of one scope. Never throws. */
  read(ls: LedgerScope, w: LedgerWindow, ctx: RunContext, limits: { signal: AbortSignal; deadline: number }, read: HistoryRead): Promise<HistoryResult>;
  /** Apply phase: counts the filled minutes, compares the audited ones, drops holes past the horizon. Returns the counts. */
  apply(ls: LedgerScope, result: HistoryResult | undefined, labelsOf: (value: string | undefined) => string[], ctx: RunContext): HistoryTotals & { bad: number };
  /**
   * Apply phase of a run, every scope in turn, then `report`; returns the unreadable values met
   * (the caller counts them as parse errors). Runs before the real-time answers are applied, and
   * whether or not any succeeded: the historical reads are kept even when real time failed.
   */
  applyRun(items: ReadonlyArray<{ ls: LedgerScope; result: HistoryResult | undefined; labelsOf: (value: string | undefined) => string[] }>, ctx: RunContext): number;
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
  /** A scope's span of one read, halved after a 413 (a wide group-by answer over an hour is too large). */
  const spans = new WeakMap<LedgerScope, number>();
  /**
   * The historical API is final for a minute this long after it ended (Conviva: data may arrive
   * 5-10 minutes late; the historical API is unreliable for the newest ones): catch-up reads only
   * older minutes, and the audit compares only those.
   */
  const finalAfter = Math.max(config.audit.delay, 15 * MINUTE);
  /** The oldest minute the historical API still serves at `now`, with a minute to spare. */
  const horizonOf = (now: number) => Math.floor((now - opts.horizonMs) / MINUTE) * MINUTE + 2 * MINUTE;
  /** The audit batch of the run: per family, counted and reference summed over the scopes. */
  const batch = new Map<FamilyDef, { counted?: number; reference?: number }>();

  /**
   * The next span to read: from the oldest hole not read yet, at most an hour (several holes in one
   * read when they are close), ending at the last hole in it, and only minutes the real-time
   * window has let go.
   */
  function nextFill(ls: LedgerScope, w: LedgerWindow, now: number, after: number): [number, number] | undefined {
    const first = ls.holes.find(([, z]) => z > after);
    if (!first) return undefined;
    const from = Math.max(first[0], after, horizonOf(now));
    const limit = Math.min(from + (spans.get(ls) ?? HISTORY_SPAN_MS), w.oldestReadable, Math.floor((now - finalAfter) / MINUTE) * MINUTE);
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
    limits(ctx) {
      const controller = new AbortController();
      setMaxListeners(0, controller.signal); // every historical request of the run listens to it
      const onAbort = () => controller.abort(ctx.signal.reason);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      const ms = Math.max(0, (ctx.deadline - ctx.now) * 0.6);
      const timer = setTimeout(() => controller.abort(new Error('historical reads ran out of their share of the run')), ms);
      timer.unref();
      return {
        signal: controller.signal,
        deadline: ctx.now + ms,
        done: () => {
          clearTimeout(timer);
          ctx.signal.removeEventListener('abort', onAbort);
        },
      };
    },

    async read(ls, w, ctx, limits, read) {
      const result: HistoryResult = { fills: [] };
      try {
        if (config.catch_up.enabled) {
          let after = -Infinity;
          for (let i = 0; i < config.catch_up.requests_per_run; i++) {
            const span = nextFill(ls, w, ctx.now, after);
            if (!span) break;
            let merged: MergedBuckets;
            try {
              merged = await read(span[0], span[1], limits);
            } catch (e) {
              // An answer too large: the next read of this scope spans half as long (down to a minute).
              const status = (e as { status?: number }).status;
              const span0 = spans.get(ls) ?? HISTORY_SPAN_MS;
              if (status === 413 && span0 > MINUTE) spans.set(ls, Math.max(MINUTE, Math.floor(span0 / 2 / MINUTE) * MINUTE));
              throw e;
            }
            result.fills.push({ from: span[0], to: span[1], merged });
            after = span[1];
          }
        }
        const span = auditSpan(ls, ctx.now);
        if (span) result.audit = { from: span[0], to: span[1], merged: await read(span[0], span[1], limits) };
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
          // Never past the watermark: minutes after it are real time's to count.
          if (!owed(ts) || ts > (ls.watermark ?? -Infinity)) continue;
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
        ls.filled(fill.from, Math.min(fill.to, (ls.watermark ?? -Infinity) + MINUTE));
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
          const b = batch.get(f) ?? {};
          b.counted = (b.counted ?? 0) + (c ?? 0);
          b.reference = (b.reference ?? 0) + (r ?? 0);
          batch.set(f, b);
        }
        auditedAt.set(ls, ctx.now);
      }
      // A historical API that failed for long: pending audits are a sample, keep the newest day.
      if (ls.pendingAudit.size > 1440) for (const ts of [...ls.pendingAudit.keys()].sort((a, b) => a - b).slice(0, ls.pendingAudit.size - 1440)) ls.pendingAudit.delete(ts);
      if (config.catch_up.enabled) {
        const horizon = horizonOf(ctx.now);
        out.lost = ls.expire(horizon);
        // Minutes counted from real time whose revisions no upstream serves any more: as they are.
        for (const ts of ls.counted.keys()) if (ts < horizon) ls.counted.delete(ts);
      } else out.lost = ls.expire(Infinity); // holes carried from a run with catch_up on
      out.owed = ls.holes.reduce((n, [a, z]) => n + (z - a) / MINUTE, 0);
      return out;
    },

    applyRun(items, ctx) {
      const totals: HistoryTotals = { recovered: 0, lost: 0, audited: 0, owed: 0 };
      let bad = 0;
      for (const it of items) {
        const r = this.apply(it.ls, it.result, it.labelsOf, ctx);
        addTotals(totals, r);
        bad += r.bad;
      }
      this.report(ctx, totals, items.map((it) => it.result));
      return bad;
    },

    report(ctx, totals, results) {
      const failed = results.filter((r) => r?.error !== undefined);
      if (failed.length > 0) ctx.log.warn({ scopes: failed.length, err: failed[0]!.error }, 'historical reads failed (catch-up and audit wait for the next run)');
      // The run's audit batch, summed over its scopes: the gauge is the collector's, not one scope's.
      for (const [f, b] of batch) {
        metrics.auditCounted.inc({ collector, family: f.name }, b.counted ?? 0);
        metrics.auditReference.inc({ collector, family: f.name }, b.reference ?? 0);
        metrics.auditDivergence.set({ collector, family: f.name }, b.reference ? ((b.counted ?? 0) - b.reference) / b.reference : b.counted ? 1 : 0);
      }
      batch.clear();
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
