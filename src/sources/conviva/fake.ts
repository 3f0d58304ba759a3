import type { Request, Response, Router } from 'express';
import type { Clock } from '../../engine/clock.js';
import type { Fake, FakeOptions } from '../../simulator/fake.js';
import { PATH_ALIASES } from './catalogue.js';
import { INSIGHTS_PATH } from './client.js';
import {
  defaultDimensions, SAVED_FILTERS, servedValues, weights, type BucketScope, type DimensionSpec, type MinuteValues,
} from './fake-data.js';
import { FlowFake } from './flow-fake.js';
import { SessionsFake, SessionsQueryError } from './sessions-fake.js';

export interface SimAccount {
  name: string;
  clientId: string;
  clientSecret: string;
}

/** The accounts the fake knows (Basic auth): the demo config and the tests use them. */
export const DEMO_ACCOUNTS: SimAccount[] = [
  { name: 'demo', clientId: 'demo-client', clientSecret: 'demo-secret' },
  { name: 'demo-eu', clientId: 'demo-eu-client', clientSecret: 'demo-eu-secret' },
];

export interface ConvivaSimOptions {
  seed: number;
  clock: Clock;
  accounts: SimAccount[];
  dimensions: DimensionSpec[];
  /** A quarter of the real-time minutes are revised after they settled (default true). */
  lateRevisions?: boolean;
  /**
   * Per account name, metrics (kebab paths) it cannot read in real time: a real-time request asking
   * for one answers 400 naming it; historical requests are unaffected. None by default.
   */
  realtimeUnavailable?: Record<string, readonly string[]>;
}

class BadRequest extends Error {}

const MAX_BODY = 5_700_000;
const MINUTE = 60_000;
const HOUR = 3_600_000;

/** How each response key is shaped, per upstream-apis.md (nri-conviva's typed model). */
function valueObject(key: keyof MinuteValues, v: MinuteValues): Record<string, number> {
  const pct = (num: number, den: number) => (den > 0 ? Math.round((num / den) * 10000) / 100 : 0);
  switch (key) {
    case 'plays': return { count: v.plays, percentage: pct(v.plays, v.attempts) };
    case 'video_start_failures': return { count: v.video_start_failures, percentage: pct(v.video_start_failures, v.attempts) };
    case 'exit_before_video_starts': return { count: v.exit_before_video_starts, percentage: pct(v.exit_before_video_starts, v.attempts) };
    // Conviva: a share of ended plays, not of plays.
    case 'video_playback_failures': return { count: v.video_playback_failures, percentage: pct(v.video_playback_failures, v.ended_plays) };
    case 'rebuffering_ratio': return { ratio: v.rebuffering_ratio };
    case 'connection_induced_rebuffering_ratio': return { ratio: v.connection_induced_rebuffering_ratio };
    case 'bitrate': return { bps: v.bitrate };
    case 'framerate': return { fps: v.framerate };
    case 'video_start_time': return { value: v.video_start_time };
    case 'video_restart_time': return { value: v.video_restart_time };
    case 'ended_plays': return { count: v.ended_plays, per_unique_device: v.unique_devices > 0 ? Math.round((v.ended_plays / v.unique_devices) * 100) / 100 : 0 };
    default: return { count: v[key] };
  }
}

const KNOWN_KEYS: ReadonlySet<string> = new Set([
  'attempts', 'plays', 'concurrent_plays', 'unique_devices', 'video_start_failures', 'video_playback_failures',
  'exit_before_video_starts', 'ended_plays', 'rebuffering_ratio', 'connection_induced_rebuffering_ratio',
  'bitrate', 'framerate', 'video_start_time', 'video_restart_time',
]);

/** kebab path name -> response key, accepting the documented alias spelling. */
function metricKey(path: string): keyof MinuteValues {
  const key = (PATH_ALIASES[path] ?? path).replace(/-/g, '_');
  if (!KNOWN_KEYS.has(key)) throw new BadRequest(`unknown metric ${path}`);
  return key as keyof MinuteValues;
}

/** The filter of a request: which share of traffic, and which values of each dimension it keeps. */
export interface RequestFilter {
  filterId?: string;
  /** response key (device_os, tag_appVersion) -> allowed values */
  dimensions: Map<string, string[]>;
}

/**
 * Conviva's fake: Metrics V3 (real-time, historical, _meta) and sample sessions (sessions/content) under
 * /insights/3.0, and the DPI Flow API under /flow-data.
 */
