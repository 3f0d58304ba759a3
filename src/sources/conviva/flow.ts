import { createHash } from 'node:crypto';
import type { Counter } from 'prom-client';
import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import { SettledLedger, type LedgerWindow } from '../../engine/ledger.js';
import type { EngineMetrics } from '../../engine/self-metrics.js';
import { FLOW_METRICS, FLOW_MODEL_INFO } from './catalogue.js';
import { FLOW_API, FLOW_ENDPOINT, FLOW_GROUP_BY_ENDPOINT, FLOW_HISTORICAL_ENDPOINT, FLOW_HISTORICAL_GROUP_BY_ENDPOINT, FLOW_MODELS_ENDPOINT, HISTORICAL_API, type ConvivaFlowClient, type ConvivaHistoryClient } from './client.js';
import type { FlowsConfig } from './config.js';
import { historyStep, type HistoryConfig, type HistoryMetrics, type HistoryResult } from './history.js';
import { aheadReporter, applyScope, keyedGauges, mergeBuckets, reduceScope, skipLogger, type ScopeResult } from './minutes.js';
import { parseFlowModels, parseTimeSeries, type Bucket, type FlowModelInfo } from './schema.js';

// Conviva DPI Flow: the flow models of each account (listed at start and on their own schedule),
// and every minute each model's real-time metrics, as gauges of the newest settled minute and
// counters that add each settled minute once (the same ledger as Metrics V3 real time).

export const FLOW_MODELS_COLLECTOR = 'conviva_flow_models';
export const FLOW_COLLECTOR = 'conviva_flow';

const MINUTE = 60_000;
/** DPI Flow real-time data reaches 15 minutes back. */
const WINDOW_MINUTES = 15;
/** DPI Flow historical data covers the last 7 days. */
const HISTORY_MS = 7 * 24 * 3_600_000;
const TOTAL = 'total';

/** The part of a ConvivaFlowClient the collectors use. */
export type FlowSource = Pick<ConvivaFlowClient, 'account' | 'models' | 'realtime'>;

export interface FlowDeps {
  clients: readonly FlowSource[];
  config: FlowsConfig;
  engine: Pick<EngineMetrics, 'parseErrors' | 'watermarkAhead' | 'revisedDown'>;
  bucketsMissed: Counter<'collector'>;
  /** Requests a minute the account's real-time budget allows, and how many the real-time collector takes of it. */
  budget: { perMinute: number; realtimePerMinute: number };
  /** The historical API per account (catch-up and audit); without it, minutes the real-time window let go are lost. */
  history?: { clients: ReadonlyArray<Pick<ConvivaHistoryClient, 'account' | 'flow'>>; config: HistoryConfig; metrics: HistoryMetrics };
}

/** `*` and `?` wildcards, the rest literal, whole string. */
function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

interface Scope {
  key: string;
  client: FlowSource;
  model: FlowModelInfo;
  /** Flow dimension, undefined for the total. */
  dimension?: string;
}

/**
 * The flow models of every account as last listed, shared by the two collectors. A listing that
 * fails keeps the account's previous models; the metrics collector lists them itself when no
 * listing has succeeded yet.
 */
