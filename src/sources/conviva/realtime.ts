import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import type { FamilyDef } from '../../engine/family.js';
import { labelKey } from '../../engine/samples.js';
import type { SelfMetrics } from '../../engine/self-metrics.js';
import type { Config } from '../../config/load.js';
import { metricSpec, realtimeFamilies, REALTIME_LABELS, type MetricSpec } from './catalogue.js';
import { REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT, type ConvivaClient } from './client.js';

/** The part of a ConvivaClient the collector uses; tests may hand in recorded answers. */
export type RealtimeSource = Pick<ConvivaClient, 'account' | 'realtime'>;
import { parseTimeSeries, readValue, type Bucket } from './schema.js';

type RealtimeConfig = NonNullable<Config['sources']['conviva']>['realtime'];
type FilterConfig = RealtimeConfig['filters'][number];

const MINUTE = 60_000;
/** Conviva's real-time window reaches 15 minutes back; older buckets can no longer be read. */
const WINDOW_MINUTES = 15;
/** Per request, Conviva's custom-selection takes at most 12 metrics. */
const MAX_METRICS_PER_REQUEST = 12;
/** Label values of the ungrouped total. */
export const TOTAL = 'total';

/** One (account, filter, group-by) combination: one request per minute (per 12 metrics). */
interface Scope {
  /** Identity across reloads: a scope whose account, filter definition or dimension changed starts afresh. */
  key: string;
  client: RealtimeSource;
  filter: FilterConfig;
  /** kebab path, undefined for the total */
  groupBy?: string;
  /** label value for `dimension` */
  dimension: string;
  /** Start of the newest bucket already added to the counters. */
  watermark?: number;
  /** label key -> counter family -> running total */
  counters: Map<string, { labels: string[]; totals: Map<FamilyDef, number> }>;
}

/** What the collector carries across reloads and restarts: plain JSON, family names for keys. */
interface CarriedState {
  version: 1;
  scopes: Array<{ key: string; watermark: number | null; counters: Array<{ labels: string[]; totals: Record<string, number> }> }>;
}

/** Reads carried state defensively: it may come from a file written by another version. */
function readCarriedState(state: unknown): CarriedState | undefined {
  if (!state || typeof state !== 'object' || (state as { version?: unknown }).version !== 1) return undefined;
  const scopes = (state as { scopes?: unknown }).scopes;
  if (!Array.isArray(scopes)) return undefined;
  const out: CarriedState = { version: 1, scopes: [] };
  for (const sc of scopes as Array<Record<string, unknown>>) {
    if (typeof sc?.key !== 'string' || !(sc.watermark === null || Number.isFinite(sc.watermark)) || !Array.isArray(sc.counters)) continue;
    const counters = (sc.counters as Array<Record<string, unknown>>).filter(
      (c) => Array.isArray(c?.labels) && c.labels.length === REALTIME_LABELS.length && c.labels.every((l) => typeof l === 'string') &&
        !!c.totals && typeof c.totals === 'object' && Object.values(c.totals).every((v) => Number.isFinite(v) && (v as number) >= 0),
    ) as Array<{ labels: string[]; totals: Record<string, number> }>;
    out.scopes.push({ key: sc.key, watermark: sc.watermark as number | null, counters });
  }
  return out;
}

export interface RealtimeDeps {
  clients: readonly RealtimeSource[];
  config: RealtimeConfig;
  metrics: SelfMetrics;
}

function endpointOf(scope: Scope): string {
  return scope.groupBy ? REALTIME_GROUP_BY_ENDPOINT : REALTIME_ENDPOINT;
}

/** "device-os" -> "device_os", "dimension-tag/appVersion" -> "tag_appVersion" (the API's filter key). */
export function dimensionLabel(groupBy: string): string {
  const tag = /^dimension-tag\/(.+)$/.exec(groupBy);
  return tag ? `tag_${tag[1]}` : groupBy.replace(/-/g, '_');
}

/**
 * Conviva Metrics V3 real-time: gauges of the newest settled minute, and counters that add each
 * settled minute exactly once per label set, catching up missed minutes from the 15-minute window.
 */