export class ConvivaFake implements Fake {
  /** The Flow API's models and data; the same accounts, seed and clock. */
  readonly flows: FlowFake;
  /** The sample sessions; the same seed and clock. */
  readonly sessions: SessionsFake;
  private readonly weightCache = new Map<string, Map<string, number>>();
  /** account name -> response keys it cannot read in real time */
  private readonly unavailable = new Map<string, Set<keyof MinuteValues>>();

  constructor(private readonly o: ConvivaSimOptions) {
    this.flows = new FlowFake({ seed: o.seed, clock: o.clock, accounts: o.accounts });
    this.sessions = new SessionsFake({ seed: o.seed, clock: o.clock });
    for (const [account, metrics] of Object.entries(o.realtimeUnavailable ?? {})) this.setRealtimeUnavailable(account, metrics);
  }

  /** Replaces the metrics (kebab paths) an account cannot read in real time; [] gives them all back. */
  setRealtimeUnavailable(account: string, metrics: readonly string[]): void {
    if (metrics.length === 0) this.unavailable.delete(account);
    else this.unavailable.set(account, new Set(metrics.map(metricKey)));
  }

  static create(opts: FakeOptions): ConvivaFake {
    return new ConvivaFake({ seed: opts.seed, clock: opts.clock, accounts: DEMO_ACCOUNTS, dimensions: defaultDimensions(opts.cardinality), lateRevisions: opts.lateRevisions });
  }

  mount(router: Router): void {
    router.use(INSIGHTS_PATH, (req, res) => this.handle(req, res, req.path));
    // The Flow API lives at the host root, not under /insights/3.0.
    router.use('/flow-data', (req, res) => {
      const account = this.authenticate(req);
      if (account) this.flows.handle(req, res, req.path, account.name);
      else res.status(401).json({ message: 'Unauthorized' });
    });
  }

