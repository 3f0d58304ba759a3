import type { HttpClient, RequestOptions } from '../../http/client.js';
import type { Budget, RequestBudget } from '../../engine/limits.js';
import type { ConvivaAccount } from './config.js';

/** Metrics V3 lives under this path of the API host (base_url). */
export const INSIGHTS_PATH = '/insights/3.0';
/** The `api` label of the real-time API's requests, budget and errors. */
export const REALTIME_API = 'conviva_realtime';

/** The `api` label of the sessions API's requests and errors, and of the historical budget it spends. */
export const SESSIONS_API = 'conviva_sessions';
export const HISTORICAL_BUDGET = 'conviva_historical';
/**
 * The `api` and `account` labels of the per-IP budget (Conviva: 3,000 requests per 5 minutes per
 * IP address), which every request of every account and API takes from.
 */
export const IP_BUDGET = 'conviva_ip';
export const IP_BUDGET_ACCOUNT = 'all';
export const SESSIONS_ENDPOINT = 'sessions/content';

/** Endpoint labels (route templates) of the real-time API, for metrics. */
export const REALTIME_ENDPOINT = 'real-time-metrics/custom-selection';
export const REALTIME_GROUP_BY_ENDPOINT = 'real-time-metrics/custom-selection/group-by';

export interface RealtimeQuery {
  /** kebab-case metric names, at most 12. */
  metrics: readonly string[];
  /** kebab-case dimension path (device-os, dimension-tag/appVersion), or undefined for the ungrouped total. */
  groupBy?: string;
  minutes: number;
  filter: { filterId?: string; dimensions?: Record<string, string[]>; tags?: Record<string, string[]> };
  /** Group-by only: rows per bucket and the metric they are ranked by. */
  limit?: number;
  sortBy?: string;
  signal: AbortSignal;
  deadline: number;
}

/**
 * What a Metrics V3 request costs the account's budget (our reading of Conviva's guide, "100
 * requests with 5 filters or 500 requests with 1 filter"): one unit per filter key, a filter_id,
 * each dimension and each tag counting one (several values of one key are OR'ed and count once);
 * an unfiltered request costs 1, and a group-by is not a filter.
 */
export function filterCost(filter: { filterId?: string; dimensions?: Record<string, string[]>; tags?: Record<string, string[]> }): number {
  const keys = (filter.filterId !== undefined ? 1 : 0)
    + Object.values(filter.dimensions ?? {}).filter((v) => v.length > 0).length
    + Object.values(filter.tags ?? {}).filter((v) => v.length > 0).length;
  return Math.max(1, keys);
}

/** One account's view of a Conviva API: Basic auth on every request, the account's budget and the per-IP one. */
abstract class AccountClient {
  private readonly auth: string;

  constructor(
    private readonly http: HttpClient,
    readonly account: ConvivaAccount,
    private readonly budget: RequestBudget,
    /** Shared by every account and API (IP_BUDGET). */
    private readonly ipBudget: Budget,
  ) {
    // Basic auth on every request (Conviva's documented scheme); the header is redacted from logs.
    this.auth = `Basic ${Buffer.from(`${account.clientId}:${account.clientSecret}`).toString('base64')}`;
  }

  /** GET path (below base_url), taking `cost` units of the account's budget and one request of the per-IP one; returns the parsed JSON. */
  protected async get(path: string, endpoint: string, query: RequestOptions['query'], signal: AbortSignal, deadline: number, cost = 1): Promise<unknown> {
    const res = await this.http.json({ path, query, endpoint, headers: { authorization: this.auth }, budget: [this.budget, this.ipBudget], cost, signal, deadline });
    return res.body;
  }
}

/**
 * A Metrics V3 custom-selection request (real time or historical, the same but for `window`): its
 * path (group-by below it), its endpoint label and its query: the metrics in one-minute buckets,
 * the filter, and with group-by the rows' limit and the metric they are ranked by.
 */
function selection(q: Omit<RealtimeQuery, 'minutes' | 'signal' | 'deadline'>, endpoint: string, groupByEndpoint: string, window: Record<string, number>) {
  const query: Record<string, string | number | string[]> = { metric: [...q.metrics], ...window, granularity: 'PT1M' };
  if (q.filter.filterId !== undefined) query.filter_id = q.filter.filterId;
  for (const [dim, values] of Object.entries(q.filter.dimensions ?? {})) query[dim] = values;
  for (const [tag, values] of Object.entries(q.filter.tags ?? {})) query[`tag_${tag}`] = values;
  let path = `${INSIGHTS_PATH}/${endpoint}`;
  if (!q.groupBy) return { path, endpoint, query };
  path += `/group-by/${q.groupBy.split('/').map(encodeURIComponent).join('/')}`;
  if (q.limit !== undefined) query.limit = q.limit;
  if (q.sortBy) {
    query.sort_by = q.sortBy;
    query.order = 'desc';
  }
  return { path, endpoint: groupByEndpoint, query };
}

/** Conviva Metrics V3 for one account: paths, Basic auth, and that account's real-time budget. */
export class ConvivaClient extends AccountClient {