export function createRealtimeCollector(deps: RealtimeDeps): Collector {
  const { config, metrics } = deps;
  const specs: MetricSpec[] = config.metrics.map((m) => metricSpec(m)!);
  const chunks: string[][] = [];
  const paths = specs.map((s) => s.path);
  for (let i = 0; i < paths.length; i += MAX_METRICS_PER_REQUEST) chunks.push(paths.slice(i, i + MAX_METRICS_PER_REQUEST));
  const sortBy = paths.includes('attempts') ? 'attempts' : paths[0];
  const scopes: Scope[] = [];
  for (const client of deps.clients) {
    for (const filter of config.filters) {
      const key = (g?: string) => JSON.stringify([client.account.name, client.account.clientId, filter, g ?? null, config.settle_delay]);
      scopes.push({ key: key(), client, filter, dimension: TOTAL, counters: new Map() });
      for (const g of config.group_by) scopes.push({ key: key(g), client, filter, groupBy: g, dimension: dimensionLabel(g), counters: new Map() });
    }
  }
  const name = 'conviva_realtime';

  return {
    name,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families: realtimeFamilies(),
    maxSeriesPerFamily: config.max_series_per_metric,
    carryState(): CarriedState {
      return {
        version: 1,
        scopes: scopes.map((sc) => ({
          key: sc.key,
          watermark: sc.watermark ?? null,
          counters: [...sc.counters.values()].map((e) => ({ labels: e.labels, totals: Object.fromEntries([...e.totals].map(([f, v]) => [f.name, v])) })),
        })),
      };
    },
    adoptState(state: unknown): void {
      const carried = readCarriedState(state);
      if (!carried) return;
      const families = new Map(specs.flatMap((sp) => (sp.counter ? [[sp.counter.name, sp.counter] as const] : [])));
      const byKey = new Map(carried.scopes.map((sc) => [sc.key, sc]));
      for (const scope of scopes) {
        const old = byKey.get(scope.key);
        if (!old) continue;
        scope.watermark = old.watermark ?? undefined;
        for (const entry of old.counters) {
          const totals = new Map(Object.entries(entry.totals).flatMap(([name, v]) => (families.has(name) ? [[families.get(name)!, v] as const] : [])));
          if (totals.size > 0) scope.counters.set(labelKey(entry.labels), { labels: entry.labels, totals });
        }
      }
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      const newestSettled = Math.floor((ctx.now - MINUTE - config.settle_delay) / MINUTE) * MINUTE;
      const currentMinute = Math.floor(ctx.now / MINUTE) * MINUTE;
      const oldestReadable = currentMinute - (WINDOW_MINUTES - 1) * MINUTE;
      let skipped = 0;
      const onSkip = (what: string) => {
        skipped++;
        if (skipped === 1) ctx.log.warn({ what }, 'skipped unreadable upstream data');
      };
      // Scopes are independent: one that fails (a 413 on a wide dimension, a revoked account) is
      // left as it was, and the others go on. Within a scope it is all or nothing.
      const tasks = scopes.map(async (scope) => {
        // From the oldest minute still owed to the counters, and never later than the newest settled
        // minute, which the gauges show even when the counters owe nothing (a re-read).
        const owed = scope.watermark === undefined ? newestSettled : Math.max(scope.watermark + MINUTE, oldestReadable);
        const from = Math.min(owed, newestSettled);
        const minutes = Math.min(WINDOW_MINUTES, Math.max(1, (currentMinute - from) / MINUTE + 1));
        const endpoint = endpointOf(scope);
        const parts = await Promise.allSettled(
          chunks.map(async (chunk) => {
            const body = await scope.client.realtime({
              metrics: chunk,
              groupBy: scope.groupBy,
              minutes,
              filter: { filterId: scope.filter.filter_id, dimensions: scope.filter.dimensions, tags: scope.filter.tags },
              limit: scope.groupBy ? config.group_limit : undefined,
              sortBy: scope.groupBy ? sortBy : undefined,
              signal: ctx.signal,
              deadline: ctx.deadline,
            });
            return parseTimeSeries(body, endpoint, scope.groupBy !== undefined, (what) => {
              metrics.parseErrors.inc({ api: 'conviva_realtime', endpoint });
              onSkip(what);
            });
          }),
        );
        // Every request of the run has settled before the run ends, so none overlaps the next run.
        const failed = parts.find((p) => p.status === 'rejected');
        if (failed) throw failed.reason;
        return parts.map((p) => (p as PromiseFulfilledResult<Bucket[]>).value);
      });
      const outcomes = await Promise.allSettled(tasks);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const errors = outcomes.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      if (errors.length === outcomes.length) throw errors[0];

      // Apply every scope whose requests all succeeded.
      let newest: number | undefined;
      // Non-numeric values, per endpoint. A count in the gauges' bucket is read twice (counter and
      // gauge); only the gauge pass reports it, so each bad value counts once.
      const badValues = new Map<string, number>();
      const noop = () => {};
      let missed = 0;
      scopes.forEach((scope, i) => {
        const result = outcomes[i]!;
        if (result.status === 'rejected') return;
        const merged = mergeChunks(result.value);
        const settled = [...merged.keys()].filter((ts) => ts <= newestSettled).sort((a, b) => a - b);
        if (settled.length === 0) return;
        const gaugeTs = settled[settled.length - 1]!;
        newest = newest === undefined ? gaugeTs : Math.max(newest, gaugeTs);
        const fresh = scope.watermark === undefined ? [gaugeTs] : settled.filter((ts) => ts > scope.watermark!);
        if (scope.watermark !== undefined && oldestReadable > scope.watermark + MINUTE) {
          missed = Math.max(missed, (Math.min(oldestReadable, newestSettled + MINUTE) - scope.watermark - MINUTE) / MINUTE);
        }
        const endpoint = endpointOf(scope);
        const bad = () => badValues.set(endpoint, (badValues.get(endpoint) ?? 0) + 1);
        const labelsOf = (value: string | undefined) => [scope.client.account.name, scope.filter.name, scope.dimension, value ?? TOTAL];
        for (const ts of fresh) {
          for (const [value, rowMetrics] of merged.get(ts)!) {
            const labels = labelsOf(value);
            const key = labelKey(labels);
            for (const spec of specs) {
              if (!spec.counter) continue;
              const count = readValue(rowMetrics, spec.key, 'count', ts === gaugeTs ? noop : bad);
              if (count === undefined) continue;
              let entry = scope.counters.get(key);
              if (!entry) {
                if (!ctx.guard.admit(spec.counter.name, key, ctx.now)) continue;
                entry = { labels, totals: new Map() };
                scope.counters.set(key, entry);
              }
              entry.totals.set(spec.counter, (entry.totals.get(spec.counter) ?? 0) + count);
            }
          }
        }
        if (fresh.length > 0) scope.watermark = Math.max(scope.watermark ?? -Infinity, fresh[fresh.length - 1]!);
        for (const [value, rowMetrics] of merged.get(gaugeTs)!) {
          const labels = labelsOf(value);
          const key = labelKey(labels);
          for (const spec of specs) {
            for (const g of spec.gauges) {
              const v = readValue(rowMetrics, spec.key, g.field, bad);
              if (v === undefined || !ctx.guard.admit(g.family.name, key, ctx.now)) continue;
              // toPrecision(15) drops float noise from the division (98.53 / 100 is 0.9853000000000001).
              ctx.samples.add(g.family, labels, g.divisor === 1 ? v : Number((v / g.divisor).toPrecision(15)));
            }
          }
        }
      });
      // Counters are served every run, whether or not their label set had data this minute.
      for (const scope of scopes) {
        for (const [key, entry] of scope.counters) {
          for (const [family, total] of entry.totals) {
            if (ctx.guard.admit(family.name, key, ctx.now)) ctx.samples.add(family, entry.labels, total);
            else entry.totals.delete(family);
          }
          if (entry.totals.size === 0) scope.counters.delete(key);
        }
      }
      let badTotal = 0;
      for (const [endpoint, n] of badValues) {
        metrics.parseErrors.inc({ api: 'conviva_realtime', endpoint }, n);
        badTotal += n;
      }
      if (badTotal > 0) ctx.log.warn({ values: badTotal }, 'skipped non-numeric upstream values');
      if (missed > 0) {
        metrics.bucketsMissed.inc({ collector: name }, missed);
        ctx.log.warn({ buckets: missed }, 'settled buckets fell out of the 15-minute real-time window before they could be counted');
      }
      return { ...(newest === undefined ? {} : { newestDataTimestamp: newest }), ...(errors.length > 0 ? { errors } : {}) };
    },
  };
}

/** Merges the per-chunk answers of one scope: ts -> row value -> metrics of all chunks. */
function mergeChunks(chunks: Bucket[][]): Map<number, Map<string | undefined, Record<string, unknown>>> {
  const out = new Map<number, Map<string | undefined, Record<string, unknown>>>();
  for (const buckets of chunks) {
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
