import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import type { AnySource } from '../../src/engine/source.js';
import type { FakeOptions } from '../../src/simulator/fake.js';
import { Simulator } from '../../src/simulator/server.js';
import {
  DEMO_DATAFLOWS, formatLogTime, INVISION_DEMO_API_KEY, INVISION_DEMO_MONITORING_KEY, InvisionFake, monitoringRows,
  MONITORING_MAX_LATE_MS, MONITORING_RETENTION_MS, parseLogTime, type InvisionRun, type MonitoringRow,
} from '../../src/sources/invision/fake.js';

const SEED = 11;
const T = Date.UTC(2026, 10, 23, 20, 0, 0) + 250;
const MINUTE = 60_000;
const API = '/invision/api/pub/v1/dataflows';
const KEY = { 'x-api-key': INVISION_DEMO_API_KEY };
const MON_KEY = { 'x-api-key': INVISION_DEMO_MONITORING_KEY };
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const LOG_TIME = /^\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2}$/;

// The source is not registered yet: a stand-in with the one hook the simulator calls.
const stub = (): AnySource => ({ name: 'invision', fake: (o: FakeOptions) => InvisionFake.create(o) }) as unknown as AnySource;

let clock: ManualClock;
let sim: Simulator;
let fake: InvisionFake;

async function start(options: { lateRevisions?: boolean } = {}) {
  clock = new ManualClock(T);
  sim = new Simulator({ clock, seed: SEED, sources: [stub()], ...options });
  fake = sim.fake<InvisionFake>('invision');
  await sim.listen();
}

beforeEach(async () => {
  await start();
});
afterEach(async () => {
  await sim.close();
});

async function call(method: string, path: string, headers: Record<string, string> = KEY, body?: unknown) {
  const res = await fetch(`${sim.url}${path}`, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed as Record<string, unknown>, type: res.headers.get('content-type') ?? '' };
}

const startRun = (flow: string, query = '', headers: Record<string, string> = KEY) => call('POST', `${API}/${flow}/start${query}`, headers);
const status = (flow: string, runId: string, headers: Record<string, string> = KEY) => call('GET', `${API}/${flow}/runs/${runId}/status`, headers);
const runOf = (runId: string): InvisionRun => fake.runs().find((r) => r.runId === runId)!;

async function monitoring(params: Record<string, string>, headers: Record<string, string> = MON_KEY) {
  return call('GET', `/invision/api/v1/monitoring?${new URLSearchParams(params)}`, headers);
}