class FlowCatalog {
  private readonly models = new Map<string, FlowModelInfo[]>();
  private readonly warned = new Set<string>();
  private lastArithmetic = '';
  private listing: Promise<unknown[]> | undefined;
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];

  constructor(private readonly deps: FlowDeps) {
    this.include = deps.config.include.map(glob);
    this.exclude = deps.config.exclude.map(glob);
  }

  /** Whether every account has been listed at least once. */
  get complete(): boolean {
    return this.deps.clients.every((c) => this.models.has(c.account.name));
  }

  of(account: string): FlowModelInfo[] {
    return this.models.get(account) ?? [];
  }

  /** Lists every account's models (one listing at a time; a caller during one shares it). Returns the errors. */
  list(ctx: RunContext): Promise<unknown[]> {
    this.listing ??= this.doList(ctx).finally(() => (this.listing = undefined));
    return this.listing;
  }

  private followed(m: FlowModelInfo): boolean {
    const hit = (res: RegExp[]) => res.some((re) => re.test(m.id) || re.test(m.label));
    return (this.include.length === 0 || hit(this.include)) && !hit(this.exclude);
  }

  private async doList(ctx: RunContext): Promise<unknown[]> {
    const { config, engine } = this.deps;
    const errors: unknown[] = [];
    await Promise.all(
      this.deps.clients.map(async (client) => {
        try {
          const body = await client.models(ctx.signal, ctx.deadline);
          let skipped = 0;
          const all = parseFlowModels(body, FLOW_MODELS_ENDPOINT, () => {
            engine.parseErrors.inc({ api: FLOW_API, endpoint: FLOW_MODELS_ENDPOINT });
            skipped++;
          });
          if (skipped > 0) ctx.log.warn({ account: client.account.name, skipped }, 'skipped flow models without a usable id');
          const kept = all.filter((m) => this.followed(m));
          this.models.set(client.account.name, kept);
          for (const m of kept) {
            for (const d of config.group_by) {
              const what = `${client.account.name}\u0000${m.id}\u0000${d}`;
              if (m.dimensions.includes(d) || this.warned.has(what)) continue;
              this.warned.add(what);
              ctx.log.warn({ account: client.account.name, flowModelId: m.id, flow: m.label, dimension: d }, 'flow model does not list a configured dimension: that grouping is skipped for it');
            }
          }
        } catch (e) {
          if (ctx.signal.aborted) throw e;
          errors.push(e);
        }
      }),
    );
    this.checkBudget(ctx);
    return errors;
  }

  /** Warns (once per change) when the models followed cannot all be read within the account's real-time budget. */
  private checkBudget(ctx: RunContext): void {
    const { budget, config } = this.deps;
    const over: string[] = [];
    for (const client of this.deps.clients) {
      const models = this.of(client.account.name);
      const requests = models.reduce((n, m) => n + 1 + config.group_by.filter((d) => m.dimensions.includes(d)).length, 0);
      if (requests + budget.realtimePerMinute > budget.perMinute) {
        over.push(`${client.account.name}: ${models.length} flow models need ${requests} requests a minute, plus ${budget.realtimePerMinute} for Metrics V3 real time, over the ${budget.perMinute} of realtime_requests_per_minute`);
      }
    }
    const text = over.join('; ');
    if (text && text !== this.lastArithmetic) ctx.log.warn({ detail: text }, 'flow models do not fit in the real-time request budget: runs will end early with BUDGET_EXHAUSTED');
    this.lastArithmetic = text;
  }
}

