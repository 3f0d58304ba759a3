import { z } from 'zod';
import { checkRunFits, duplicates, duration, httpClientFields, name, schedule, secretPair } from '../../config/fields.js';
import type { ResolveContext } from '../../engine/source.js';
import { METRIC_PATHS, PATH_ALIASES } from './catalogue.js';
import { filterCost } from './client.js';

// The `sources.conviva` block. Defaults live here and nowhere else; every object is strict.

const account = z.strictObject({
  name,
  ...secretPair('client_id'),
  ...secretPair('client_secret'),
});

const filter = z
  .strictObject({
    name,
    filter_id: z.union([z.string().regex(/^\d+$/, 'must be a number'), z.number().int().nonnegative()]).transform(String).optional(),
    dimensions: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'dimension keys are snake_case, such as device_os'), z.array(z.string()).min(1, 'needs at least one value')).optional(),
    tags: z.record(z.string().min(1), z.array(z.string()).min(1, 'needs at least one value')).optional(),
  })
  .refine((f) => !(f.filter_id !== undefined && (f.dimensions || f.tags)), {
    message: 'filter_id cannot be combined with dimensions or tags (Conviva answers 400)',
  });

const GROUP_BY_RE = /^([a-z][a-z0-9-]*|dimension-tag\/[A-Za-z0-9_.-]+)$/;

const realtime = z
  .strictObject({
    enabled: z.boolean().default(true),
    schedule: schedule('* * * * *'),
    timeout: duration('50s'),
    settle_delay: duration('60s'),
    revise_window: duration('10m'),
    metrics: z
      .array(z.enum([...METRIC_PATHS, ...Object.keys(PATH_ALIASES)] as [string, ...string[]], { error: `must be one of: ${METRIC_PATHS.join(', ')}` }))
      .min(1, 'needs at least one metric')
      .default(['attempts', 'plays', 'concurrent-plays', 'video-start-failures', 'rebuffering-ratio', 'bitrate', 'video-start-time', 'exit-before-video-starts', 'video-playback-failures', 'ended-plays']),
    group_by: z.array(z.string().regex(GROUP_BY_RE, 'expected a kebab-case dimension (device-os) or dimension-tag/<tag>')).default([]),
    group_limit: z.number().int().min(1).max(500).default(100),
    filters: z.array(filter).min(1, 'needs at least one filter').default([{ name: 'all' }]),
    max_series_per_metric: z.number().int().min(1).default(5000),
  })
  .superRefine(checkRunFits);

/** A flow model id or label, with `*` and `?` as wildcards (matched against both). */
const flowPattern = z.string().min(1, 'must not be empty');

const flows = z
  .strictObject({
    enabled: z.boolean().default(false),
    schedule: schedule('* * * * *'),
    timeout: duration('50s'),
    settle_delay: duration('60s'),
    revise_window: duration('10m'),
    /** Flow models are listed at start and on this schedule (a new, renamed or deleted model shows up then). */
    discovery: z
      .strictObject({ schedule: schedule('*/10 * * * *'), timeout: duration('30s') })
      .superRefine(checkRunFits)
      .default(() => ({ schedule: '*/10 * * * *', timeout: 30_000 })),
    include: z.array(flowPattern).default([]),
    exclude: z.array(flowPattern).default([]),
    group_by: z.array(z.string().regex(/^[a-z][a-z0-9_]*$/, 'expected a flow dimension as the model lists it, such as platform or app_version')).default([]),
    max_series_per_metric: z.number().int().min(1).default(5000),
  })
  .superRefine(checkRunFits);

/** Session fields the sessions collector can break down by (label `dimension`), and `tag_<customTag>`. */
export const SESSION_DIMENSIONS = ['device_os_family', 'device_os', 'browser', 'content_category', 'cdn', 'country_code', 'isp'] as const;

const sessions = z
  .strictObject({
    enabled: z.boolean().default(false),
    schedule: schedule('* * * * *'),
    timeout: duration('50s'),
    /** Sessions that ended in the last `lag` may not be listed yet: each read stops there. */
    lag: duration('5m'),
    /** Each read starts this long before the watermark, for sessions listed late; ids de-duplicate. */
    overlap: duration('10m'),
    /** A first start (no state) reads the sessions that ended this long before now - lag. */
    initial_lookback: duration('5m'),
    limit: z.number().int().min(1).max(1500).default(1500),
    /** A full answer is split in halves down to this window; a window this short still full is counted as truncated. */
    min_window: duration('1m'),
    group_by: z
      .array(z.string().refine((d) => (SESSION_DIMENSIONS as readonly string[]).includes(d) || /^tag_[A-Za-z0-9_]+$/.test(d), { message: `must be one of ${SESSION_DIMENSIONS.join(', ')}, or tag_<customTag>` }))
      .default([]),
    max_series_per_metric: z.number().int().min(1).default(5000),
  })
  .superRefine(checkRunFits);