describe('InVision fake: data flow runs', () => {
  it('takes a run through Pending -> Running -> Succeeded on the clock, with durations from its flow', async () => {
    const r = await startRun('df-hourly-sales');
    expect(r.status).toBe(200);
    expect(r.type).toContain('application/json');
    expect(Object.keys(r.body)).toEqual(['runId', 'status']);
    expect(r.body.status).toBe('Pending');
    const runId = r.body.runId as string;
    expect(runId).toMatch(GUID);

    const run = runOf(runId);
    expect(run).toMatchObject({ dataflowId: 'df-hourly-sales', dataflowName: 'Hourly sales', startedAt: T, outcome: 'Succeeded', status: 'Pending', finishedAt: null });
    expect(run.runningAt - T).toBeGreaterThanOrEqual(5_000);
    expect(run.runningAt - T).toBeLessThanOrEqual(10_000);
    expect(run.finishesAt! - run.runningAt).toBeGreaterThanOrEqual(20_000);
    expect(run.finishesAt! - run.runningAt).toBeLessThanOrEqual(40_000);

    const at = async (ms: number) => {
      clock.set(ms);
      return (await status('df-hourly-sales', runId)).body;
    };
    expect(await at(T)).toEqual({ runId, status: 'Pending' });
    expect(await at(run.runningAt - 1)).toEqual({ runId, status: 'Pending' });
    expect(await at(run.runningAt)).toEqual({ runId, status: 'Running' });
    expect(await at(run.finishesAt! - 1)).toEqual({ runId, status: 'Running' });
    expect((await call('GET', '/_admin/invision/runs', {})).body).toEqual([expect.objectContaining({ runId, status: 'Running', finishedAt: null })]);
    expect(await at(run.finishesAt!)).toEqual({ runId, status: 'Succeeded' });
    expect(await at(run.finishesAt! + 86_400_000)).toEqual({ runId, status: 'Succeeded' });
    expect((await call('GET', '/_admin/invision/runs', {})).body).toEqual([
      expect.objectContaining({ runId, dataflowId: 'df-hourly-sales', startedAt: T, status: 'Succeeded', finishedAt: run.finishesAt }),
    ]);
  });

  it('has four demo flows whose runs end within two minutes; admin-set durations are obeyed exactly', async () => {
    expect(DEMO_DATAFLOWS.map((f) => [f.id, f.name])).toEqual([
      ['df-nightly-load', 'Nightly load'], ['df-hourly-sales', 'Hourly sales'], ['df-budget-sync', 'Budget sync'], ['df-legacy-export', 'Legacy export'],
    ]);
    for (const f of DEMO_DATAFLOWS) expect(f.pendingMs[1] + f.runningMs[1]).toBeLessThanOrEqual(2 * MINUTE);
    expect(fake.flows()).toEqual(DEMO_DATAFLOWS);

    const put = await call('PUT', '/_admin/invision/flows/df-nightly-load', {}, { pendingMs: 10_000, runningMs: [30_000, 30_000] });
    expect(put).toMatchObject({ status: 200, body: { id: 'df-nightly-load', name: 'Nightly load', pendingMs: [10_000, 10_000], runningMs: [30_000, 30_000] } });
    const runId = (await startRun('df-nightly-load')).body.runId as string;
    clock.set(T + 9_999);
    expect((await status('df-nightly-load', runId)).body.status).toBe('Pending');
    clock.set(T + 10_000);
    expect((await status('df-nightly-load', runId)).body.status).toBe('Running');
    clock.set(T + 40_000);
    expect((await status('df-nightly-load', runId)).body.status).toBe('Succeeded');
  });

  it('fails about 30% of Budget sync runs, decided at start; a flow set to fail always fails', () => {
    for (let i = 0; i < 200; i++) {
      fake.startRun('df-budget-sync');
      clock.advance(1_000);
    }
    // A change after the start does not touch runs already started.
    fake.setFlow('df-budget-sync', { failureShare: 1 });
    clock.advance(2 * MINUTE);
    const runs = fake.runs();
    const failed = runs.filter((r) => r.status === 'Failed').length;
    expect(runs.filter((r) => r.status === 'Succeeded').length + failed).toBe(200);
    expect(failed / 200).toBeGreaterThan(0.2);
    expect(failed / 200).toBeLessThan(0.4);
    for (const r of runs) expect(r.finishedAt).toBe(r.finishesAt);

    const { runId } = fake.startRun('df-budget-sync');
    clock.advance(2 * MINUTE);
    expect(fake.runStatus('df-budget-sync', runId)).toEqual({ runId, status: 'Failed' });
  });

  it('leaves some Legacy export runs Running forever; a flow set to stick always sticks', async () => {
    for (let i = 0; i < 100; i++) {
      fake.startRun('df-legacy-export');
      clock.advance(1_000);
    }
    clock.advance(30 * 86_400_000);
    const runs = fake.runs();
    const stuck = runs.filter((r) => r.status === 'Running');
    expect(stuck.length).toBeGreaterThan(10);
    expect(stuck.length).toBeLessThan(40);
    for (const r of stuck) expect(r).toMatchObject({ outcome: 'Stuck', finishesAt: null, finishedAt: null });
    expect(runs.filter((r) => r.status === 'Succeeded').length).toBe(100 - stuck.length);

    expect((await call('PUT', '/_admin/invision/flows/df-legacy-export', {}, { stuckShare: 1 })).status).toBe(200);
    const runId = (await startRun('df-legacy-export')).body.runId as string;
    clock.advance(365 * 86_400_000);
    expect((await status('df-legacy-export', runId)).body).toEqual({ runId, status: 'Running' });
    expect(runOf(runId)).toMatchObject({ status: 'Running', finishedAt: null, outcome: 'Stuck' });
  });

  it('never reuses a run id, and the same seed and clock give the same runs', () => {
    const flows = DEMO_DATAFLOWS.map((f) => f.id);
    const replay = (seed: number) => {
      const f = new InvisionFake({ seed, clock: new ManualClock(T) });
      return Array.from({ length: 40 }, (_, i) => f.startRun(flows[i % flows.length]!).runId);
    };
    const ids = Array.from({ length: 40 }, (_, i) => fake.startRun(flows[i % flows.length]!).runId);
    expect(new Set(ids).size).toBe(40);
    for (const id of ids) expect(id).toMatch(GUID);
    expect(replay(SEED)).toEqual(ids);
    expect(replay(SEED + 1).filter((id) => ids.includes(id))).toEqual([]);

    // A flow removed and added again goes on counting its runs.
    fake.removeFlow('df-hourly-sales');
    fake.setFlow('df-hourly-sales', { name: 'Hourly sales' });
    const again = fake.startRun('df-hourly-sales').runId;
    expect(ids).not.toContain(again);
    expect(runOf(again).seq).toBe(11);
  });

  it('answers 404 for an unknown data flow or run, and for the runs of a removed flow', async () => {
    const missing = await startRun('df-nope');
    expect(missing).toMatchObject({ status: 404, body: { message: expect.stringContaining('df-nope') } });
    expect(missing.type).toContain('application/json');
    const runId = (await startRun('df-hourly-sales')).body.runId as string;
    expect((await status('df-hourly-sales', '00000000-0000-4000-8000-000000000001')).status).toBe(404);
    expect((await status('df-nightly-load', runId)).status).toBe(404);
    expect((await status('df-nope', runId)).status).toBe(404);

    expect((await call('DELETE', '/_admin/invision/flows/df-hourly-sales', {})).status).toBe(204);
    expect((await status('df-hourly-sales', runId)).status).toBe(404);
    expect((await startRun('df-hourly-sales')).status).toBe(404);
    // The oracle keeps it: it was started.
    expect(fake.runs().map((r) => r.runId)).toEqual([runId]);
  });

  it('requires the API key in x-api-key (or api_key): 401 otherwise, and starts nothing', async () => {
    for (const headers of [{}, { 'x-api-key': 'wrong' }, MON_KEY]) {
      expect(await startRun('df-hourly-sales', '', headers)).toMatchObject({ status: 401, body: { message: 'Unauthorized' } });
      expect((await status('df-hourly-sales', 'x', headers)).status).toBe(401);
    }
    expect(fake.runs()).toEqual([]);
    const viaQuery = await startRun('df-hourly-sales', `?api_key=${INVISION_DEMO_API_KEY}`, {});
    expect(viaQuery).toMatchObject({ status: 200, body: { status: 'Pending' } });
    expect((await status('df-hourly-sales', viaQuery.body.runId as string, {})).status).toBe(401);
  });

  it('refuses await=true with 400 (the exporter never waits)', async () => {
    for (const q of ['?await=true', '?await=TRUE', '?await=1']) {
      expect(await startRun('df-hourly-sales', q)).toMatchObject({ status: 400, body: { message: expect.stringContaining('await') } });
    }
    expect(fake.runs()).toEqual([]);
    expect((await startRun('df-hourly-sales', '?await=false')).status).toBe(200);
  });

  it('is behind the simulator\'s fault switches; its admin routes are not', async () => {
    sim.faults.set([{ kind: 'status', status: 500, match: '/invision/', remaining: 1 }]);
    expect((await startRun('df-hourly-sales')).status).toBe(500);
    expect(fake.runs()).toEqual([]);
    sim.faults.set([{ kind: 'status', status: 503 }]);
    expect((await call('GET', '/_admin/invision/flows', {})).status).toBe(200);
    sim.faults.clear();
    expect((await startRun('df-hourly-sales')).status).toBe(200);
    expect(sim.requests.filter((r) => r.path.startsWith(API)).map((r) => [r.method, r.status])).toEqual([['POST', 500], ['POST', 200]]);
  });

  it('admin: lists, adds, changes and removes flows; refuses bad changes by name', async () => {
    expect((await call('GET', '/_admin/invision/flows', {})).body).toEqual(DEMO_DATAFLOWS);
    const added = await call('PUT', '/_admin/invision/flows/df-new', {}, { name: 'New flow', failureShare: 0.5 });
    expect(added).toMatchObject({ status: 201, body: { id: 'df-new', name: 'New flow', failureShare: 0.5, stuckShare: 0, pendingMs: [5_000, 15_000] } });
    expect((await startRun('df-new')).status).toBe(200);

    const bad = async (id: string, body: unknown, message: string) => {
      expect(await call('PUT', `/_admin/invision/flows/${id}`, {}, body)).toMatchObject({ status: 400, body: { message: expect.stringContaining(message) } });
    };
    await bad('df-new', { failureShare: 2 }, 'failureShare');
    await bad('df-new', { pendingMs: [10, 5] }, 'pendingMs');
    await bad('df-new', { runningMs: 'long' }, 'runningMs');
    await bad('df-new', { runningMs: -1 }, 'runningMs');
    await bad('df-new', { stuckShare: 0.6 }, 'failureShare + stuckShare');
    await bad('df-new', { colour: 'red' }, 'colour');
    await bad('df-new', { name: '' }, 'name');
    await bad('bad%20id', {}, 'data flow id');
    await bad('df-new', [1], 'expected an object');
    expect(fake.flows().find((f) => f.id === 'df-new')).toMatchObject({ failureShare: 0.5, stuckShare: 0 });

    expect((await call('DELETE', '/_admin/invision/flows/df-none', {})).status).toBe(404);
    expect((await call('DELETE', '/_admin/invision/flows/df-new', {})).status).toBe(204);
    expect(fake.flows().map((f) => f.id)).toEqual(DEMO_DATAFLOWS.map((f) => f.id));
  });
});

