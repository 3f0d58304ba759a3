import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/engine/clock.js';
import type { Simulator } from '../../src/simulator/server.js';
import type { InvisionFake } from '../../src/sources/invision/fake.js';
import { value } from '../helpers/exposition.js';
import { MINUTE, startStack, type Stack } from '../helpers/stack.js';

// The InVision Data Flows collector against the simulator, on a manual clock: starts on schedule,
// every run followed to its end and counted once, across restarts too.

const C = 'invision_dataflows';
/** 2026-11-23 20:00:05 UTC: just after a minute starts, so a poll at each minute sees its tick. */
const START = Date.UTC(2026, 10, 23, 20, 0, 5);
const fake = (sim: Simulator) => sim.fake<InvisionFake>('invision');

let stack: Stack | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'invision-'));
  dirs.push(d);
  return d;
}

const config = (dir: string, flows: string, extra = '') => `
engine: { staleness: 30m, shutdown_grace: 200ms, state_file: ${join(dir, 'state.json')} }
sources:
  invision:
    base_url: http://placeholder/invision
    api_key: demo-invision-key
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    request_timeout: 500ms
    connect_timeout: 500ms
    timeout: 10s
${extra}
    dataflows:
${flows}
`;

/**
 * An exporter (engine inline) with this config, against `sim` on `clock`, or a new simulator.
 * Calling it again with the same simulator and clock is a restart (same state file).
 */
function boot(text: string, on?: { sim: Simulator; clock: ManualClock }): Promise<Stack> {
  return startStack({ configText: text, start: START, seed: 5, on, collector: C });
}

async function stackWith(dir: string, flows: string, extra = ''): Promise<Stack> {
  return boot(config(dir, flows, extra));
}

const ls = (flowId: string, flow: string, extra: Record<string, string> = {}) => ({ flow_id: flowId, flow, ...extra });