  /** The admin routes: flow models (/_admin/conviva/flow-models) and real-time access (/_admin/conviva/realtime-unavailable). */
  admin(router: Router): void {
    this.flows.admin(router);
    const list = () => Object.fromEntries([...this.unavailable].map(([a, keys]) => [a, [...keys].map((k) => k.replace(/_/g, '-'))]));
    router.get('/conviva/realtime-unavailable', (_req, res) => {
      res.json(list());
    });
    // Body: { "<account>": ["video-restart-time", ...] }; an account given [] can read everything again.
    router.put('/conviva/realtime-unavailable', (req, res) => {
      const body: unknown = req.body;
      try {
        if (!body || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('expected an object: account -> metric names');
        const entries = Object.entries(body as Record<string, unknown>);
        for (const [account, metrics] of entries) {
          // Every name is checked before any is applied.
          if (!Array.isArray(metrics) || !metrics.every((m) => typeof m === 'string')) throw new BadRequest(`${account}: expected a list of metric names`);
          metrics.forEach(metricKey);
        }
        for (const [account, metrics] of entries) this.setRealtimeUnavailable(account, metrics as string[]);
      } catch (e) {
        if (!(e instanceof BadRequest)) throw e;
        res.status(400).json({ message: e.message });
        return;
      }
      res.json(list());
    });
  }

  /** Authenticates a request; undefined when the credentials are wrong. */
  authenticate(req: Request): SimAccount | undefined {
    const h = req.headers.authorization ?? '';
    const m = /^Basic\s+(.+)$/i.exec(h);
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const id = decoded.slice(0, i);
    const secret = decoded.slice(i + 1);
    return this.o.accounts.find((a) => a.clientId === id && a.clientSecret === secret);
  }

  /** Handles one request below /insights/3.0. */
  handle(req: Request, res: Response, path: string): void {
    const account = this.authenticate(req);
    if (!account) {
      res.status(401).json({ message: 'Unauthorized' });
      return;
    }
    try {
      const body = this.route(path, new URL(req.originalUrl, 'http://sim').searchParams, account);
      const text = JSON.stringify(body);
      if (Buffer.byteLength(text) > MAX_BODY) {
        res.status(413).json({ name: 'PayloadTooLarge', message: `response over ${MAX_BODY} bytes; narrow the query` });
        return;
      }
      res.status(200).type('application/json').send(text);
    } catch (e) {
      if (e instanceof BadRequest || e instanceof SessionsQueryError) res.status(400).json({ name: 'InvalidParameter', message: e.message });
      else if (e instanceof NotFound) res.status(404).json({ name: 'NotFound', message: e.message });
      else throw e;
    }
  }

  /** Response key of a dimension path segment ("device-os" or "dimension-tag/appVersion"). */
  dimension(path: string): DimensionSpec | undefined {
    return this.o.dimensions.find((d) => d.path === path);
  }

  /** Share of traffic a filter selects, leaving out `except` (the group-by dimension, handled per row). */
  filterShare(filter: RequestFilter, except?: string): number {
    if (filter.filterId !== undefined) {
      const saved = SAVED_FILTERS.find((f) => f.id === filter.filterId);
      if (!saved) throw new BadRequest(`unknown filter_id ${filter.filterId}`);
      return saved.share;
    }
    let share = 1;
    for (const [key, values] of filter.dimensions) {
      if (key === except) continue;
      const dim = this.o.dimensions.find((d) => d.key === key);
      if (!dim) continue; // a dimension we do not model filters nothing
      const w = this.weights(dim);
      share *= values.reduce((s, v) => s + (w.get(v) ?? 0), 0);
    }
    return share;
  }

  weights(dim: DimensionSpec): Map<string, number> {
    let w = this.weightCache.get(dim.key);
    if (!w) {
      w = weights(this.o.seed, dim);
      this.weightCache.set(dim.key, w);
    }
    return w;
  }

  /** The rows (ungrouped total, or one per dimension value) a request selects: scope per row. */
  rows(account: string, filter: RequestFilter, group?: DimensionSpec): Array<{ scope: BucketScope; dim?: DimensionSpec; value?: string }> {
    const seed = this.o.seed;
    const lateRevisions = this.o.lateRevisions ?? true;
    if (!group) return [{ scope: { seed, account, filterShare: this.filterShare(filter), weight: 1, rowKey: '', lateRevisions } }];
    const share = this.filterShare(filter, group.key);
    const allowed = filter.dimensions.get(group.key);
    const w = this.weights(group);
    return group.values
      .filter((v) => !allowed || allowed.includes(v))
      .map((value) => ({ scope: { seed, account, filterShare: share, weight: w.get(value) ?? 0, rowKey: `${group.key}=${value}`, lateRevisions }, dim: group, value }));
  }

  private route(path: string, q: URLSearchParams, account: SimAccount): unknown {
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'sessions') {
      if (parts.length === 2 && parts[1] === 'content') return this.sessions.content(q, account.name);
      throw new NotFound(`no such path ${path}`);
    }
    if (parts[0] === 'metrics' && parts[1] === '_meta' && parts[2] === 'references') {
      if (parts[3] === 'dimensions') return { dimensions: this.o.dimensions.map((d) => ({ key: d.key, path: d.path, description: d.description })) };
      if (parts[3] === 'filters') return { filters: SAVED_FILTERS.map((f) => ({ id: f.id, name: f.name })) };
      throw new NotFound(`no such reference ${parts[3]}`);
    }
    const kind = parts[0];
    if (kind !== 'metrics' && kind !== 'real-time-metrics') throw new NotFound(`no such path ${path}`);
    const what = parts[1];
    if (!what) throw new NotFound('metric missing from path');
    let keys: Array<keyof MinuteValues>;
    if (what === 'custom-selection') {
      const ms = q.getAll('metric');
      if (ms.length === 0) throw new BadRequest('custom-selection needs at least one metric parameter');
      if (ms.length > 12) throw new BadRequest('custom-selection accepts at most 12 metrics');
      keys = ms.map(metricKey);
    } else keys = [metricKey(what)];
    if (kind === 'real-time-metrics') {
      const denied = this.unavailable.get(account.name);
      const asked = what === 'custom-selection' ? q.getAll('metric') : [what];
      const refused = asked.find((m) => denied?.has(metricKey(m)));
      if (refused !== undefined) throw new BadRequest(`metric ${refused} is not available in real time for this account`);
    }
    let group: DimensionSpec | undefined;
    if (parts.length > 2) {
      if (parts[2] !== 'group-by' || parts.length < 4) throw new NotFound(`no such path ${path}`);
      const dimPath = parts.slice(3).join('/');
      group = this.dimension(dimPath);
      if (!group) throw new BadRequest(`unknown dimension ${dimPath}`);
    } else {
      for (const k of ['sort_by', 'order', 'limit']) if (q.has(k)) throw new BadRequest(`${k} is only valid with group-by`);
    }
    const filter = this.parseFilter(q);
    const now = this.o.clock.now();
    const buckets = kind === 'real-time-metrics' ? this.realtimeBuckets(q, now) : this.historicalBuckets(q, now, group !== undefined);
    const limit = q.has('limit') ? Number(q.get('limit')) : 50;
    if (group && (!Number.isInteger(limit) || limit < 1 || limit > 500)) throw new BadRequest('limit must be 1..500');
    const sortKey = q.has('sort_by') ? metricKey(q.get('sort_by')!) : keys[0]!;
    if (!keys.includes(sortKey)) throw new BadRequest(`sort_by ${q.get('sort_by')} is not one of the metrics requested`);
    const asc = q.get('order') === 'asc';
    const rows = this.rows(account.name, filter, group);
    const time_series = buckets.starts.map((ts) => {
      const timestamp = { epoch_ms: ts, iso_date: new Date(ts).toISOString().replace('.000Z', 'Z') };
      const valuesOf = (scope: BucketScope) => this.bucketValues(scope, ts, buckets.sizeMs, now);
      if (!group) {
        const v = valuesOf(rows[0]!.scope);
        return { timestamp, ...Object.fromEntries(keys.map((k) => [k, valueObject(k, v)])) };
      }
      const computed = rows.map((r) => ({ r, v: valuesOf(r.scope) }));
      computed.sort((a, b) => (asc ? 1 : -1) * (a.v[sortKey] - b.v[sortKey]));
      return {
        timestamp,
        dimensional_data: computed.slice(0, limit).map(({ r, v }) => ({
          dimension: { key: group.key, value: r.value, description: group.description },
          metrics: Object.fromEntries(keys.map((k) => [k, valueObject(k, v)])),
        })),
      };
    });
    return {
      _meta: {
        ...(group ? { group_by_dimension: { description: group.description } } : {}),
        ...(filter.filterId ? { filter_info: { id: filter.filterId } } : {}),
      },
      time_series,
    };
  }

