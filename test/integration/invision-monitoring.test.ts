import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/load.js';
import type { ManualClock } from '../../src/engine/clock.js';
import type { Simulator } from '../../src/simulator/server.js';
import { formatLogTime, type InvisionFake, type MonitoringRow } from '../../src/sources/invision/fake.js';
import { find, value, type ParsedSample } from '../helpers/exposition.js';
import { MINUTE, startStack, type Stack } from '../helpers/stack.js';

// The InVision Monitoring log collector against the simulator, on a manual clock: every row the
// simulator lists (20% of them up to 120 s late) counted once by (event type, level), no more and
// no less, across restarts, outages, a refused key and unreadable rows.

const C = 'invision_monitoring';
const EVENTS = 'invision_monitoring_log_events_total';
const PARSE_ERRORS = 'conviva_exporter_parse_errors_total';
/** 2026-11-23 20:00:05 UTC. */
const START = Date.UTC(2026, 10, 23, 20, 0, 5);
/** The default initial_lookback: a first run reads the 10 minutes before it. */
const LOOKBACK = 10 * MINUTE;
/** Where counting begins when the first run is a minute after START. */
const FIRST_ORIGIN = Math.floor((START + MINUTE) / 1000) * 1000 - LOOKBACK;
const fake = (sim: Simulator) => sim.fake<InvisionFake>('invision');
const floorSecond = (t: number) => Math.floor(t / 1000) * 1000;

let stack: Stack | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'invision-monitoring-'));
  dirs.push(d);
  return d;
}

const config = (dir: string, monitoring = '') => `
engine: { staleness: 30m, shutdown_grace: 200ms, state_file: ${join(dir, 'state.json')} }
sources:
  invision:
    base_url: http://placeholder/invision
    api_key: demo-invision-key
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    request_timeout: 2s
    connect_timeout: 500ms
    timeout: 10s
    monitoring:
      enabled: true
      api_key: demo-monitoring-key
      timeout: 20s
${monitoring}
    dataflows:
      - { id: df-hourly-sales, name: hourly-sales }
      - { id: df-budget-sync, name: budget-sync }
`;

/**
 * An exporter with this config against `on.sim` on `on.clock` (a restart: same state file), or a
 * new simulator; `mutate` changes the config after it was pointed at the simulator.
 */
function boot(text: string, on?: { sim: Simulator; clock: ManualClock }, mutate?: (c: Config) => void): Promise<Stack> {
  return startStack({ configText: text, start: START, seed: 5, on, mutate, collector: C });
}

/** The counter's series as "event_type|level" -> value. */
function counted(samples: ParsedSample[]): Record<string, number> {
  return Object.fromEntries(find(samples, EVENTS).map((s) => [`${s.labels.event_type}|${s.labels.level}`, s.value]));
}

/** The oracle: the rows listed at `now` with timestamps in [from, to), as "logevent|level" -> count. */
function expected(rows: readonly MonitoringRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[`${r.logevent}|${r.level}`] = (out[`${r.logevent}|${r.level}`] ?? 0) + 1;
  return out;
}

/** Starts data flow runs now and then, so the log has DataFlowExecution rows (Information, and Error for failures). */
function startRuns(sim: Simulator, minute: number): void {
  if (minute % 3 === 0) fake(sim).startRun('df-hourly-sales');
  if (minute % 4 === 1) fake(sim).startRun('df-budget-sync');
}

const monitoringRequests = (sim: Simulator) => sim.requests.filter((r) => r.path === '/invision/api/v1/monitoring');
const parseErrors = (samples: ParsedSample[]) => value(samples, PARSE_ERRORS, { api: 'invision_monitoring', endpoint: 'api/v1/monitoring' });

