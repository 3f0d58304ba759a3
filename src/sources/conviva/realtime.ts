import { createHash } from 'node:crypto';
import type { Counter, Gauge } from 'prom-client';
import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import { SettledLedger, type LedgerWindow } from '../../engine/ledger.js';
import { UpstreamError } from '../../http/errors.js';
import type { EngineMetrics } from '../../engine/self-metrics.js';
import { metricSpec, type MetricSpec } from './catalogue.js';
import { HISTORICAL_API, HISTORICAL_ENDPOINT, HISTORICAL_GROUP_BY_ENDPOINT, REALTIME_API, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT, type ConvivaClient, type ConvivaHistoryClient } from './client.js';
import { historyStep, type HistoryConfig, type HistoryMetrics, type HistoryResult } from './history.js';
import { MAX_METRICS_PER_REQUEST, type RealtimeConfig } from './config.js';
import { aheadReporter, applyScope, keyedGauges, mergeBuckets, reduceScope, skipLogger, type ScopeResult } from './minutes.js';
import { parseTimeSeries, type Bucket } from './schema.js';

/** The part of a ConvivaClient the collector uses; tests may hand in recorded answers. */
export type RealtimeSource = Pick<ConvivaClient, 'account' | 'realtime'>;

type FilterConfig = RealtimeConfig['filters'][number];

const MINUTE = 60_000;
/** Conviva's real-time window reaches 15 minutes back; older buckets can no longer be read. */
const WINDOW_MINUTES = 15;
/** Metrics V3 serves one-minute buckets for the last 31 days. */
const HISTORY_MS = 31 * 24 * 3_600_000;
/** Label values of the ungrouped total. */
export const TOTAL = 'total';
export const REALTIME_COLLECTOR = 'conviva_realtime';

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
}

export interface RealtimeDeps {
  clients: readonly RealtimeSource[];
  config: RealtimeConfig;
  engine: Pick<EngineMetrics, 'parseErrors' | 'watermarkAhead' | 'revisedDown'>;
  bucketsMissed: Counter<'collector'>;
  /** 1 per (account, metric) the collector leaves out: the account cannot read it in real time. */
  metricUnavailable?: Gauge<'collector' | 'account' | 'metric'>;
  /** The historical API per account (catch-up and audit); without it, minutes the real-time window let go are lost. */
  history?: { clients: ReadonlyArray<Pick<ConvivaHistoryClient, 'account' | 'metrics'>>; config: HistoryConfig; metrics: HistoryMetrics };
}

/**
 * The requested metrics a 400's body names, kebab (`video-restart-time`) or snake
 * (`video_restart_time`): Conviva refuses a metric the account cannot read in real time so.
 */