/** The two DPI Flow collectors: the model list, and the models' metrics. */
export function createFlowCollectors(deps: FlowDeps): Collector[] {
  const { config, engine } = deps;
  const catalog = new FlowCatalog(deps);
  const counterSpecs = FLOW_METRICS.filter((s) => s.counter !== undefined);
  const counterFamilies = counterSpecs.map((s) => s.counter!);
  const gaugeSpecs = keyedGauges(FLOW_METRICS);
  const history = deps.history && historyStep({ collector: FLOW_COLLECTOR, config: deps.history.config, horizonMs: HISTORY_MS, counterSpecs, counterFamilies, metrics: deps.history.metrics });
  const historyClients = new Map(deps.history?.clients.map((c) => [c.account.name, c]));
  const ledger = new SettledLedger({ bucketMs: MINUTE, reach: WINDOW_MINUTES, settleMs: config.settle_delay, reviseBuckets: config.revise_window / MINUTE, backfill: deps.history?.config.catch_up.enabled }, counterFamilies);
  for (const f of counterFamilies) engine.revisedDown.inc({ collector: FLOW_COLLECTOR, family: f.name }, 0);
  const reportAhead = aheadReporter(ledger, engine.watermarkAhead, FLOW_COLLECTOR);

  const scopeKey = (client: FlowSource, modelId: string, dimension: string | undefined) =>
    createHash('sha256').update(JSON.stringify([client.account.name, client.account.clientId, modelId, dimension ?? null, config.settle_delay])).digest('hex');

  /** Every (account, model, dimension) the config asks for among the models listed. */
  function scopes(): Scope[] {
    const out: Scope[] = [];
    for (const client of deps.clients) {
      for (const model of catalog.of(client.account.name)) {
        out.push({ key: scopeKey(client, model.id, undefined), client, model });
        // The audit samples the ungrouped scope of each model.
        ledger.scope(out[out.length - 1]!.key).audited = deps.history?.config.audit.enabled === true;
        for (const d of config.group_by) if (model.dimensions.includes(d)) out.push({ key: scopeKey(client, model.id, d), client, model, dimension: d });
      }
    }
    return out;
  }

  async function fetchScope(scope: Scope, w: LedgerWindow, ctx: RunContext, onSkip: (what: string) => void): Promise<ScopeResult> {
    const ls = ledger.scope(scope.key);
    const { buckets } = ls.plan(w);
    const endpoint = scope.dimension ? FLOW_GROUP_BY_ENDPOINT : FLOW_ENDPOINT;
    const body = await scope.client.realtime({ modelId: scope.model.id, minutes: buckets, groupBy: scope.dimension, signal: ctx.signal, deadline: ctx.deadline });
    const parsed = parseTimeSeries(body, endpoint, scope.dimension !== undefined, (what) => {
      engine.parseErrors.inc({ api: FLOW_API, endpoint });
      onSkip(what);
    }, FLOW_API);
    const merged = mergeBuckets([listedOnly(scope, parsed)]);
    return reduceScope(merged, ls.settle(merged.keys(), w), (value) => labelsOf(scope, value), counterSpecs, gaugeSpecs);
  }

  const labelsOf = (scope: Scope, value: string | undefined) => [scope.client.account.name, scope.model.id, scope.model.label, scope.dimension ?? TOTAL, value ?? TOTAL];

  /** Only the metrics the model lists are read: the others are not absent data, they do not exist. */
  function listedOnly(scope: Scope, parsed: Bucket[]): Bucket[] {
    const listed = new Set(scope.model.metrics);
    for (const b of parsed) for (const r of b.rows) r.metrics = Object.fromEntries(Object.entries(r.metrics).filter(([k]) => listed.has(k)));
    return parsed;
  }

  /** The scope's holes and audit batch from the historical API (never throws: an error is in the result). */
  async function readHistory(scope: Scope, w: LedgerWindow, ctx: RunContext, limits: { signal: AbortSignal; deadline: number }, onSkip: (what: string) => void): Promise<HistoryResult | undefined> {
    const client = historyClients.get(scope.client.account.name);
    if (!history || !client) return undefined;
    const endpoint = scope.dimension ? FLOW_HISTORICAL_GROUP_BY_ENDPOINT : FLOW_HISTORICAL_ENDPOINT;
    return history.read(ledger.scope(scope.key), w, ctx, limits, async (from, to, { signal, deadline }) => {
      const body = await client.flow({ modelId: scope.model.id, from, to, groupBy: scope.dimension, signal, deadline });
      const parsed = parseTimeSeries(body, endpoint, scope.dimension !== undefined, (what) => {
        engine.parseErrors.inc({ api: HISTORICAL_API, endpoint });
        onSkip(what);
      }, HISTORICAL_API);
      return mergeBuckets([listedOnly(scope, parsed)]);
    });
  }

  const discovery: Collector = {
    name: FLOW_MODELS_COLLECTOR,
    schedule: config.discovery.schedule,
    timeoutMs: config.discovery.timeout,
    families: [FLOW_MODEL_INFO],
    maxSeriesPerFamily: config.max_series_per_metric,
    async collect(ctx: RunContext): Promise<RunOutcome> {
      const errors = await catalog.list(ctx);
      if (errors.length === deps.clients.length) throw errors[0];
      for (const client of deps.clients) {
        for (const m of catalog.of(client.account.name)) {
          ctx.samples.add(FLOW_MODEL_INFO, [client.account.name, m.id, m.label, String(m.convivaDefined)], 1);
        }
      }
      return errors.length > 0 ? { errors } : {};
    },
  };

  const metrics: Collector = {
    name: FLOW_COLLECTOR,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families: FLOW_METRICS.flatMap((s) => [...s.gauges.map((g) => g.family), ...(s.counter ? [s.counter] : [])]),
    maxSeriesPerFamily: config.max_series_per_metric,
    state: {
      version: SettledLedger.STATE_VERSION,
      carry: () => ledger.carry(),
      // Scopes are known only once the models are listed: carried state waits for them.
      adopt: (state) => ledger.adopt(state, new Map(), { keepUndeclared: true }),
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      const listErrors = catalog.complete ? [] : await catalog.list(ctx);
      const current = scopes();
      if (current.length === 0 && listErrors.length > 0) throw listErrors[0];
      // A deleted model's series go (once every account has been listed: until then, carried
      // state of accounts not yet listed is kept). A renamed one's series move to its new label.
      if (catalog.complete) {
        const keep = new Set(current.map((s) => s.key));
        ledger.retain((key) => keep.has(key));
      }
      for (const sc of current) ledger.scope(sc.key).relabel(2, sc.model.label);
      const w = ledger.window(ctx.now);
      reportAhead(w, ctx);
      const onSkip = skipLogger(ctx);
      const limits = history?.limits(ctx);
      const [outcomes, histories] = await Promise.all([
        Promise.allSettled(current.map((sc) => fetchScope(sc, w, ctx, onSkip))),
        Promise.all(current.map((sc) => (limits ? readHistory(sc, w, ctx, limits, onSkip) : undefined))),
      ]).finally(() => limits?.done());
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const errors = [...listErrors, ...outcomes.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))];
      let newest: number | undefined;
      let missed = 0;
      let bad = 0;
      current.forEach((sc, i) => {
        const r = outcomes[i]!;
        if (r.status === 'rejected') return;
        const result = r.value;
        bad += result.bad;
        if (result.settlement.newest === undefined) return;
        newest = Math.max(newest ?? -Infinity, result.settlement.newest);
        missed = Math.max(missed, result.settlement.missed);
        for (const [family, d] of applyScope(ledger.scope(sc.key), result, counterFamilies, gaugeSpecs, ctx, w)) engine.revisedDown.inc({ collector: FLOW_COLLECTOR, family: family.name }, d);
      });

      // The historical reads of every scope, whether or not its real-time read succeeded (also when none did).
      const historyBad = history?.applyRun(current.map((sc, i) => ({ ls: ledger.scope(sc.key), result: histories[i], labelsOf: (value: string | undefined) => labelsOf(sc, value) })), ctx) ?? 0;
      if (historyBad > 0) engine.parseErrors.inc({ api: HISTORICAL_API, endpoint: FLOW_HISTORICAL_ENDPOINT }, historyBad);
      if (current.length > 0 && outcomes.every((r) => r.status === 'rejected')) throw errors[listErrors.length];
      ledger.emit(ctx.samples, ctx.guard, ctx.now);
      if (bad > 0) {
        engine.parseErrors.inc({ api: FLOW_API, endpoint: FLOW_ENDPOINT }, bad);
        ctx.log.warn({ values: bad }, 'skipped upstream values that are not non-negative numbers');
      }
      if (missed > 0) {
        deps.bucketsMissed.inc({ collector: FLOW_COLLECTOR }, missed);
        ctx.log.warn({ buckets: missed }, 'settled buckets fell out of the 15-minute real-time window before they could be counted');
      }
      return { ...(newest === undefined ? {} : { newestDataTimestamp: newest }), ...(errors.length > 0 ? { errors } : {}) };
    },
  };

  return [discovery, metrics];
}
