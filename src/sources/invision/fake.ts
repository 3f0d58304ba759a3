/**
 * Profitbase InVision's fake (upstream-apis.md section 4) under /invision: the Data Flow execution
 * API (start a run, read its status) and the Monitoring log API, plus admin routes under
 * /_admin/invision to change the data flows and list every run. Everything is computed from the
 * seed and the injected clock when asked; there are no timers.
 */
import type { Request, Response, Router } from 'express';
import type { Clock } from '../../engine/clock.js';
import type { Fake, FakeOptions } from '../../simulator/fake.js';
import {
  DEMO_DATAFLOWS, LOG_LEVELS, monitoringRows, parseLogTime, planRun, statusAt,
  type InvisionFlow, type InvisionRunPlan, type LogLevel, type MonitoringQuery, type MonitoringRow, type RunStatus,
} from './fake-data.js';

export {
  DEMO_DATAFLOWS, formatLogTime, monitoringRows, parseLogTime, MONITORING_LATE_SHARE, MONITORING_MAX_LATE_MS, MONITORING_RETENTION_MS,
  type InvisionFlow, type InvisionRunPlan, type LogLevel, type MonitoringLog, type MonitoringQuery, type MonitoringRow, type RunStatus,
} from './fake-data.js';

/** The key of the Data Flow API in the demo config and the tests. */
export const INVISION_DEMO_API_KEY = 'demo-invision-key';
/** The Monitoring API's own key in the demo config and the tests. */
export const INVISION_DEMO_MONITORING_KEY = 'demo-monitoring-key';

const API = '/invision/api/pub/v1/dataflows';
const MONITORING = '/invision/api/v1/monitoring';

export interface InvisionFakeOptions {
  seed: number;
  clock: Clock;
  /** Default INVISION_DEMO_API_KEY. */
  apiKey?: string;
  /** Default INVISION_DEMO_MONITORING_KEY. */
  monitoringKey?: string;
  /** Default DEMO_DATAFLOWS. */
  flows?: readonly InvisionFlow[];
  /** Whether some Monitoring rows are listed late (default true). */
  lateRows?: boolean;
}

/** A change to a data flow; a duration given as one number is fixed, as [min, max] drawn per run. */
export interface InvisionFlowPatch {
  name?: string;
  pendingMs?: number | [number, number];
  runningMs?: number | [number, number];
  failureShare?: number;
  stuckShare?: number;
}

/** A run as it stands at the time asked. */
export interface InvisionRun extends InvisionRunPlan {
  status: RunStatus;
  /** When it ended, once it has; null before that and forever for a stuck run. */
  finishedAt: number | null;
}

/** What went wrong: not_found answers 404, invalid 400. */
export class InvisionFakeError extends Error {
  constructor(readonly code: 'not_found' | 'invalid', message: string) {
    super(message);
  }
}

/** A flow created by setFlow without those fields gets these. */
const NEW_FLOW: Omit<InvisionFlow, 'id' | 'name'> = { pendingMs: [5_000, 15_000], runningMs: [20_000, 60_000], failureShare: 0, stuckShare: 0 };

function copy(f: InvisionFlow): InvisionFlow {
  return { ...f, pendingMs: [...f.pendingMs], runningMs: [...f.runningMs] };
}

/** Profitbase InVision: data flows whose runs go Pending -> Running -> Succeeded/Failed on the clock, and a Monitoring log. */
export class InvisionFake implements Fake {
  private readonly flowsById = new Map<string, InvisionFlow>();
  private readonly started: InvisionRunPlan[] = [];
  private readonly runsById = new Map<string, InvisionRunPlan>();
  /** Runs started per flow id; kept when a flow is removed, so its run numbers are never reused. */
  private readonly seqs = new Map<string, number>();
  private readonly apiKey: string;
  private readonly monitoringKey: string;

  constructor(private readonly o: InvisionFakeOptions) {
    this.apiKey = o.apiKey ?? INVISION_DEMO_API_KEY;
    this.monitoringKey = o.monitoringKey ?? INVISION_DEMO_MONITORING_KEY;
    for (const f of o.flows ?? DEMO_DATAFLOWS) this.setFlow(f.id, f);
  }

  /** The simulator's hook: the demo flows and keys; lateRevisions false turns late Monitoring rows off. */
  static create(options: FakeOptions): InvisionFake {
    return new InvisionFake({ seed: options.seed, clock: options.clock, lateRows: options.lateRevisions ?? true });
  }