function refusedMetrics(err: unknown, asked: readonly string[]): string[] {
  if (!(err instanceof UpstreamError) || err.code !== 'UPSTREAM_STATUS' || err.status !== 400 || !err.detail) return [];
  const text = err.detail;
  // Whole names only: `plays` is not named by `concurrent-plays`.
  const names = (m: string) => new RegExp(`(?<![\\w-])(?:${m}|${m.replace(/-/g, '_')})(?![\\w-])`).test(text);
  return asked.filter(names);
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
 * settled minute exactly once per label set (the settled-bucket ledger), catching up missed
 * minutes from the 15-minute window.
 */
export function createRealtimeCollector(deps: RealtimeDeps): Collector {
  const { config, engine } = deps;
  const specs: MetricSpec[] = config.metrics.map((m) => metricSpec(m)!);
  const counterSpecs = specs.filter((s) => s.counter !== undefined);
  const counterFamilies = counterSpecs.map((s) => s.counter!);
  const gaugeSpecs = keyedGauges(specs);
  const chunks: string[][] = [];
  const paths = specs.map((s) => s.path);
  for (let i = 0; i < paths.length; i += MAX_METRICS_PER_REQUEST) chunks.push(paths.slice(i, i + MAX_METRICS_PER_REQUEST));
  // Conviva ranks group-by rows by a metric the same request asks for: attempts when the chunk has it.
  const sortByOf = (chunk: readonly string[]) => (chunk.includes('attempts') ? 'attempts' : chunk[0]);
  const ledger = new SettledLedger({ bucketMs: MINUTE, reach: WINDOW_MINUTES, settleMs: config.settle_delay, reviseBuckets: config.revise_window / MINUTE, backfill: deps.history?.config.catch_up.enabled }, counterFamilies);
  const history = deps.history && historyStep({ collector: REALTIME_COLLECTOR, config: deps.history.config, horizonMs: HISTORY_MS, counterSpecs, counterFamilies, metrics: deps.history.metrics });
  const historyClients = new Map(deps.history?.clients.map((c) => [c.account.name, c]));
  for (const f of counterFamilies) engine.revisedDown.inc({ collector: REALTIME_COLLECTOR, family: f.name }, 0);
  const scopes: Scope[] = [];
  const legacyKeys = new Map<string, string>();
  for (const client of deps.clients) {
    for (const filter of config.filters) {
      // The key goes into the state file: it is a hash, so the client id is not written there.
      // Keys of earlier versions (the same text, unhashed) are still recognised on adopt.
      const key = (g?: string) => {
        const text = JSON.stringify([client.account.name, client.account.clientId, filter, g ?? null, config.settle_delay]);
        const hashed = createHash('sha256').update(text).digest('hex');
        legacyKeys.set(text, hashed);
        return hashed;
      };
      scopes.push({ key: key(), client, filter, dimension: TOTAL });
      for (const g of config.group_by) scopes.push({ key: key(g), client, filter, groupBy: g, dimension: dimensionLabel(g) });
    }
  }
  // The audit samples the ungrouped total of each account and filter.
  for (const sc of scopes) ledger.scope(sc.key).audited = deps.history?.config.audit.enabled === true && sc.groupBy === undefined;
  const reportAhead = aheadReporter(ledger, engine.watermarkAhead, REALTIME_COLLECTOR);
  const labelsOf = (scope: Scope, value: string | undefined) => [scope.client.account.name, scope.filter.name, scope.dimension, value ?? TOTAL];
  // Per account, the metrics it cannot read in real time, left out of its requests for the life of
  // this collector: a reload (a new collector) tries each once more.
  const unavailable = new Map<string, Set<string>>();

  /** What a request of `scope` for `metrics` selects (real time and historical alike). */
  function selection(scope: Scope, metrics: string[], ctx: RunContext) {
    return {
      metrics,
      groupBy: scope.groupBy,
      filter: { filterId: scope.filter.filter_id, dimensions: scope.filter.dimensions, tags: scope.filter.tags },
      limit: scope.groupBy ? config.group_limit : undefined,
      sortBy: scope.groupBy ? sortByOf(metrics) : undefined,
      signal: ctx.signal,
      deadline: ctx.deadline,
    };
  }

  /**
   * The scope's holes and audit batch from the historical API, with the same selection as its
   * real-time requests (the account's unavailable metrics left out too). Never throws.
   */
  async function readHistory(scope: Scope, w: LedgerWindow, ctx: RunContext, limits: { signal: AbortSignal; deadline: number }, onSkip: (what: string) => void): Promise<HistoryResult | undefined> {
    const client = historyClients.get(scope.client.account.name);
    if (!history || !client) return undefined;
    const endpoint = scope.groupBy ? HISTORICAL_GROUP_BY_ENDPOINT : HISTORICAL_ENDPOINT;
    return history.read(ledger.scope(scope.key), w, ctx, limits, async (from, to, { signal, deadline }) => {
      const dropped = unavailable.get(scope.client.account.name);
      // Every request settles before the read does, so none outlives the run.
      const parts = await Promise.allSettled(
        chunks.map((chunk) => chunk.filter((m) => !dropped?.has(m))).filter((m) => m.length > 0).map(async (metrics) => {
          const body = await client.metrics({ ...selection(scope, metrics, ctx), signal, deadline, from, to });
          return parseTimeSeries(body, endpoint, scope.groupBy !== undefined, (what) => {
            engine.parseErrors.inc({ api: HISTORICAL_API, endpoint });
            onSkip(what);
          }, HISTORICAL_API);
        }),
      );
      const failed = parts.find((p) => p.status === 'rejected');
      if (failed) throw failed.reason;
      return mergeBuckets(parts.map((p) => (p as PromiseFulfilledResult<Bucket[]>).value));
    });
  }

  /** One chunk's answer, leaving out the account's unavailable metrics; undefined when none is left. */
  async function fetchChunk(scope: Scope, chunk: readonly string[], minutes: number, ctx: RunContext): Promise<unknown> {
    const account = scope.client.account.name;
    // Each retry follows a 400 naming a metric of the request, which is then left out: at most one per metric.
    for (;;) {
      const dropped = unavailable.get(account);
      const metrics = chunk.filter((m) => !dropped?.has(m));
      if (metrics.length === 0) return undefined;
      try {
        return await scope.client.realtime({ ...selection(scope, metrics, ctx), minutes });
      } catch (err) {
        const refused = refusedMetrics(err, metrics);
        if (refused.length === 0) throw err;
        const set = unavailable.get(account) ?? new Set<string>();
        unavailable.set(account, set);
        for (const metric of refused) {
          // Scopes of the account fetch at once: the first to learn of it warns.
          if (set.has(metric)) continue;
          set.add(metric);
          deps.metricUnavailable?.set({ collector: REALTIME_COLLECTOR, account, metric }, 1);
          ctx.log.warn({ account, metric, status: 400, detail: (err as UpstreamError).detail }, 'metric not available in real time for this account: left out of its requests');
        }
      }
    }
  }

  /**
   * Fetches every chunk of one scope (all or nothing) and reduces the answer at once to the numbers
   * the apply step needs: the counts of the fresh buckets and the gauge values of the newest one.
   * The parsed JSON is dropped as soon as a scope's answer is in, so a run holds the answers of the
   * requests in flight, not of all of them.
   */
  async function fetchScope(scope: Scope, w: LedgerWindow, ctx: RunContext, onSkip: (what: string) => void): Promise<ScopeResult> {
    const ls = ledger.scope(scope.key);
    const { buckets } = ls.plan(w);
    const endpoint = endpointOf(scope);
    const parts = await Promise.allSettled(
      chunks.map(async (chunk) => {
        const body = await fetchChunk(scope, chunk, buckets, ctx);
        if (body === undefined) return [];
        return parseTimeSeries(body, endpoint, scope.groupBy !== undefined, (what) => {
          engine.parseErrors.inc({ api: REALTIME_API, endpoint });
          onSkip(what);
        });
      }),
    );
    // Every request of the run has settled before the run ends, so none overlaps the next run.
    const failed = parts.find((p) => p.status === 'rejected');
    if (failed) throw failed.reason;
    const merged = mergeBuckets(parts.map((p) => (p as PromiseFulfilledResult<Bucket[]>).value));
    return reduceScope(merged, ls.settle(merged.keys(), w), (value) => labelsOf(scope, value), counterSpecs, gaugeSpecs);
  }

  return {
    name: REALTIME_COLLECTOR,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families: specs.flatMap((s) => [...s.gauges.map((g) => g.family), ...(s.counter ? [s.counter] : [])]),
    maxSeriesPerFamily: config.max_series_per_metric,
    state: {
      version: SettledLedger.STATE_VERSION,
      carry: () => ledger.carry(),
      adopt: (state) => ledger.adopt(state, legacyKeys),
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      // Plan: which minutes each scope still owes, from the ledger.
      const w = ledger.window(ctx.now);
      reportAhead(w, ctx);
      const onSkip = skipLogger(ctx);
      // Fetch. Scopes are independent: one that fails (a 413 on a wide dimension, a revoked
      // account) is left as it was, and the others go on. Within a scope it is all or nothing.
      const limits = history?.limits(ctx);
      const [outcomes, histories] = await Promise.all([
        Promise.allSettled(scopes.map((scope) => fetchScope(scope, w, ctx, onSkip))),
        Promise.all(scopes.map((scope) => (limits ? readHistory(scope, w, ctx, limits, onSkip) : undefined))),
      ]).finally(() => limits?.done());
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const errors = outcomes.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));

      // Apply every scope whose requests all succeeded, in scope order: count the fresh minutes,
      // show the newest.
      let newest: number | undefined;
      // Non-numeric values, per endpoint.
      const badValues = new Map<string, number>();
      let missed = 0;
      scopes.forEach((scope, i) => {
        const result = outcomes[i]!;
        if (result.status === 'rejected') return;
        const { settlement, bad } = result.value;
        const endpoint = endpointOf(scope);
        if (bad > 0) badValues.set(endpoint, (badValues.get(endpoint) ?? 0) + bad);
        if (settlement.newest === undefined) return;
        newest = newest === undefined ? settlement.newest : Math.max(newest, settlement.newest);
        missed = Math.max(missed, settlement.missed);
        for (const [family, d] of applyScope(ledger.scope(scope.key), result.value, counterFamilies, gaugeSpecs, ctx, w)) engine.revisedDown.inc({ collector: REALTIME_COLLECTOR, family: family.name }, d);
      });
      // The historical reads of every scope, whether or not its real-time read succeeded (also when none did).
      const historyBad = history?.applyRun(scopes.map((scope, i) => ({ ls: ledger.scope(scope.key), result: histories[i], labelsOf: (value: string | undefined) => labelsOf(scope, value) })), ctx) ?? 0;
      if (historyBad > 0) engine.parseErrors.inc({ api: HISTORICAL_API, endpoint: HISTORICAL_ENDPOINT }, historyBad);
      if (errors.length === outcomes.length) throw errors[0];
      // Emit: counters are served every run, whether or not their label set had data this minute.
      ledger.emit(ctx.samples, ctx.guard, ctx.now);
      let badTotal = 0;
      for (const [endpoint, n] of badValues) {
        engine.parseErrors.inc({ api: REALTIME_API, endpoint }, n);
        badTotal += n;
      }
      if (badTotal > 0) ctx.log.warn({ values: badTotal }, 'skipped upstream values that are not non-negative numbers');
      if (missed > 0) {
        deps.bucketsMissed.inc({ collector: REALTIME_COLLECTOR }, missed);
        ctx.log.warn({ buckets: missed }, 'settled buckets fell out of the 15-minute real-time window before they could be counted');
      }
      return { ...(newest === undefined ? {} : { newestDataTimestamp: newest }), ...(errors.length > 0 ? { errors } : {}) };
    },
  };
}