  private parseFilter(q: URLSearchParams): RequestFilter {
    const dimensions = new Map<string, string[]>();
    const reserved = new Set(['metric', 'minutes', 'days', 'granularity', 'filter_id', 'sort_by', 'order', 'limit',
      'start_date', 'end_date', 'start_epoch', 'end_epoch', 'start_epoch_ms', 'end_epoch_ms']);
    for (const key of new Set(q.keys())) {
      if (reserved.has(key)) continue;
      if (!/^[a-z][a-z0-9_]*$|^tag_[A-Za-z0-9_.-]+$/.test(key)) throw new BadRequest(`unknown parameter ${key}`);
      dimensions.set(key, q.getAll(key));
    }
    const filterId = q.get('filter_id') ?? undefined;
    if (filterId !== undefined && dimensions.size > 0) throw new BadRequest('filter_id cannot be combined with dimension filters');
    return { filterId, dimensions };
  }

  private epochRange(q: URLSearchParams): { start: number; end: number } | undefined {
    if (q.has('start_epoch_ms') || q.has('end_epoch_ms')) return { start: Number(q.get('start_epoch_ms')), end: Number(q.get('end_epoch_ms')) };
    if (q.has('start_epoch') || q.has('end_epoch')) return { start: Number(q.get('start_epoch')) * 1000, end: Number(q.get('end_epoch')) * 1000 };
    if (q.has('start_date') || q.has('end_date')) return { start: Date.parse(q.get('start_date') ?? ''), end: Date.parse(q.get('end_date') ?? '') };
    return undefined;
  }