describe('InVision fake: Monitoring log', () => {
  const window = (from: number, to: number, extra: Record<string, string> = {}) => ({ fromDateTimeUtc: formatLogTime(from), toDateTimeUtc: formatLogTime(to), ...extra });
  const HOUR_AGO = T - 250 - 60 * MINUTE;
  const oracle = (from: number, to: number, now: number, filter: { logEventType?: string; logLevel?: 'Error' | 'Warning' | 'Information' | 'Verbose' } = {}) =>
    monitoringRows({ seed: SEED, runs: fake.runs(), lateRows: true }, { fromMs: from, toMs: to, now, ...filter });

  it('requires its own key', async () => {
    for (const headers of [{}, { 'x-api-key': 'wrong' }, KEY]) {
      expect(await monitoring(window(HOUR_AGO, T), headers)).toMatchObject({ status: 401, body: { message: 'Unauthorized' } });
    }
    const ok = await monitoring(window(HOUR_AGO, T));
    expect(ok.status).toBe(200);
    expect(Array.isArray(ok.body)).toBe(true);
  });

  it('validates the time format, the window and the level filter (400)', async () => {
    const from = formatLogTime(HOUR_AGO);
    expect(from).toBe('2026.11.23 19:00:00');
    expect(parseLogTime(from)).toBe(HOUR_AGO);
    const refused = async (params: Record<string, string>, message: string) => {
      expect(await monitoring(params)).toMatchObject({ status: 400, body: { message: expect.stringContaining(message) } });
    };
    await refused({ toDateTimeUtc: from }, 'fromDateTimeUtc');
    await refused({ fromDateTimeUtc: from }, 'toDateTimeUtc');
    for (const bad of ['2026-11-23 19:00:00', '2026.11.23T19:00:00', '2026.11.23 19:00', '2026.02.30 00:00:00', '2026.11.23 24:00:00', '2026.11.23 19:00:00Z', ' 2026.11.23 19:00:00']) {
      await refused({ fromDateTimeUtc: bad, toDateTimeUtc: from }, 'fromDateTimeUtc');
    }
    await refused(window(T, HOUR_AGO), 'toDateTimeUtc');
    await refused(window(HOUR_AGO, T, { logLevel: 'Fatal' }), 'logLevel');
    expect(await monitoring(window(HOUR_AGO, HOUR_AGO))).toMatchObject({ status: 200, body: [] });
  });

  it('lists the rows of [from, to) written by now, ordered by rowid, in the API\'s shape', async () => {
    const from = HOUR_AGO;
    const to = T - 250 - 10 * MINUTE;
    const r = await monitoring(window(from, to));
    const rows = r.body as unknown as MonitoringRow[];
    // 1 to 4 a minute, some of the last two minutes' still to come
    expect(rows.length).toBeGreaterThan(50 * 1);
    expect(rows.length).toBeLessThanOrEqual(50 * 4);
    let last = -1;
    for (const row of rows) {
      expect(Object.keys(row)).toEqual(['rowid', 'data', 'level', 'timestamputc', 'logevent']);
      expect(row.timestamputc).toMatch(LOG_TIME);
      const ts = parseLogTime(row.timestamputc)!;
      expect(ts).toBeGreaterThanOrEqual(from);
      expect(ts).toBeLessThan(to);
      expect(['Error', 'Warning', 'Information', 'Verbose']).toContain(row.level);
      expect(typeof row.data).toBe('string');
      expect(Number.isSafeInteger(row.rowid)).toBe(true);
      expect(row.rowid).toBeGreaterThan(last);
      last = row.rowid;
    }
    expect(rows.some((row) => row.data.includes('\n'))).toBe(true);
    expect(new Set(rows.map((row) => row.logevent))).toEqual(new Set(['UserLogin', 'WebApiRequest', 'ScheduledJob', 'ApplicationError']));
    // Nothing from the future.
    const ahead = (await monitoring(window(T - 250, T - 250 + 60 * MINUTE))).body as unknown as MonitoringRow[];
    for (const row of ahead) expect(parseLogTime(row.timestamputc)!).toBeLessThanOrEqual(T);
  });

  it('filters by logEventType and logLevel (exact match)', async () => {
    fake.startRun('df-budget-sync');
    clock.advance(5 * MINUTE);
    const all = (await monitoring(window(HOUR_AGO, clock.now()))).body as unknown as MonitoringRow[];
    const only = async (extra: Record<string, string>) => (await monitoring(window(HOUR_AGO, clock.now(), extra))).body as unknown as MonitoringRow[];
    const errors = await only({ logLevel: 'Error' });
    expect(errors.length).toBeGreaterThan(0);
    expect(errors).toEqual(all.filter((row) => row.level === 'Error'));
    const runs = await only({ logEventType: 'DataFlowExecution' });
    expect(runs.length).toBeGreaterThan(0);
    expect(runs).toEqual(all.filter((row) => row.logevent === 'DataFlowExecution'));
    const appWarnings = await only({ logEventType: 'ApplicationError', logLevel: 'Warning' });
    expect(appWarnings).toEqual(all.filter((row) => row.logevent === 'ApplicationError' && row.level === 'Warning'));
    expect(await only({ logEventType: 'NoSuchEvent' })).toEqual([]);
    expect(await only({ logEventType: '', logLevel: '' })).toEqual(all);
  });

  it('writes a DataFlowExecution row when a run starts and when it ends (none for a stuck run)', async () => {
    fake.setFlow('df-budget-sync', { failureShare: 1 });
    fake.setFlow('df-legacy-export', { stuckShare: 1 });
    const ok = fake.startRun('df-hourly-sales').runId;
    const failed = fake.startRun('df-budget-sync').runId;
    const stuck = fake.startRun('df-legacy-export').runId;
    clock.advance(2 * MINUTE + MONITORING_MAX_LATE_MS);
    const rows = (await monitoring(window(T - 250, clock.now(), { logEventType: 'DataFlowExecution' }))).body as unknown as MonitoringRow[];
    const of = (id: string) => rows.filter((row) => row.data.includes(id));

    const okRun = runOf(ok);
    expect(of(ok).map((row) => [row.level, row.timestamputc])).toEqual([['Information', formatLogTime(okRun.startedAt)], ['Information', formatLogTime(okRun.finishesAt!)]]);
    expect(of(ok)[0]!.data).toBe(`Data flow "Hourly sales" (df-hourly-sales) run ${ok} started`);
    expect(of(ok)[1]!.data).toMatch(/succeeded after \d+ s$/);
    expect(of(failed).map((row) => row.level)).toEqual(['Information', 'Error']);
    expect(of(failed)[1]!.data).toContain('failed after');
    expect(of(stuck).map((row) => row.level)).toEqual(['Information']);
  });

  it('lists some rows late, by at most two minutes; a listed row never changes; overlapping readers see every row', () => {
    const from = T - 250;
    const to = from + 20 * MINUTE;
    const STEP = 5_000;
    const seen = new Map<number, { row: MonitoringRow; firstSeen: number }>();
    let previous: MonitoringRow[] = [];
    for (let now = from; now <= to + MONITORING_MAX_LATE_MS; now += STEP) {
      clock.set(now);
      // Runs started along the way write rows that must not move the rows already listed.
      if (now % MINUTE === from % MINUTE) fake.startRun(DEMO_DATAFLOWS[(now - from) / MINUTE % 4]!.id);
      const rows = fake.monitoring({ fromMs: from, toMs: to });
      const maxBefore = Math.max(-1, ...previous.map((row) => row.rowid));
      const listed = new Set(previous.map((row) => row.rowid));
      expect(rows.filter((row) => listed.has(row.rowid))).toEqual(previous);
      for (const row of rows) {
        if (seen.has(row.rowid)) continue;
        expect(row.rowid).toBeGreaterThan(maxBefore); // rowid grows with the time a row is written
        seen.set(row.rowid, { row, firstSeen: now });
      }
      previous = rows;
    }
    const delays = [...seen.values()].map(({ row, firstSeen }) => firstSeen - parseLogTime(row.timestamputc)!);
    for (const d of delays) expect(d).toBeLessThanOrEqual(MONITORING_MAX_LATE_MS + STEP);
    const late = delays.filter((d) => d > STEP).length;
    expect(late).toBeGreaterThan(0);
    expect(late).toBeLessThan(delays.length / 2);
    expect(seen.size).toBe(fake.monitoring({ fromMs: from, toMs: to }).length);

    // Readers polling once a minute up to the minute: one re-reading the last two minutes gets
    // every row; one reading each minute only once misses the late ones.
    const read = (overlap: number) => {
      const got = new Set<number>();
      for (let now = from + MINUTE; now <= to + MONITORING_MAX_LATE_MS; now += MINUTE) {
        for (const row of fake.monitoring({ fromMs: Math.max(from, now - MINUTE - overlap), toMs: Math.min(to, now), now })) got.add(row.rowid);
      }
      return got.size;
    };
    expect(read(MONITORING_MAX_LATE_MS)).toBe(seen.size);
    expect(read(0)).toBeLessThan(seen.size);
  });

  it('agrees with the oracle, monitoringRows, at any time and with any filter', async () => {
    fake.setFlow('df-budget-sync', { failureShare: 1 });
    for (const flow of ['df-budget-sync', 'df-hourly-sales', 'df-legacy-export']) {
      fake.startRun(flow);
      clock.advance(7_000);
    }
    const base = clock.now();
    for (const dt of [0, 30_000, 95_000, 4 * MINUTE]) {
      clock.set(base + dt);
      const now = clock.now();
      for (const filter of [{}, { logLevel: 'Error' }, { logEventType: 'DataFlowExecution' }] as Array<{ logLevel?: 'Error'; logEventType?: string }>) {
        const api = await monitoring(window(HOUR_AGO, now + 60 * MINUTE, { ...filter }));
        expect(api.body).toEqual(oracle(HOUR_AGO, now + 60 * MINUTE, now, filter));
      }
    }
    expect(fake.monitoring({ fromMs: HOUR_AGO, toMs: T })).toEqual(oracle(HOUR_AGO, T, clock.now()));
  });

  it('is the same for the same seed and different for another', () => {
    const read = (seed: number) => new InvisionFake({ seed, clock: new ManualClock(T) }).monitoring({ fromMs: HOUR_AGO, toMs: T });
    expect(read(SEED)).toEqual(fake.monitoring({ fromMs: HOUR_AGO, toMs: T }));
    expect(read(SEED + 1)).not.toEqual(read(SEED));
  });

  it('keeps a week of rows', () => {
    const rows = fake.monitoring({ fromMs: T - MONITORING_RETENTION_MS - 60 * MINUTE, toMs: T - MONITORING_RETENTION_MS + 60 * MINUTE });
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(parseLogTime(row.timestamputc)!).toBeGreaterThanOrEqual(T - MONITORING_RETENTION_MS);
  });

  it('lists every row once its timestamp has passed when the simulator has late revisions off', async () => {
    await sim.close();
    await start({ lateRevisions: false });
    const from = T - 250 - 30 * MINUTE;
    const to = T - 250;
    const listedOnTime = (f: InvisionFake) => {
      const rows = f.monitoring({ fromMs: from, toMs: to, now: to + MONITORING_MAX_LATE_MS });
      expect(rows.length).toBeGreaterThan(0);
      return rows.every((row) => f.monitoring({ fromMs: from, toMs: to, now: parseLogTime(row.timestamputc)! }).some((r) => r.rowid === row.rowid));
    };
    expect(listedOnTime(fake)).toBe(true);
    // With them on, some rows come after their time.
    expect(listedOnTime(new InvisionFake({ seed: SEED, clock }))).toBe(false);
  });
});
