/**
 * Conviva's DPI Flow API fake (upstream-apis.md section 2): flow models (login, checkout, ...) and
 * their per-minute metrics at the host root under /flow-data, plus admin routes to change the models.
 */
import type { Request, Response, Router } from 'express';
import type { Clock } from '../../engine/clock.js';
import { baseAttempts, hash, weights } from './fake-data.js';
import type { SimAccount } from './fake.js';

export const FLOW_METRICS = ['init', 'complete', 'avg_duration', 'success', 'error', 'percentage'] as const;
export type FlowMetric = (typeof FLOW_METRICS)[number];

/** The dimensions a flow model may group by, and their values. */
export const FLOW_DIMENSIONS: Readonly<Record<string, readonly string[]>> = {
  platform: ['iOS', 'Android', 'Web', 'Roku', 'tvOS'],
  app_version: ['5.2.0', '5.1.3', '5.0.9'],
  geo_country_code: ['US', 'GB', 'DE', 'NO', 'BR'],
};

export interface FlowModel {
  id: string;
  label: string;
  metrics: string[];
  dimensions: string[];
  isConvivaDefined: boolean;
  createdAt: number;
  updatedAt: number;
}

const DEFINED_AT = 1_700_000_000_000;

/** The models every account starts with. */
export const DEFAULT_FLOW_MODELS: readonly FlowModel[] = [
  { id: 'fm_login_01', label: 'Login', metrics: [...FLOW_METRICS], dimensions: ['platform', 'app_version', 'geo_country_code'], isConvivaDefined: false, createdAt: DEFINED_AT, updatedAt: DEFINED_AT },
  { id: 'fm_signup_01', label: 'Sign-up', metrics: ['init', 'complete', 'success', 'error', 'percentage'], dimensions: ['platform'], isConvivaDefined: false, createdAt: DEFINED_AT, updatedAt: DEFINED_AT },
  { id: 'fm_checkout_01', label: 'Checkout', metrics: [...FLOW_METRICS], dimensions: ['platform', 'geo_country_code'], isConvivaDefined: false, createdAt: DEFINED_AT, updatedAt: DEFINED_AT },
  { id: 'fm_playback_start', label: 'Playback start', metrics: [...FLOW_METRICS], dimensions: ['platform', 'app_version'], isConvivaDefined: true, createdAt: DEFINED_AT, updatedAt: DEFINED_AT },
];

/** Settled values of one flow minute: counts are integers, avg_duration milliseconds, percentage 0..100. */
export interface FlowMinuteValues {
  init: number;
  complete: number;
  success: number;
  error: number;
  avg_duration: number;
  percentage: number;
}

/** One row a request selects: '' and weight 1 for the ungrouped total, `${dimension}=${value}` otherwise. */
export interface FlowRow {
  rowKey: string;
  weight: number;
  value?: string;
}

/** What went wrong, for the API (not_found 404, invalid 400) and the admin routes (also duplicate 409). */
export class FlowFakeError extends Error {
  constructor(readonly code: 'not_found' | 'invalid' | 'duplicate', message: string) {
    super(message);
  }
}

/** Flows per video attempt and the avg_duration range (ms) of each default model; others get hashed ones. */
const PROFILES: Record<string, { scale: number; durationMs: [number, number] }> = {
  fm_login_01: { scale: 0.2, durationMs: [1500, 4000] },
  fm_signup_01: { scale: 0.02, durationMs: [3000, 6000] },
  fm_checkout_01: { scale: 0.05, durationMs: [2500, 6000] },
  fm_playback_start: { scale: 0.9, durationMs: [800, 2500] },
};

function profile(seed: number, modelId: string): { scale: number; durationMs: [number, number] } {
  const known = PROFILES[modelId];
  if (known) return known;
  const h = hash(`${seed}|flow-profile|${modelId}`);
  const lo = 800 + Math.round(2200 * h);
  return { scale: 0.01 + 0.1 * h, durationMs: [lo, lo + 3000] };
}