  /** The data flows, as copies. */
  flows(): InvisionFlow[] {
    return [...this.flowsById.values()].map(copy);
  }

  /** Creates or changes a data flow; runs already started keep the behaviour they started with. */
  setFlow(id: string, patch: InvisionFlowPatch): InvisionFlow {
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(id)) throw new InvisionFakeError('invalid', `data flow id ${JSON.stringify(id)}: 1-100 letters, digits, _ . -`);
    const range = (v: number | [number, number] | undefined, key: string, old: [number, number]): [number, number] => {
      if (v === undefined) return [...old];
      const r: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
      if (!r.every((x) => Number.isInteger(x) && x >= 0) || r[0] > r[1]) throw new InvisionFakeError('invalid', `${key}: milliseconds, or [min, max] with 0 <= min <= max`);
      return r;
    };
    const share = (v: number | undefined, key: string, old: number): number => {
      if (v === undefined) return old;
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new InvisionFakeError('invalid', `${key}: a share 0..1`);
      return v;
    };
    const old = this.flowsById.get(id) ?? { id, name: id, ...NEW_FLOW };
    if (patch.name !== undefined && (typeof patch.name !== 'string' || patch.name === '')) throw new InvisionFakeError('invalid', 'name: a non-empty string');
    const flow: InvisionFlow = {
      id,
      name: patch.name ?? old.name,
      pendingMs: range(patch.pendingMs, 'pendingMs', old.pendingMs),
      runningMs: range(patch.runningMs, 'runningMs', old.runningMs),
      failureShare: share(patch.failureShare, 'failureShare', old.failureShare),
      stuckShare: share(patch.stuckShare, 'stuckShare', old.stuckShare),
    };
    if (flow.failureShare + flow.stuckShare > 1) throw new InvisionFakeError('invalid', 'failureShare + stuckShare: at most 1');
    this.flowsById.set(id, flow);
    return copy(flow);
  }

  /** Removes a data flow: the API answers 404 for it and its runs; runs() and the log keep them. */
  removeFlow(id: string): void {
    if (!this.flowsById.delete(id)) throw new InvisionFakeError('not_found', `no data flow ${id}`);
  }

  /** Starts a run now, as POST .../start does. */
  startRun(dataflowId: string): { runId: string; status: RunStatus } {
    const flow = this.flowsById.get(dataflowId);
    if (!flow) throw new InvisionFakeError('not_found', `Data flow ${dataflowId} not found`);
    const seq = (this.seqs.get(dataflowId) ?? 0) + 1;
    this.seqs.set(dataflowId, seq);
    const run = planRun(this.o.seed, flow, seq, this.started.length + 1, this.o.clock.now());
    this.started.push(run);
    this.runsById.set(run.runId, run);
    return { runId: run.runId, status: statusAt(run, run.startedAt) };
  }

  /** A run's status now, as GET .../runs/{runId}/status answers it. */
  runStatus(dataflowId: string, runId: string): { runId: string; status: RunStatus } {
    if (!this.flowsById.has(dataflowId)) throw new InvisionFakeError('not_found', `Data flow ${dataflowId} not found`);
    const run = this.runsById.get(runId);
    if (!run || run.dataflowId !== dataflowId) throw new InvisionFakeError('not_found', `Run ${runId} of data flow ${dataflowId} not found`);
    return { runId, status: statusAt(run, this.o.clock.now()) };
  }

  /** Every run started, oldest first, as it stands at `now` (default the clock's). */
  runs(now = this.o.clock.now()): InvisionRun[] {
    return this.started.map((r) => {
      const status = statusAt(r, now);
      return { ...r, status, finishedAt: status === 'Succeeded' || status === 'Failed' ? r.finishesAt : null };
    });
  }

  /** The Monitoring rows listed for a window at `now` (default the clock's): monitoringRows over this fake's runs. */
  monitoring(q: Omit<MonitoringQuery, 'now'> & { now?: number }): MonitoringRow[] {
    return monitoringRows({ seed: this.o.seed, runs: this.started, lateRows: this.o.lateRows ?? true }, { ...q, now: q.now ?? this.o.clock.now() });
  }

  mount(router: Router): void {
    router.post(`${API}/:dataflowId/start`, (req, res) => this.answer(req, res, this.apiKey, (q) => {
      const wait = q.get('await');
      // A run can take hours: the exporter never waits, and the fake refuses to.
      if (wait !== null && wait.toLowerCase() !== 'false') throw new InvisionFakeError('invalid', 'await=true is not supported by the simulator; poll the run status');
      return this.startRun(String(req.params.dataflowId));
    }));
    router.get(`${API}/:dataflowId/runs/:runId/status`, (req, res) => this.answer(req, res, this.apiKey, () => this.runStatus(String(req.params.dataflowId), String(req.params.runId))));
    router.get(MONITORING, (req, res) => this.answer(req, res, this.monitoringKey, (q) => this.monitoring(this.parseMonitoringQuery(q))));
  }

  /** /_admin/invision/flows (list; PUT :id creates or changes one, DELETE :id removes it) and /_admin/invision/runs (every run now). */
  admin(router: Router): void {
    const act = (res: Response, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        if (!(e instanceof InvisionFakeError)) throw e;
        res.status(e.code === 'not_found' ? 404 : 400).json({ message: e.message });
      }
    };
    router.get('/invision/flows', (_req, res) => {
      res.json(this.flows());
    });
    router.put('/invision/flows/:id', (req, res) => act(res, () => {
      const body: unknown = req.body;
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new InvisionFakeError('invalid', 'expected an object: name, pendingMs, runningMs, failureShare, stuckShare');
      const b = body as Record<string, unknown>;
      const unknown = Object.keys(b).find((k) => !['name', 'pendingMs', 'runningMs', 'failureShare', 'stuckShare'].includes(k));
      if (unknown !== undefined) throw new InvisionFakeError('invalid', `${unknown}: unknown field`);
      for (const k of ['pendingMs', 'runningMs'] as const) {
        const v = b[k];
        if (v !== undefined && typeof v !== 'number' && !(Array.isArray(v) && v.length === 2)) throw new InvisionFakeError('invalid', `${k}: milliseconds, or [min, max] with 0 <= min <= max`);
      }
      const created = !this.flowsById.has(String(req.params.id));
      const flow = this.setFlow(String(req.params.id), b as InvisionFlowPatch);
      res.status(created ? 201 : 200).json(flow);
    }));
    router.delete('/invision/flows/:id', (req, res) => act(res, () => {
      this.removeFlow(String(req.params.id));
      res.status(204).end();
    }));
    router.get('/invision/runs', (_req, res) => {
      res.json(this.runs());
    });
  }

  /** Checks the key (x-api-key header, else api_key query parameter), then answers what `fn` returns. */
  private answer(req: Request, res: Response, key: string, fn: (q: URLSearchParams) => unknown): void {
    const q = new URL(req.originalUrl, 'http://sim').searchParams;
    const header = req.headers['x-api-key'];
    const given = typeof header === 'string' ? header : q.get('api_key');
    if (given !== key) {
      res.status(401).json({ message: 'Unauthorized' });
      return;
    }
    try {
      res.status(200).json(fn(q));
    } catch (e) {
      if (!(e instanceof InvisionFakeError)) throw e;
      res.status(e.code === 'not_found' ? 404 : 400).json({ message: e.message });
    }
  }

  private parseMonitoringQuery(q: URLSearchParams): Omit<MonitoringQuery, 'now'> {
    const time = (name: string): number => {
      const v = q.get(name);
      if (v === null) throw new InvisionFakeError('invalid', `${name}: required, yyyy.MM.dd HH:mm:ss (UTC)`);
      const ms = parseLogTime(v);
      if (ms === undefined) throw new InvisionFakeError('invalid', `${name}: ${JSON.stringify(v)} is not yyyy.MM.dd HH:mm:ss (UTC)`);
      return ms;
    };
    const fromMs = time('fromDateTimeUtc');
    const toMs = time('toDateTimeUtc');
    if (toMs < fromMs) throw new InvisionFakeError('invalid', 'toDateTimeUtc: before fromDateTimeUtc');
    // An empty filter is no filter.
    const level = q.get('logLevel') || undefined;
    if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) throw new InvisionFakeError('invalid', `logLevel: one of ${LOG_LEVELS.join(', ')}`);
    return { fromMs, toMs, logEventType: q.get('logEventType') || undefined, logLevel: level as LogLevel | undefined };
  }
}