  private realtimeBuckets(q: URLSearchParams, now: number): { starts: number[]; sizeMs: number } {
    if (q.has('days')) throw new BadRequest('days is not valid for real-time metrics');
    const g = q.get('granularity') ?? 'PT1M';
    let sizeMs: number;
    const sec = /^PT(\d+)S$/.exec(g);
    if (g === 'PT1M') sizeMs = MINUTE;
    else if (sec && Number(sec[1]) >= 10 && Number(sec[1]) <= 59) sizeMs = Number(sec[1]) * 1000;
    else if (g === 'ALL') sizeMs = 0;
    else throw new BadRequest(`granularity ${g} is not valid for real-time metrics (PT10S..PT59S, PT1M, ALL)`);
    const minuteNow = Math.floor(now / MINUTE) * MINUTE;
    let start: number;
    let end: number;
    const range = this.epochRange(q);
    if (range) {
      if (q.has('minutes')) throw new BadRequest('minutes cannot be combined with start/end');
      ({ start, end } = range);
      if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) throw new BadRequest('invalid start/end');
      if (end - start > 15 * MINUTE) throw new BadRequest('real-time window is at most 15 minutes');
      if (start < minuteNow - 15 * MINUTE) throw new BadRequest('real-time window may start at most 15 minutes ago');
    } else {
      const minutes = q.has('minutes') ? Number(q.get('minutes')) : 5;
      if (!Number.isInteger(minutes) || minutes < 1 || minutes > 15) throw new BadRequest('minutes must be 1..15');
      start = minuteNow - (minutes - 1) * MINUTE;
      end = now + 1;
    }
    end = Math.min(end, now + 1);
    if (sizeMs === 0) return { starts: [start], sizeMs: Math.max(MINUTE, Math.ceil((end - start) / MINUTE) * MINUTE) };
    const starts: number[] = [];
    for (let t = Math.ceil(start / sizeMs) * sizeMs; t < end; t += sizeMs) starts.push(t);
    return { starts, sizeMs };
  }

  private historicalBuckets(q: URLSearchParams, now: number, grouped: boolean): { starts: number[]; sizeMs: number } {
    if (q.has('minutes')) throw new BadRequest('minutes is only valid for real-time metrics');
    const lastFullHour = Math.floor(now / HOUR) * HOUR;
    let start: number;
    let end: number;
    const range = this.epochRange(q);
    if (q.has('days')) {
      const days = Number(q.get('days'));
      if (!Number.isInteger(days) || days < 1 || days > 90) throw new BadRequest('days must be 1..90');
      end = lastFullHour;
      start = end - days * 24 * HOUR;
    } else if (range) {
      ({ start, end } = range);
      if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start) throw new BadRequest('invalid start/end');
    } else {
      end = lastFullHour;
      start = end - 24 * HOUR;
    }
    const g = q.get('granularity') ?? 'PT1H';
    let sizeMs: number;
    const m = /^PT(\d+)M$/.exec(g);
    const h = /^PT(\d+)H$/.exec(g);
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= 30) {
      const n = Number(m[1]);
      if (start < now - 31 * 24 * HOUR) throw new BadRequest('minute granularity is only available within the last 31 days');
      if (grouped && end - start > n * HOUR) throw new BadRequest(`with group-by, ${g} may span at most ${n} hours`);
      sizeMs = n * MINUTE;
    } else if (h && Number(h[1]) >= 1 && Number(h[1]) <= 24) sizeMs = Number(h[1]) * HOUR;
    else if (g === 'P1D') sizeMs = 24 * HOUR;
    else throw new BadRequest(`granularity ${g} is not valid for historical metrics`);
    const starts: number[] = [];
    for (let t = Math.ceil(start / sizeMs) * sizeMs; t < end; t += sizeMs) starts.push(t);
    if (starts.length > 5000) throw new BadRequest('too many buckets; use a coarser granularity');
    return { starts, sizeMs };
  }

  /** Values of a bucket of any size: counts add up over its minutes (sampled), the rest are averages. */
  private bucketValues(scope: BucketScope, ts: number, sizeMs: number, now: number): MinuteValues {
    if (sizeMs === MINUTE) return servedValues(scope, ts, now);
    if (sizeMs < MINUTE) {
      const v = servedValues(scope, Math.floor(ts / MINUTE) * MINUTE, now);
      const f = sizeMs / MINUTE;
      return { ...v, attempts: Math.round(v.attempts * f), plays: Math.round(v.plays * f), video_start_failures: Math.round(v.video_start_failures * f), exit_before_video_starts: Math.round(v.exit_before_video_starts * f), video_playback_failures: Math.round(v.video_playback_failures * f), ended_plays: Math.round(v.ended_plays * f), unique_devices: Math.round(v.unique_devices * f) };
    }
    // Longer buckets: sample one minute per hour at most, scale counts by the bucket's minutes.
    const minutes = sizeMs / MINUTE;
    const step = Math.max(MINUTE, Math.min(HOUR, sizeMs / 4));
    const samples: MinuteValues[] = [];
    for (let t = ts; t < ts + sizeMs; t += step) samples.push(servedValues(scope, Math.floor(t / MINUTE) * MINUTE, now));
    const avg = (k: keyof MinuteValues) => samples.reduce((s, v) => s + v[k], 0) / samples.length;
    const count = (k: keyof MinuteValues) => Math.round(avg(k) * minutes);
    const round3 = (x: number) => Math.round(x * 1000) / 1000;
    return {
      attempts: count('attempts'), plays: count('plays'), unique_devices: count('unique_devices'),
      video_start_failures: count('video_start_failures'), video_playback_failures: count('video_playback_failures'),
      exit_before_video_starts: count('exit_before_video_starts'), ended_plays: count('ended_plays'),
      concurrent_plays: Math.round(avg('concurrent_plays')),
      rebuffering_ratio: round3(avg('rebuffering_ratio')), connection_induced_rebuffering_ratio: round3(avg('connection_induced_rebuffering_ratio')),
      bitrate: Math.round(avg('bitrate')), framerate: round3(avg('framerate')),
      video_start_time: round3(avg('video_start_time')), video_restart_time: round3(avg('video_restart_time')),
    };
  }
}

class NotFound extends Error {}