/** Values of the flow minute starting at ts for one row, as they are once the minute has settled. */
export function flowMinuteValues(seed: number, account: string, modelId: string, rowKey: string, weight: number, ts: number): FlowMinuteValues {
  const n = (what: string) => hash(`${seed}|flow|${account}|${modelId}|${rowKey}|${ts}|${what}`);
  const p = profile(seed, modelId);
  const rowBias = hash(`${seed}|flow-bias|${modelId}|${rowKey}`);
  const init = Math.round(baseAttempts(seed, account, ts) * p.scale * weight * (0.9 + 0.2 * n('init')));
  const complete = Math.round(init * (0.8 + 0.15 * n('complete')));
  const error = Math.round(complete * (0.01 + 0.08 * rowBias * n('error')));
  const success = complete - error;
  const [lo, hi] = p.durationMs;
  return {
    init,
    complete,
    success,
    error,
    avg_duration: Math.round(lo + (hi - lo) * (0.5 * rowBias + 0.5 * n('duration'))),
    percentage: complete > 0 ? Math.round((success / complete) * 10000) / 100 : 0,
  };
}

const COUNTS = ['init', 'complete', 'success', 'error'] as const;

/**
 * Values as served at `now`, by servedValues' rule: a minute is final once now >= ts + 120 s, before
 * that each count is floored on its own (so complete may differ from success + error by one).
 */
export function flowServedValues(seed: number, account: string, modelId: string, rowKey: string, weight: number, ts: number, now: number): FlowMinuteValues {
  const full = flowMinuteValues(seed, account, modelId, rowKey, weight, ts);
  const progress = Math.min(1, Math.max(0, (now - ts) / 120_000));
  if (progress >= 1) return full;
  const out = { ...full };
  for (const k of COUNTS) out[k] = Math.floor(full[k] * progress);
  return out;
}

export interface FlowFakeOptions {
  seed: number;
  clock: Clock;
  accounts: SimAccount[];
}

const MAX_BODY = 5_700_000; // the Metrics V3 cap, assumed to hold here too
const MINUTE = 60_000;
const HOUR = 3_600_000;
const HISTORY_MS = 7 * 24 * HOUR;

function timestamp(ms: number): { epoch_ms: number; iso_date: string } {
  return { epoch_ms: ms, iso_date: new Date(ms).toISOString().replace('.000Z', 'Z') };
}

function modelJson(m: FlowModel) {
  return {
    id: m.id, label: m.label, metrics: m.metrics, dimensions: m.dimensions, is_conviva_defined: m.isConvivaDefined,
    created_at: timestamp(m.createdAt), updated_at: timestamp(m.updatedAt),
  };
}

function copy(m: FlowModel): FlowModel {
  return { ...m, metrics: [...m.metrics], dimensions: [...m.dimensions] };
}

/** The DPI Flow API of every simulated account, with models that the admin routes can change. */
export class FlowFake {
  private readonly byAccount = new Map<string, FlowModel[]>();
  private readonly weights = new Map<string, Map<string, number>>();

  constructor(private readonly o: FlowFakeOptions) {
    for (const a of o.accounts) this.byAccount.set(a.name, DEFAULT_FLOW_MODELS.map(copy));
    for (const [key, values] of Object.entries(FLOW_DIMENSIONS)) this.weights.set(key, weights(o.seed, { key, values: [...values] }));
  }

  /** The account's models, as copies. */
  models(account: string): FlowModel[] {
    return this.list(account).map(copy);
  }

  /** Adds a model to one account, or to all when none is named; a duplicate id adds it nowhere. */
  addModel(model: FlowModel, account?: string): void {
    if (!/^[A-Za-z0-9_.-]+$/.test(model.id)) throw new FlowFakeError('invalid', `model id ${JSON.stringify(model.id)}: letters, digits, _ . - only`);
    if (model.metrics.length === 0) throw new FlowFakeError('invalid', `model ${model.id}: at least one metric`);
    for (const m of model.metrics) if (!(FLOW_METRICS as readonly string[]).includes(m)) throw new FlowFakeError('invalid', `model ${model.id}: unknown metric ${m}`);
    for (const d of model.dimensions) if (!FLOW_DIMENSIONS[d]) throw new FlowFakeError('invalid', `model ${model.id}: unknown dimension ${d}`);
    const lists = this.targets(account);
    if (lists.some((l) => l.some((m) => m.id === model.id))) throw new FlowFakeError('duplicate', `model ${model.id} exists`);
    for (const l of lists) l.push(copy(model));
  }