describe('InVision data flows against the simulator', () => {
  it('starts a flow on its schedule, follows the run to its end, and counts it once', async () => {
    const dir = tempDir();
    stack = await stackWith(dir, '      - { id: df-hourly-sales, name: hourly-sales, schedule: "*/2 * * * *", timeout: 5m, expected_interval: 1h }');
    const s = stack;
    // The first poll: a flow seen for the first time starts at its next tick, not one already passed.
    let { samples } = await s.run();
    expect(fake(s.sim).runs()).toHaveLength(0);
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-hourly-sales', 'hourly-sales', { result: 'succeeded' }))).toBe(0);
    expect(value(samples, 'invision_dataflow_start_failures_total', ls('df-hourly-sales', 'hourly-sales', { reason: 'unknown' }))).toBe(0);
    expect(value(samples, 'invision_dataflow_expected_interval_seconds', ls('df-hourly-sales', 'hourly-sales'))).toBe(3600);
    // 20:01: no tick. 20:02: a tick: one start, the intent on disk before it left.
    s.clock.advance(MINUTE);
    await s.run();
    expect(fake(s.sim).runs()).toHaveLength(0);
    s.clock.advance(MINUTE);
    ({ samples } = await s.run());
    const runs = fake(s.sim).runs();
    expect(runs).toHaveLength(1);
    expect(value(samples, 'invision_dataflow_starts_total', ls('df-hourly-sales', 'hourly-sales'))).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_in_progress', ls('df-hourly-sales', 'hourly-sales'))).toBe(1);
    expect(value(samples, 'invision_dataflow_run_status', ls('df-hourly-sales', 'hourly-sales', { status: 'pending' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_last_run_start_timestamp_seconds', ls('df-hourly-sales', 'hourly-sales'))).toBe(s.clock.now() / 1000);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { collectors: Record<string, { state: { inflight: Array<{ runId: string }> } }> };
    expect(JSON.stringify(state)).toContain(runs[0]!.runId);
    // The run ends within a minute: the next poll counts it, and no later poll counts it again.
    s.clock.advance(MINUTE);
    ({ samples } = await s.run());
    expect(fake(s.sim).runs()[0]!.status).toBe('Succeeded');
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-hourly-sales', 'hourly-sales', { result: 'succeeded' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_run_status', ls('df-hourly-sales', 'hourly-sales', { status: 'succeeded' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_in_progress', ls('df-hourly-sales', 'hourly-sales'))).toBe(0);
    expect(value(samples, 'invision_dataflow_last_success_timestamp_seconds', ls('df-hourly-sales', 'hourly-sales'))).toBe(s.clock.now() / 1000);
    expect(value(samples, 'invision_dataflow_last_run_duration_seconds', ls('df-hourly-sales', 'hourly-sales'))).toBe(60);
    expect(value(samples, 'invision_dataflow_run_duration_seconds_count', ls('df-hourly-sales', 'hourly-sales'))).toBe(1);
    s.clock.advance(30_000);
    ({ samples } = await s.run());
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-hourly-sales', 'hourly-sales', { result: 'succeeded' }))).toBe(1);
    // The API key went in the header, never in a URL.
    expect(s.sim.requests.every((r) => !r.query.includes('api_key'))).toBe(true);
  });

  it('skips a start while the previous run is in flight, reports a run stuck past its timeout, and counts it when it ends later', async () => {
    const dir = tempDir();
    stack = await stackWith(dir, '      - { id: df-slow, name: slow, schedule: "* * * * *", timeout: 3m }');
    const s = stack;
    fake(s.sim).setFlow('df-slow', { name: 'Slow', pendingMs: 1000, runningMs: 5 * MINUTE, failureShare: 1, stuckShare: 0 });
    await s.run();
    s.clock.advance(MINUTE);
    await s.run(); // started
    expect(fake(s.sim).runs()).toHaveLength(1);
    for (let i = 0; i < 4; i++) {
      s.clock.advance(MINUTE);
      await s.run();
    }
    let { samples } = await s.run();
    // Still one run: the ticks while it ran were skipped, counted; 4 minutes in, past its 3m timeout.
    expect(fake(s.sim).runs()).toHaveLength(1);
    expect(value(samples, 'invision_dataflow_starts_skipped_total', ls('df-slow', 'slow'))).toBe(4);
    expect(value(samples, 'invision_dataflow_runs_stuck', ls('df-slow', 'slow'))).toBe(1);
    expect(value(samples, 'invision_dataflow_run_status', ls('df-slow', 'slow', { status: 'stuck' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_run_status', ls('df-slow', 'slow', { status: 'running' }))).toBe(0);
    // It ends (failed) later: counted then, once; the next tick starts a new run.
    s.clock.advance(3 * MINUTE);
    ({ samples } = await s.run());
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-slow', 'slow', { result: 'failed' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_stuck', ls('df-slow', 'slow'))).toBe(0);
    // The same poll, the run no longer in flight, starts the tick's run: the latest is that one.
    expect(fake(s.sim).runs()).toHaveLength(2);
    expect(value(samples, 'invision_dataflow_run_status', ls('df-slow', 'slow', { status: 'pending' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_last_run_duration_seconds', ls('df-slow', 'slow'))).toBe(7 * 60);
  });

  it('a 500 on start is counted, logged and not repeated; 500s on status keep the run until it answers', async () => {
    const dir = tempDir();
    stack = await stackWith(dir, '      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m }');
    const s = stack;
    await s.run();
    s.clock.advance(MINUTE);
    s.sim.faults.set([{ kind: 'status', status: 500, match: '/start' }]);
    let { samples, result } = await s.run();
    expect(result).toBe('success');
    expect(value(samples, 'invision_dataflow_start_failures_total', ls('df-hourly-sales', 'hourly-sales', { reason: 'status' }))).toBe(1);
    expect(s.sim.requests.filter((r) => r.path.endsWith('/start'))).toHaveLength(1); // not repeated
    expect(s.logs.filter((l) => l.msg === 'InVision refused to start the data flow')).toHaveLength(1);
    // The next tick starts; then the status answers 500 for three polls: the run is kept.
    s.sim.faults.clear();
    s.clock.advance(MINUTE);
    await s.run();
    expect(fake(s.sim).runs()).toHaveLength(1);
    s.sim.faults.set([{ kind: 'status', status: 500, match: '/status' }]);
    for (let i = 0; i < 3; i++) {
      s.clock.advance(20_000);
      ({ result, samples } = await s.run());
      expect(result).toBe('failure');
      // Served all the same: the run's series do not go stale while InVision does not answer.
      expect(value(samples, 'invision_dataflow_runs_in_progress', ls('df-hourly-sales', 'hourly-sales'))).toBe(1);
    }
    s.sim.faults.clear();
    ({ samples } = await s.run());
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-hourly-sales', 'hourly-sales', { result: 'succeeded' }))).toBe(1);
  });

  it('a run InVision answers 404 for is followed for unknown_run_after, then given up: counted lost, the flow starts again', async () => {
    const dir = tempDir();
    const handover = join(dir, 'handover');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(handover);
    stack = await stackWith(dir, '      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m }', `    handover_dir: ${handover}\n    unknown_run_after: 3m`);
    const s = stack;
    const flow = ls('df-hourly-sales', 'hourly-sales');
    await s.run();
    // A scheduler hands over a run id InVision never heard of (a typo, a purged run).
    writeFileSync(join(handover, 'typo.json'), JSON.stringify({ dataflow_id: 'df-hourly-sales', run_id: 'no-such-run' }));
    let { samples, result } = await s.run();
    expect(result).toBe('failure');
    expect(value(samples, 'invision_dataflow_runs_in_progress', flow)).toBe(1);
    // While it is followed, the flow's ticks are skipped (allow_overlap off), and every poll fails.
    for (let i = 0; i < 2; i++) {
      s.clock.advance(MINUTE);
      ({ samples, result } = await s.run());
      expect(result).toBe('failure');
    }
    expect(value(samples, 'invision_dataflow_starts_skipped_total', flow)).toBe(2);
    expect(value(samples, 'invision_dataflow_runs_lost_total', flow)).toBe(0);
    expect(fake(s.sim).runs()).toHaveLength(0);
    // Three minutes of 404s: given up, not counted as ended; the same poll starts the tick's run.
    s.clock.advance(MINUTE);
    ({ samples, result } = await s.run());
    expect(result).toBe('failure'); // this poll's read of it was a 404 all the same
    expect(value(samples, 'invision_dataflow_runs_lost_total', flow)).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'succeeded' })).toBe(0);
    expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'failed' })).toBe(0);
    expect(fake(s.sim).runs()).toHaveLength(1);
    expect(value(samples, 'invision_dataflow_run_status', { ...flow, status: 'pending' })).toBe(1);
    expect(s.logs.filter((l) => l.msg?.startsWith('InVision does not know the data flow run'))).toHaveLength(1);
    // Handed over again: not followed again (remembered as given up).
    writeFileSync(join(handover, 'again.json'), JSON.stringify({ dataflow_id: 'df-hourly-sales', run_id: 'no-such-run' }));
    s.clock.advance(20_000);
    ({ samples, result } = await s.run());
    expect(result).toBe('success');
    expect(s.sim.requests.filter((r) => r.path.includes('/runs/no-such-run/')).length).toBe(4);
    expect(value(samples, 'invision_dataflow_runs_lost_total', flow)).toBe(1);
    // A status answer of the wrong shape is an error and a parse error; the run is kept.
    s.sim.faults.set([{ kind: 'body', status: 200, body: '{"runId":"x","status":"Done"}', match: '/status' }]);
    s.clock.advance(20_000);
    ({ samples, result } = await s.run());
    expect(result).toBe('failure');
    const parseErrors = { api: 'invision', endpoint: 'api/pub/v1/dataflows/{dataflowId}/runs/{runId}/status' };
    expect(value(samples, 'conviva_exporter_parse_errors_total', parseErrors)).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_in_progress', flow)).toBe(1);
  });

  it("a long run's series stay while it runs, longer than the engine's staleness, also while InVision does not answer", async () => {
    const dir = tempDir();
    stack = await boot(config(dir, '      - { id: df-nightly-load, name: nightly-load, schedule: "* * * * *", timeout: 1h }').replace('staleness: 30m', 'staleness: 2m'));
    const s = stack;
    const flow = ls('df-nightly-load', 'nightly-load');
    fake(s.sim).setFlow('df-nightly-load', { pendingMs: 1000, runningMs: 12 * MINUTE, failureShare: 0, stuckShare: 0 });
    await s.run();
    s.clock.advance(MINUTE);
    await s.run(); // started
    for (let i = 1; i <= 10; i++) {
      s.clock.advance(MINUTE);
      // Minutes 5 to 8: every status read fails (longer than the 2m staleness).
      if (i === 5) s.sim.faults.set([{ kind: 'status', status: 503, match: '/status' }]);
      if (i === 9) s.sim.faults.clear();
      const { samples } = await s.run();
      expect(value(samples, 'invision_dataflow_runs_in_progress', flow), `minute ${i}`).toBe(1);
      expect(value(samples, 'invision_dataflow_run_status', { ...flow, status: 'running' }), `minute ${i}`).toBe(1);
      expect(value(samples, 'invision_dataflow_last_run_start_timestamp_seconds', flow), `minute ${i}`).toBe((START + MINUTE) / 1000);
      expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'succeeded' }), `minute ${i}`).toBe(0);
    }
    s.clock.advance(3 * MINUTE); // 14 minutes after the start: it ended 12 minutes in
    const { samples } = await s.run();
    expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'succeeded' })).toBe(1);
  });

  it('a corrupt state file, or InVision state of the wrong shape, is logged and the exporter starts clean; it never crashes', async () => {
    const dir = tempDir();
    const statePath = join(dir, 'state.json');
    const flows = '      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m }';
    const flow = ls('df-hourly-sales', 'hourly-sales');
    // Cut short mid-write (by a disk full, say): kept aside as .corrupt, a clean start.
    writeFileSync(statePath, '{"version": 2, "collectors": {"invision_dataflows": {"version": 1, "state": {"flows": {"df-hourly-sales": {"runs": {"succ');
    stack = await stackWith(dir, flows);
    let s = stack;
    expect(s.logs.filter((l) => l.msg === 'state file unreadable: starting without it')).toHaveLength(1);
    expect(readdirSync(dir)).toContain('state.json.corrupt');
    let { samples, result } = await s.run();
    expect(result).toBe('success');
    expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'succeeded' })).toBe(0);
    await s.close();
    // Valid JSON, but every field of the collector's state of the wrong type: read defensively.
    writeFileSync(statePath, JSON.stringify({ version: 2, collectors: { [C]: { version: 1, state: {
      flows: { 'df-hourly-sales': { lastTick: 'soon', runs: { succeeded: -3, failed: 'x' }, duration: [1, 2], latest: { runId: 7 } }, 'df-gone': 5 },
      inflight: [{ flowId: 'df-hourly-sales', runId: 5, startedAt: 'now' }, null, 'x', { flowId: 'df-hourly-sales', runId: 'r-ok', startedAt: START, origin: 'started', status: 'Queued' }],
      intents: [{ flowId: 3 }, null],
      ended: 'all',
    } } } }));
    stack = await stackWith(dir, flows);
    s = stack;
    ({ samples, result } = await s.run());
    expect(result).toBe('success');
    expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'succeeded' })).toBe(0);
    expect(value(samples, 'invision_dataflow_runs_total', { ...flow, result: 'failed' })).toBe(0);
    expect(value(samples, 'invision_dataflow_runs_in_progress', flow)).toBe(0);
    expect(value(samples, 'invision_dataflow_start_failures_total', { ...flow, reason: 'unknown' })).toBe(0);
    // And it works from there: the next tick starts a run.
    s.clock.advance(MINUTE);
    ({ samples } = await s.run());
    expect(fake(s.sim).runs()).toHaveLength(1);
    expect(value(samples, 'invision_dataflow_runs_in_progress', flow)).toBe(1);
  });

  it('follows a run handed over through the folder, once, and refuses an unreadable file', async () => {
    const dir = tempDir();
    const handover = join(dir, 'handover');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(handover);
    stack = await stackWith(dir, '      - { id: df-nightly-load, name: nightly-load, timeout: 5m }', `    handover_dir: ${handover}`);
    const s = stack;
    const run = fake(s.sim).startRun('df-nightly-load');
    writeFileSync(join(handover, 'a.json'), JSON.stringify({ dataflow_id: 'df-nightly-load', run_id: run.runId }));
    writeFileSync(join(handover, 'b.json'), JSON.stringify({ dataflow_id: 'df-nightly-load', run_id: run.runId })); // the same run twice
    writeFileSync(join(handover, 'c.json'), '{"dataflow_id": 3');
    let { samples } = await s.run();
    expect(readdirSync(handover).sort()).toEqual(['c.json.rejected']);
    expect(value(samples, 'invision_dataflow_runs_in_progress', ls('df-nightly-load', 'nightly-load'))).toBe(1);
    s.clock.advance(2 * MINUTE);
    ({ samples } = await s.run());
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-nightly-load', 'nightly-load', { result: 'succeeded' }))).toBe(1);
    // Handed over again after it ended: not counted twice.
    writeFileSync(join(handover, 'd.json'), JSON.stringify({ dataflow_id: 'df-nightly-load', run_id: run.runId }));
    s.clock.advance(MINUTE);
    ({ samples } = await s.run());
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-nightly-load', 'nightly-load', { result: 'succeeded' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_in_progress', ls('df-nightly-load', 'nightly-load'))).toBe(0);
  });

  it('a restart with runs in flight, one of which ended meanwhile, counts each once; a start cut off by a crash is not repeated', async () => {
    const dir = tempDir();
    const flows = ['      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m }', '      - { id: df-nightly-load, name: nightly-load, schedule: "* * * * *", timeout: 5m }'].join('\n');
    stack = await stackWith(dir, flows);
    const s = stack;
    fake(s.sim).setFlow('df-nightly-load', { pendingMs: 1000, runningMs: 10 * MINUTE, failureShare: 0, stuckShare: 0 });
    await s.run();
    s.clock.advance(MINUTE);
    await s.run(); // both started
    expect(fake(s.sim).runs()).toHaveLength(2);
    // The exporter goes down for 3 minutes: the short run ends meanwhile.
    const { sim, clock } = s;
    await s.app.stop();
    clock.advance(3 * MINUTE);
    // A crash between recording a start and its answer: the intent is on disk, no run id.
    const statePath = join(dir, 'state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { collectors: Record<string, { state: { intents: unknown[] } }> };
    state.collectors[C]!.state.intents.push({ flowId: 'df-hourly-sales', tick: clock.now() - MINUTE, at: clock.now() - MINUTE });
    writeFileSync(statePath, JSON.stringify(state));
    stack = await boot(config(dir, flows), { sim, clock });
    let { samples } = await stack.run();
    expect(value(samples, 'invision_dataflow_runs_total', ls('df-hourly-sales', 'hourly-sales', { result: 'succeeded' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_start_failures_total', ls('df-hourly-sales', 'hourly-sales', { reason: 'unknown' }))).toBe(1);
    expect(value(samples, 'invision_dataflow_runs_in_progress', ls('df-nightly-load', 'nightly-load'))).toBe(1);
    // The tick of the cut-off start was not started again; the current tick's start was skipped
    // for nightly-load (its run is in flight) and made for hourly-sales.
    const hourly = () => fake(sim).runs().filter((r) => r.dataflowId === 'df-hourly-sales');
    expect(hourly()).toHaveLength(2);
    // Until everything ended: the exporter's counts equal the simulator's, exactly.
    for (let i = 0; i < 12; i++) {
      stack.clock.advance(MINUTE);
      ({ samples } = await stack.run());
    }
    for (const id of ['df-hourly-sales', 'df-nightly-load']) {
      const name = id === 'df-hourly-sales' ? 'hourly-sales' : 'nightly-load';
      const ended = fake(sim).runs().filter((r) => r.dataflowId === id && r.status === 'Succeeded');
      expect(value(samples, 'invision_dataflow_runs_total', ls(id, name, { result: 'succeeded' })), id).toBe(ended.length);
    }
  });
});