describe('InVision Monitoring log against the simulator', () => {
  it('over 30 minutes with late rows, counts every row the log lists once, by event type and level', async () => {
    const dir = tempDir();
    stack = await boot(config(dir));
    const s = stack;
    const origin = FIRST_ORIGIN;
    let late = 0;
    let samples: ParsedSample[] = [];
    for (let i = 0; i < 30; i++) {
      startRuns(s.sim, i);
      // Runs at uneven times, as a late scheduler makes them.
      s.clock.advance(i % 5 === 2 ? 83_500 : MINUTE);
      let result: string;
      ({ result, samples } = await s.run());
      expect(result).toBe('success');
      // Rows written by now but not listed yet (late): the test means something only if there are some.
      const now = s.clock.now();
      const listedNow = new Set(fake(s.sim).monitoring({ fromMs: origin, toMs: now }).map((r) => r.rowid));
      late += fake(s.sim).monitoring({ fromMs: origin, toMs: now, now: now + 120_000 }).filter((r) => !listedNow.has(r.rowid)).length;
    }
    const last = s.clock.now();
    const rows = fake(s.sim).monitoring({ fromMs: origin, toMs: floorSecond(last), now: last });
    expect(late).toBeGreaterThan(5);
    expect(rows.length).toBeGreaterThan(80);
    expect(rows.some((r) => r.logevent === 'DataFlowExecution' && r.level === 'Error')).toBe(true);
    expect(counted(samples)).toEqual(expected(rows));
    // One request a run (no filters, windows under an hour), the key in the header, never in the URL.
    const requests = monitoringRequests(s.sim);
    expect(requests).toHaveLength(30);
    expect(requests.every((r) => !r.query.includes('api_key') && !r.query.includes('logEventType') && !r.query.includes('logLevel'))).toBe(true);
    expect(parseErrors(samples)).toBe(0);
    expect(value(samples, 'conviva_exporter_data_newest_timestamp_seconds', { collector: C })).toBe(floorSecond(last) / 1000);
    // Another run at the same time adds nothing.
    ({ samples } = await s.run());
    expect(counted(samples)).toEqual(expected(rows));
  });

  it('a restart (state file) neither counts a row twice nor skips one, also rows written while it was down', async () => {
    const dir = tempDir();
    stack = await boot(config(dir));
    const { sim, clock } = stack;
    const origin = FIRST_ORIGIN;
    for (let i = 0; i < 8; i++) {
      startRuns(sim, i);
      clock.advance(MINUTE);
      await stack.run();
    }
    // Stopped right after a run, started again at once: nothing new, nothing twice.
    await stack.app.stop();
    stack = await boot(config(dir), { sim, clock });
    let { samples } = await stack.run();
    expect(counted(samples)).toEqual(expected(fake(sim).monitoring({ fromMs: origin, toMs: floorSecond(clock.now()) })));
    // Down for 4 minutes while rows are written (some of them late), then on for 10 more.
    await stack.app.stop();
    for (let i = 8; i < 12; i++) {
      startRuns(sim, i);
      clock.advance(MINUTE);
    }
    stack = await boot(config(dir), { sim, clock });
    for (let i = 12; i < 22; i++) {
      startRuns(sim, i);
      clock.advance(MINUTE);
      ({ samples } = await stack.run());
    }
    const last = clock.now();
    expect(counted(samples)).toEqual(expected(fake(sim).monitoring({ fromMs: origin, toMs: floorSecond(last), now: last })));
  });

  it('500s for 8 minutes (longer than the overlap) fail the runs without counting; once InVision answers, the count is exact', async () => {
    const dir = tempDir();
    stack = await boot(config(dir));
    const s = stack;
    const origin = FIRST_ORIGIN;
    for (let i = 0; i < 5; i++) {
      startRuns(s.sim, i);
      s.clock.advance(MINUTE);
      await s.run();
    }
    const before = counted(await s.samples());
    s.sim.faults.set([{ kind: 'status', status: 500, match: '/api/v1/monitoring' }]);
    for (let i = 5; i < 13; i++) {
      startRuns(s.sim, i);
      s.clock.advance(MINUTE);
      const { result, samples } = await s.run();
      expect(result).toBe('failure');
      // The last good counts are still served, unchanged.
      expect(counted(samples)).toEqual(before);
      expect(value(samples, 'conviva_exporter_collector_up', { collector: C })).toBe(0);
    }
    s.sim.faults.clear();
    let samples: ParsedSample[] = [];
    for (let i = 13; i < 18; i++) {
      startRuns(s.sim, i);
      s.clock.advance(MINUTE);
      let result: string;
      ({ result, samples } = await s.run());
      expect(result).toBe('success');
    }
    const last = s.clock.now();
    expect(counted(samples)).toEqual(expected(fake(s.sim).monitoring({ fromMs: origin, toMs: floorSecond(last), now: last })));
    expect(s.logs.filter((l) => l.msg === 'collector run failed' && l.collector === C && l.code === 'UPSTREAM_STATUS').length).toBeGreaterThanOrEqual(1);
  });

  it('a long gap is read an hour a request, at most 12 hours a run, and still counted exactly', async () => {
    const dir = tempDir();
    stack = await boot(config(dir));
    const s = stack;
    const origin = floorSecond(s.clock.now()) - LOOKBACK;
    await s.run();
    // 15 hours without a run (down, or failing): 16 one-hour windows from the watermark less the overlap.
    s.clock.advance(15 * 60 * MINUTE);
    const firstRequest = monitoringRequests(s.sim).length;
    let { samples, result } = await s.run();
    expect(result).toBe('success');
    expect(monitoringRequests(s.sim).length - firstRequest).toBe(12);
    expect(s.logs.filter((l) => l.msg === 'monitoring log behind: the rest is read at the next runs')).toHaveLength(1);
    // What was read is served: the newest data is 12 hours past where the reads began.
    expect(value(samples, 'conviva_exporter_data_newest_timestamp_seconds', { collector: C })).toBe((floorSecond(START) - 5 * MINUTE + 12 * 60 * MINUTE) / 1000);
    s.clock.advance(MINUTE);
    ({ samples, result } = await s.run());
    expect(result).toBe('success');
    expect(monitoringRequests(s.sim).length - firstRequest).toBe(12 + 4);
    const last = s.clock.now();
    expect(counted(samples)).toEqual(expected(fake(s.sim).monitoring({ fromMs: origin, toMs: floorSecond(last), now: last })));
    // Each request at most an hour.
    const span = (q: string) => {
      const p = new URLSearchParams(q);
      const t = (k: string) => Date.parse(`${p.get(k)!.replace(/\./g, '-').replace(' ', 'T')}Z`);
      return t('toDateTimeUtc') - t('fromDateTimeUtc');
    };
    expect(Math.max(...monitoringRequests(s.sim).map((r) => span(r.query)))).toBe(60 * MINUTE);
  });

  it('event_types and levels: one request per (type, level) pair, each pair served from the start', async () => {
    const dir = tempDir();
    stack = await boot(config(dir, '      event_types: [DataFlowExecution, ApplicationError]\n      levels: [Error, Information]'));
    const s = stack;
    const origin = FIRST_ORIGIN;
    let samples: ParsedSample[] = [];
    for (let i = 0; i < 15; i++) {
      startRuns(s.sim, i);
      s.clock.advance(MINUTE);
      // Once, an upstream that ignores the filters: rows of other types and levels are not counted.
      if (i === 7) {
        const ts = formatLogTime(s.clock.now() - 10_000);
        const body = JSON.stringify([
          { rowid: 1, data: 'x', level: 'Information', timestamputc: ts, logevent: 'UserLogin' },
          { rowid: 2, data: 'x', level: 'Warning', timestamputc: ts, logevent: 'ApplicationError' },
        ]);
        s.sim.faults.set([{ kind: 'body', body, match: '/api/v1/monitoring', remaining: 1 }]);
      }
      ({ samples } = await s.run());
    }
    const last = s.clock.now();
    const rows = fake(s.sim).monitoring({ fromMs: origin, toMs: floorSecond(last), now: last })
      .filter((r) => ['DataFlowExecution', 'ApplicationError'].includes(r.logevent) && ['Error', 'Information'].includes(r.level));
    expect(counted(samples)).toEqual({
      'DataFlowExecution|Error': 0, 'DataFlowExecution|Information': 0, 'ApplicationError|Error': 0, 'ApplicationError|Information': 0,
      ...expected(rows),
    });
    expect(counted(samples)['ApplicationError|Information']).toBe(0); // the simulator writes none: served at 0
    expect(counted(samples)['DataFlowExecution|Information']).toBeGreaterThan(0);
    const queries = monitoringRequests(s.sim).map((r) => new URLSearchParams(r.query));
    expect(queries).toHaveLength(15 * 4);
    expect(new Set(queries.map((q) => `${q.get('logEventType')}|${q.get('logLevel')}`))).toEqual(new Set(['DataFlowExecution|Error', 'DataFlowExecution|Information', 'ApplicationError|Error', 'ApplicationError|Information']));
  });

  it('a refused key (401) fails the run and counts nothing', async () => {
    const dir = tempDir();
    stack = await boot(config(dir), undefined, (c) => {
      const inv = c.sources.invision as { monitoring: { apiKey?: string } };
      inv.monitoring.apiKey = 'not-the-key';
    });
    const s = stack;
    for (let i = 0; i < 2; i++) {
      s.clock.advance(MINUTE);
      const { result, samples } = await s.run();
      expect(result).toBe('failure');
      expect(find(samples, EVENTS)).toEqual([]);
      expect(value(samples, 'conviva_exporter_collector_up', { collector: C })).toBe(0);
    }
    expect(monitoringRequests(s.sim).every((r) => r.status === 401)).toBe(true);
    // Logged once (the same failure again is logged at debug), with its code.
    expect(s.logs.filter((l) => l.msg === 'collector run failed' && l.collector === C && l.level === 40 && l.code === 'UPSTREAM_AUTH')).toHaveLength(1);
    expect(parseErrors(await s.samples())).toBe(0);
  });

  it('unreadable rows are skipped, counted once as parse errors and logged once a run; the readable ones count', async () => {
    const dir = tempDir();
    stack = await boot(config(dir));
    const s = stack;
    const origin = FIRST_ORIGIN;
    for (let i = 0; i < 3; i++) {
      startRuns(s.sim, i);
      s.clock.advance(MINUTE);
      await s.run();
    }
    // The next two answers are replaced: two good rows of an event the simulator never writes, and
    // six unreadable ones; the same two answers twice, as the overlap lists rows again.
    const ts = formatLogTime(s.clock.now() - 30_000);
    const body = JSON.stringify([
      { rowid: 1, data: 'ok', level: 'Warning', timestamputc: ts, logevent: 'TestEvent' },
      { rowid: 2, data: 'ok, "quoted"\nnext line', level: 'Warning', timestamputc: ts, logevent: 'TestEvent' },
      { rowid: 3, data: 'x', level: null, timestamputc: ts, logevent: 'TestEvent' },
      { rowid: 4, data: 'x', level: 'Warning', timestamputc: '2026.02.30 10:00:00', logevent: 'TestEvent' },
      { rowid: 5, data: 'x', level: 'Warning', timestamputc: ts, logevent: '' },
      { data: 'x', level: 'Warning', timestamputc: ts, logevent: 'TestEvent' },
      { rowid: { id: 6 }, data: 'x', level: 'Warning', timestamputc: ts, logevent: 'TestEvent' },
      'not a row',
    ]);
    s.sim.faults.set([{ kind: 'body', body, match: '/api/v1/monitoring', remaining: 2 }]);
    s.clock.advance(MINUTE);
    let { result, samples } = await s.run();
    expect(result).toBe('success');
    expect(counted(samples)['TestEvent|Warning']).toBe(2);
    expect(parseErrors(samples)).toBe(6);
    const skipLogs = () => s.logs.filter((l) => l.msg === 'skipped unreadable monitoring rows');
    expect(skipLogs()).toHaveLength(1);
    expect(skipLogs()[0]).toMatchObject({ skipped: 6, api: 'invision_monitoring' });
    // Listed again: the good rows are not counted twice, nor the unreadable rows with an id and a
    // time (rowid 3 and 5); the four without a usable id or time cannot be told apart, so count again.
    s.clock.advance(MINUTE);
    ({ result, samples } = await s.run());
    expect(result).toBe('success');
    expect(counted(samples)['TestEvent|Warning']).toBe(2);
    expect(parseErrors(samples)).toBe(6 + 4);
    expect(skipLogs()).toHaveLength(2);
    // The simulator answers again: the rows of the two replaced windows are read by the overlap.
    for (let i = 5; i < 10; i++) {
      startRuns(s.sim, i);
      s.clock.advance(MINUTE);
      ({ result, samples } = await s.run());
      expect(result).toBe('success');
    }
    const last = s.clock.now();
    expect(counted(samples)).toEqual({ ...expected(fake(s.sim).monitoring({ fromMs: origin, toMs: floorSecond(last), now: last })), 'TestEvent|Warning': 2 });
    expect(parseErrors(samples)).toBe(10);
  });
});