  /** Relabels a model (one account, or every account that has it); its updatedAt becomes now. */
  renameModel(id: string, label: string, account?: string): void {
    const found = this.targets(account).flatMap((l) => l.filter((m) => m.id === id));
    if (found.length === 0) throw new FlowFakeError('not_found', `no flow model ${id}`);
    const now = this.o.clock.now();
    for (const m of found) {
      m.label = label;
      m.updatedAt = now;
    }
  }

  /** Deletes a model (one account, or every account that has it). */
  deleteModel(id: string, account?: string): void {
    let deleted = false;
    for (const l of this.targets(account)) {
      const i = l.findIndex((m) => m.id === id);
      if (i >= 0) {
        l.splice(i, 1);
        deleted = true;
      }
    }
    if (!deleted) throw new FlowFakeError('not_found', `no flow model ${id}`);
  }

  /** The rows a request for the model selects: the total, or one per value of `dimension`. */
  rows(account: string, modelId: string, dimension?: string): FlowRow[] {
    const model = this.model(account, modelId);
    if (dimension === undefined) return [{ rowKey: '', weight: 1 }];
    if (!model.dimensions.includes(dimension)) throw new FlowFakeError('invalid', `flow model ${modelId} has no dimension ${dimension}`);
    const w = this.weights.get(dimension)!;
    return FLOW_DIMENSIONS[dimension]!.map((value) => ({ rowKey: `${dimension}=${value}`, weight: w.get(value)!, value }));
  }