/** Conviva's APIs live under one host; the client adds /insights/3.0 (and later /flow-data). */
const baseUrl = z
  .url({ error: 'must be an absolute http(s) URL' })
  .default('https://api.conviva.com')
  .refine((u) => !URL.canParse(u) || !/\/insights\/3\.0\/?$/.test(new URL(u).pathname), {
    message: 'is the API host, such as https://api.conviva.com; the exporter adds /insights/3.0 itself',
  });

export const convivaConfigSchema = z.strictObject({
  base_url: baseUrl,
  ...httpClientFields({ concurrency: 8 }),
  realtime_requests_per_minute: z.number().int().min(1).default(500),
  /** Client-side limit of every Conviva request of every account together (Conviva: 3,000 per 5 minutes per IP address). */
  ip_requests_per_5_minutes: z.number().int().min(1).default(3000),
  accounts: z.array(account).min(1, 'needs at least one account'),
  realtime: realtime.default(() => realtime.parse({})),
  flows: flows.default(() => flows.parse({})),
  sessions: sessions.default(() => sessions.parse({})),
  /** Client-side budget per account of Conviva's historical APIs (400 a minute, shared by historical metrics and sessions). */
  historical_requests_per_minute: z.number().int().min(1).default(400),
  /**
   * Minutes the 15-minute real-time window no longer serves (an outage, a restart) are counted
   * from the historical APIs (Metrics V3 keeps one-minute data 31 days, DPI Flow 7), up to
   * requests_per_run one-hour reads per scope a run.
   */
  catch_up: z
    .strictObject({ enabled: z.boolean().default(true), requests_per_run: z.number().int().min(1).max(24).default(4) })
    .default(() => ({ enabled: true, requests_per_run: 4 })),
  /**
   * Once a minute is final in the historical API (delay after it ended), what the counters added
   * for it is compared with it, for the ungrouped scopes, one read per scope every interval.
   */
  audit: z
    .strictObject({ enabled: z.boolean().default(true), delay: duration('20m'), interval: duration('15m') })
    .default(() => ({ enabled: true, delay: 20 * 60_000, interval: 15 * 60_000 })),
});

export type ConvivaRawConfig = z.output<typeof convivaConfigSchema>;

export interface ConvivaAccount {
  name: string;
  clientId: string;
  clientSecret: string;
}

export type ConvivaConfig = Omit<ConvivaRawConfig, 'accounts'> & { accounts: ConvivaAccount[] };
export type RealtimeConfig = ConvivaConfig['realtime'];
export type FlowsConfig = ConvivaConfig['flows'];
export type SessionsConfig = ConvivaConfig['sessions'];

/** Per request, Conviva's custom-selection takes at most 12 metrics. */
export const MAX_METRICS_PER_REQUEST = 12;

/** Requests a minute the real-time collector makes per account: one per filter, group-by (and the total) and chunk of 12 metrics. */
export function realtimeRequestsPerMinute(config: Pick<RealtimeConfig, 'filters' | 'group_by' | 'metrics'>): number {
  return config.filters.length * (1 + config.group_by.length) * Math.ceil(config.metrics.length / MAX_METRICS_PER_REQUEST);
}

/** The budget cost of a configured filter's requests (filterCost: one unit per filter key). */
function configFilterCost(f: RealtimeConfig['filters'][number]): number {
  return filterCost({ filterId: f.filter_id, dimensions: f.dimensions, tags: f.tags });
}

/**
 * What the real-time collector's requests cost the account's real-time budget a minute: as
 * realtimeRequestsPerMinute, each request counted at its filter's cost.
 */
export function realtimeCostPerMinute(config: Pick<RealtimeConfig, 'filters' | 'group_by' | 'metrics'>): number {
  const costs = config.filters.reduce((n, f) => n + configFilterCost(f), 0);
  return costs * (1 + config.group_by.length) * Math.ceil(config.metrics.length / MAX_METRICS_PER_REQUEST);
}

/** Conviva's per-IP limit is counted over this window. */
export const IP_WINDOW_MS = 5 * 60_000;

/**
 * Warns, with the arithmetic, when a minute's requests cannot fit in the account's real-time
 * budget: the real-time collector's (each at its filter's cost), plus one per flow model named in
 * `flows.include` (no wildcard) and dimension; and when 5 minutes of those requests, all accounts
 * together, cannot fit in ip_requests_per_5_minutes. Models matched by a wildcard are counted
 * when they are listed.
 */