  /** GET /insights/3.0/real-time-metrics/custom-selection[/group-by/{dim}] with PT1M buckets; returns the parsed JSON. */
  realtime(q: RealtimeQuery): Promise<unknown> {
    const { path, endpoint, query } = selection(q, REALTIME_ENDPOINT, REALTIME_GROUP_BY_ENDPOINT, { minutes: q.minutes });
    return this.get(path, endpoint, query, q.signal, q.deadline, filterCost(q.filter));
  }
}

/** The `api` label of the DPI Flow API's requests and errors (its calls spend the real-time budget). */
export const FLOW_API = 'conviva_flow';
export const FLOW_MODELS_ENDPOINT = 'flow-data/metadata/flow-models';
export const FLOW_ENDPOINT = 'flow-data/real-time-metrics';
export const FLOW_GROUP_BY_ENDPOINT = 'flow-data/real-time-metrics/group-by';

/** Conviva DPI Flow for one account: at the host's root (/flow-data), Basic auth, the account's real-time budget. */
export class ConvivaFlowClient extends AccountClient {
  /** GET /flow-data/metadata/flow-models; returns the parsed JSON. */
  models(signal: AbortSignal, deadline: number): Promise<unknown> {
    return this.get(`/${FLOW_MODELS_ENDPOINT}`, FLOW_MODELS_ENDPOINT, undefined, signal, deadline);
  }

  /** GET /flow-data/real-time-metrics/{id}/last_{minutes}_minutes[/group-by/{dimension}]; returns the parsed JSON. */
  realtime(q: { modelId: string; minutes: number; groupBy?: string; signal: AbortSignal; deadline: number }): Promise<unknown> {
    let path = `/${FLOW_ENDPOINT}/${encodeURIComponent(q.modelId)}/last_${q.minutes}_minutes`;
    if (q.groupBy) path += `/group-by/${encodeURIComponent(q.groupBy)}`;
    return this.get(path, q.groupBy ? FLOW_GROUP_BY_ENDPOINT : FLOW_ENDPOINT, undefined, q.signal, q.deadline);
  }
}

/** Conviva Sessions V3 for one account: Basic auth, the account's historical budget. */
export class ConvivaSessionsClient extends AccountClient {

  /** GET /insights/3.0/sessions/content for the sessions that ended in [from, to); returns the parsed JSON. */
  sessions(q: { from: number; to: number; limit: number; signal: AbortSignal; deadline: number }): Promise<unknown> {
    return this.get(`${INSIGHTS_PATH}/${SESSIONS_ENDPOINT}`, SESSIONS_ENDPOINT, { start_epoch_ms: q.from, end_epoch_ms: q.to, limit: q.limit }, q.signal, q.deadline);
  }
}

/** The `api` label of the historical APIs' requests and errors (Metrics V3 /metrics and DPI Flow /flow-data/metrics). */
export const HISTORICAL_API = 'conviva_historical';
export const HISTORICAL_ENDPOINT = 'metrics/custom-selection';
export const HISTORICAL_GROUP_BY_ENDPOINT = 'metrics/custom-selection/group-by';
export const FLOW_HISTORICAL_ENDPOINT = 'flow-data/metrics';
export const FLOW_HISTORICAL_GROUP_BY_ENDPOINT = 'flow-data/metrics/group-by';

/** A historical query: the real-time query's selection over an explicit [from, to) (at most an hour). */
export type HistoricalQuery = Omit<RealtimeQuery, 'minutes'> & { from: number; to: number };

/**
 * Conviva's historical APIs for one account (Metrics V3 `/metrics/...` and DPI Flow
 * `/flow-data/metrics/...`), one-minute buckets over an explicit window: Basic auth, the account's
 * historical budget (400 a minute, shared with sessions).
 */
export class ConvivaHistoryClient extends AccountClient {
  /** GET /insights/3.0/metrics/custom-selection[/group-by/{dim}] with granularity PT1M, start and end in epoch ms. */
  metrics(q: HistoricalQuery): Promise<unknown> {
    const { path, endpoint, query } = selection(q, HISTORICAL_ENDPOINT, HISTORICAL_GROUP_BY_ENDPOINT, { start_epoch_ms: q.from, end_epoch_ms: q.to });
    return this.get(path, endpoint, query, q.signal, q.deadline, filterCost(q.filter));
  }

  /** GET /flow-data/metrics/{id}/{from}_to_{to}[/group-by/{dimension}]. */
  flow(q: { modelId: string; from: number; to: number; groupBy?: string; signal: AbortSignal; deadline: number }): Promise<unknown> {
    let path = `/${FLOW_HISTORICAL_ENDPOINT}/${encodeURIComponent(q.modelId)}/${q.from}_to_${q.to}`;
    if (q.groupBy) path += `/group-by/${encodeURIComponent(q.groupBy)}`;
    return this.get(path, q.groupBy ? FLOW_HISTORICAL_GROUP_BY_ENDPOINT : FLOW_HISTORICAL_ENDPOINT, undefined, q.signal, q.deadline);
  }
}