  /** Serves one authenticated request below /flow-data, with Metrics V3's error answers. */
  handle(req: Request, res: Response, path: string, account: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.status(405).set('Allow', 'GET, HEAD').json({ name: 'MethodNotAllowed', message: 'the Flow API is read-only' });
      return;
    }
    try {
      const text = JSON.stringify(this.route(path, account));
      if (Buffer.byteLength(text) > MAX_BODY) {
        res.status(413).json({ name: 'PayloadTooLarge', message: `response over ${MAX_BODY} bytes; narrow the query` });
        return;
      }
      res.status(200).type('application/json').send(text);
    } catch (e) {
      if (!(e instanceof FlowFakeError)) throw e;
      if (e.code === 'not_found') res.status(404).json({ name: 'NotFound', message: e.message });
      else res.status(400).json({ name: 'InvalidParameter', message: e.message });
    }
  }

  /** Mounts /conviva/flow-models (list, add, rename, delete) on the simulator's admin router. */
  admin(router: Router): void {
    const answer = (res: Response, act: () => void) => {
      try {
        act();
      } catch (e) {
        if (!(e instanceof FlowFakeError)) throw e;
        res.status(({ not_found: 404, invalid: 400, duplicate: 409 } as const)[e.code]).json({ message: e.message });
      }
    };
    const accountOf = (v: unknown): string | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw new FlowFakeError('invalid', 'account: expected a string');
      return v;
    };
    router.get('/conviva/flow-models', (req, res) => answer(res, () => {
      const account = accountOf(req.query.account);
      if (account === undefined) throw new FlowFakeError('invalid', 'account: required query parameter');
      res.json({ flow_models: this.list(account).map(modelJson) });
    }));
    router.post('/conviva/flow-models', (req, res) => answer(res, () => {
      const body: Record<string, unknown> = req.body ?? {};
      const model = this.parseModel(body.model);
      this.addModel(model, accountOf(body.account));
      res.status(201).json(modelJson(model));
    }));
    router.patch('/conviva/flow-models/:id', (req, res) => answer(res, () => {
      const body: Record<string, unknown> = req.body ?? {};
      if (typeof body.label !== 'string' || body.label === '') throw new FlowFakeError('invalid', 'label: required string');
      this.renameModel(req.params.id, body.label, accountOf(body.account));
      res.status(204).end();
    }));
    router.delete('/conviva/flow-models/:id', (req, res) => answer(res, () => {
      this.deleteModel(req.params.id, accountOf(req.query.account));
      res.status(204).end();
    }));
  }

  private list(account: string): FlowModel[] {
    const l = this.byAccount.get(account);
    if (!l) throw new FlowFakeError('not_found', `no account ${account}`);
    return l;
  }

  private targets(account?: string): FlowModel[][] {
    return account === undefined ? [...this.byAccount.values()] : [this.list(account)];
  }

  private model(account: string, id: string): FlowModel {
    const m = this.list(account).find((x) => x.id === id);
    if (!m) throw new FlowFakeError('not_found', `no flow model ${id}`);
    return m;
  }

  /** An admin body's model in the API's spelling; created and updated now. */
  private parseModel(input: unknown): FlowModel {
    if (!input || typeof input !== 'object') throw new FlowFakeError('invalid', 'model: required object');
    const m = input as Record<string, unknown>;
    const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
    if (typeof m.id !== 'string') throw new FlowFakeError('invalid', 'model.id: required string');
    if (typeof m.label !== 'string' || m.label === '') throw new FlowFakeError('invalid', 'model.label: required string');
    if (!strings(m.metrics)) throw new FlowFakeError('invalid', 'model.metrics: required list of strings');
    if (!strings(m.dimensions)) throw new FlowFakeError('invalid', 'model.dimensions: required list of strings');
    if (m.is_conviva_defined !== undefined && typeof m.is_conviva_defined !== 'boolean') throw new FlowFakeError('invalid', 'model.is_conviva_defined: expected a boolean');
    const now = this.o.clock.now();
    return {
      id: m.id, label: m.label, metrics: m.metrics as string[], dimensions: m.dimensions as string[],
      isConvivaDefined: m.is_conviva_defined === true, createdAt: now, updatedAt: now,
    };
  }

  private route(path: string, account: string): unknown {
    const parts = path.split('/').filter(Boolean);
    if (parts.length === 2 && parts[0] === 'metadata' && parts[1] === 'flow-models') return { flow_models: this.list(account).map(modelJson) };
    const [kind, id, window, groupBy, dimension] = parts;
    const grouped = parts.length === 5 && groupBy === 'group-by';
    if ((kind !== 'real-time-metrics' && kind !== 'metrics') || (parts.length !== 3 && !grouped)) throw new FlowFakeError('not_found', `no such path ${path}`);
    const model = this.model(account, id!);
    const rows = this.rows(account, model.id, grouped ? dimension : undefined);
    const now = this.o.clock.now();
    const starts = kind === 'real-time-metrics' ? this.realtimeStarts(window!, now) : this.historicalStarts(window!, now);
    const metricsOf = (r: FlowRow, ts: number) => {
      const v = flowServedValues(this.o.seed, account, model.id, r.rowKey, r.weight, ts, now);
      return Object.fromEntries(model.metrics.map((k) => [k, k === 'avg_duration' || k === 'percentage' ? { value: v[k] } : { count: v[k as FlowMetric] }]));
    };
    return {
      time_series: starts.map((ts) => (grouped
        ? { timestamp: timestamp(ts), dimensional_data: rows.map((r) => ({ dimension: { key: dimension, value: r.value }, metrics: metricsOf(r, ts) })) }
        : { timestamp: timestamp(ts), metrics: metricsOf(rows[0]!, ts) })),
    };
  }

  /** last_{N}_minutes: the current minute (partial) and the N-1 before it. */
  private realtimeStarts(window: string, now: number): number[] {
    const m = /^last_(\d{1,2})_minutes$/.exec(window);
    const n = m ? Number(m[1]) : 0;
    if (n < 1 || n > 15) throw new FlowFakeError('invalid', `relative_time_interval ${window}: last_N_minutes with N 1..15`);
    const minuteNow = Math.floor(now / MINUTE) * MINUTE;
    return Array.from({ length: n }, (_, i) => minuteNow - (n - 1 - i) * MINUTE);
  }

  /** {start}_to_{end} in epoch ms: minutes starting in [start, min(end, now)), at most an hour, at most 7 days back. */
  private historicalStarts(window: string, now: number): number[] {
    const m = /^(\d+)_to_(\d+)$/.exec(window);
    if (!m) throw new FlowFakeError('invalid', `time range ${window}: {start_epoch_ms}_to_{end_epoch_ms}`);
    const start = Number(m[1]);
    const end = Number(m[2]);
    if (end <= start) throw new FlowFakeError('invalid', 'end must be after start');
    if (end - start > HOUR) throw new FlowFakeError('invalid', 'one query spans at most 1 hour');
    if (start < now - HISTORY_MS) throw new FlowFakeError('invalid', 'historical data covers the last 7 days');
    const starts: number[] = [];
    for (let t = Math.ceil(start / MINUTE) * MINUTE; t < Math.min(end, now); t += MINUTE) starts.push(t);
    return starts;
  }
}