function checkBudget(c: ConvivaRawConfig, ctx: ResolveContext): void {
  const budget = c.realtime_requests_per_minute;
  const groups = `(1 + ${c.realtime.group_by.length} group_by) × ${Math.ceil(c.realtime.metrics.length / MAX_METRICS_PER_REQUEST)} metric chunks`;
  const rtRequests = c.realtime.enabled ? realtimeRequestsPerMinute(c.realtime) : 0;
  const rt = c.realtime.enabled ? realtimeCostPerMinute(c.realtime) : 0;
  const costs = c.realtime.filters.map(configFilterCost);
  const costly = c.realtime.enabled && costs.some((n) => n > 1);
  const named = c.flows.enabled ? c.flows.include.filter((p) => !/[*?]/.test(p)).length : 0;
  const flows = named * (1 + c.flows.group_by.length);
  const flowText = `DPI Flow: ${named} models named in include × (1 + ${c.flows.group_by.length} group_by) = up to ${flows}`;
  if (rt + flows > budget) {
    const rtText = costly
      ? `${costs.length} filters costing (${costs.join(' + ')}) × ${groups} = ${rt}`
      : `${costs.length} filters × ${groups} = ${rt}`;
    const parts = c.realtime.enabled ? [`real time: ${rtText}`] : [];
    if (flows > 0) parts.push(flowText);
    const counting = costly ? ', counting a request with n filter keys as n' : '';
    ctx.warn(`${ctx.at}.realtime_requests_per_minute`, `a minute needs ${rt + flows} requests per account${counting} (${parts.join('; ')}), more than the budget of ${budget}: runs will end early with BUDGET_EXHAUSTED`);
  }
  // The per-IP limit counts requests, whatever their filters, of every account together.
  const ipMinutes = IP_WINDOW_MS / 60_000;
  const perAccount = rtRequests + flows;
  const ip = ipMinutes * perAccount * c.accounts.length;
  if (ip > c.ip_requests_per_5_minutes) {
    const parts = c.realtime.enabled ? [`real time: ${costs.length} filters × ${groups} = ${rtRequests}`] : [];
    if (flows > 0) parts.push(flowText);
    ctx.warn(`${ctx.at}.ip_requests_per_5_minutes`, `5 minutes need ${ip} requests from this IP address (${ipMinutes} minutes × ${perAccount} requests × ${c.accounts.length} accounts; a minute per account: ${parts.join('; ')}), more than the limit of ${c.ip_requests_per_5_minutes}: runs will end early with BUDGET_EXHAUSTED`);
  }
}

/** Reads the account secrets (inline or *_file) and checks names are unique. */
export function resolveConvivaConfig(c: ConvivaRawConfig, ctx: ResolveContext): ConvivaConfig {
  const accounts = c.accounts.map((a, i) => ({
    name: a.name,
    clientId: ctx.secret(a, 'client_id', `${ctx.at}.accounts[${i}]`),
    clientSecret: ctx.secret(a, 'client_secret', `${ctx.at}.accounts[${i}]`),
  }));
  for (const d of duplicates(c.accounts.map((a) => a.name))) ctx.problem(`${ctx.at}.accounts`, `duplicate account name "${d}"`);
  for (const d of duplicates(c.realtime.filters.map((f) => f.name))) ctx.problem(`${ctx.at}.realtime.filters`, `duplicate filter name "${d}"`);
  for (const d of duplicates(c.realtime.group_by)) ctx.problem(`${ctx.at}.realtime.group_by`, `"${d}" listed twice`);
  for (const d of duplicates(c.flows.group_by)) ctx.problem(`${ctx.at}.flows.group_by`, `"${d}" listed twice`);
  for (const d of duplicates(c.sessions.group_by)) ctx.problem(`${ctx.at}.sessions.group_by`, `"${d}" listed twice`);
  if (c.sessions.min_window > 3 * 3_600_000) ctx.problem(`${ctx.at}.sessions.min_window`, 'must be at most 3h (one request spans at most 3 hours)');
  for (const block of ['realtime', 'flows'] as const) {
    const rw = c[block].revise_window;
    if (rw < 60_000 || rw > 15 * 60_000 || rw % 60_000 !== 0) ctx.problem(`${ctx.at}.${block}.revise_window`, 'must be whole minutes from 1m to 15m (the real-time window reaches 15 minutes back)');
  }
  if (c.audit.delay < 15 * 60_000) ctx.problem(`${ctx.at}.audit.delay`, 'must be at least 15m (the historical API is not final for the newest minutes)');
  if (c.audit.interval < 60_000 || c.audit.interval > 60 * 60_000) ctx.problem(`${ctx.at}.audit.interval`, 'must be from 1m to 1h (one read covers at most an hour)');
  checkBudget(c, ctx);
  return { ...c, ca_file: c.ca_file === undefined ? undefined : ctx.path(c.ca_file), accounts };
}
