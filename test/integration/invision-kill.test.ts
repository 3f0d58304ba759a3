import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Simulator } from '../../src/simulator/server.js';
import type { InvisionFake } from '../../src/sources/invision/fake.js';
import { parseExposition, value } from '../helpers/exposition.js';
import { startExporter, waitFor, type RunningExporter } from '../helpers/process.js';

// The exporter process killed (SIGKILL) between writing a start's intent and recording its answer:
// the start reached InVision (its answer was on its way), so the restarted exporter must not start
// that tick again. Real clock, real process, the simulator in this process.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface State { collectors?: Record<string, { state?: { intents?: unknown[]; flows?: Record<string, { lastTick?: number }> } }> }

describe('a data flow start cut off by kill -9', () => {
  it('is not started again for the same tick after the restart, and is reported unknown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'invision-kill-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sim = new Simulator({ seed: 3 });
    await sim.listen('127.0.0.1', 0);
    cleanups.push(() => sim.close());
    const fake = sim.fake<InvisionFake>('invision');
    // InVision answers a start after 3 s: the exporter is killed while it waits.
    sim.faults.set([{ kind: 'latency', latencyMs: 3000, match: '/start' }]);
    const statePath = join(dir, 'state.json');
    const configPath = join(dir, 'config.yml');
    writeFileSync(configPath, `
server: { listen_address: "127.0.0.1:0" }
engine: { state_file: ${statePath}, shutdown_grace: 200ms }
sources:
  invision:
    base_url: ${sim.url}/invision
    api_key: demo-invision-key
    schedule: "*/5 * * * * *"
    timeout: 4500ms
    request_timeout: 5s
    dataflows:
      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m }
`);
    const exporters: RunningExporter[] = [];
    cleanups.push(() => exporters.forEach((e) => e.proc.kill('SIGKILL')));
    const first = await startExporter(['--config', configPath]);
    exporters.push(first);
    const read = (): State => (existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as State) : {});
    // At the next minute the start reaches InVision, which answers 3 s later: kill the exporter
    // the moment the simulator has the request (its intent is on disk by then).
    let arrived: () => void = () => {};
    const reached = new Promise<void>((r) => (arrived = r));
    const pick = sim.faults.pick.bind(sim.faults);
    sim.faults.pick = (path: string) => {
      if (path.endsWith('/start')) arrived();
      return pick(path);
    };
    await Promise.race([reached, new Promise((_, reject) => setTimeout(() => reject(new Error('no start within 75 s')), 75_000))]);
    first.proc.kill('SIGKILL');
    await first.exited;
    const intent = read().collectors?.invision_dataflows?.state?.intents?.[0];
    expect(intent).toMatchObject({ flowId: 'df-hourly-sales' });
    // The start reached InVision: the run exists there once its answer (never read) is sent.
    await waitFor('the run started in InVision', async () => (fake.runs().length === 1 ? true : undefined), 5000);
    sim.faults.clear();
    const second = await startExporter(['--config', configPath]);
    exporters.push(second);
    const metrics = await waitFor('the cut-off start reported', async () => {
      const samples = parseExposition(await (await fetch(`${second.url}/metrics`)).text());
      return value(samples, 'invision_dataflow_start_failures_total', { flow_id: 'df-hourly-sales', flow: 'hourly-sales', reason: 'unknown' }) === 1 ? samples : undefined;
    });
    // Within the same minute, no second run for that tick (the next tick is a new minute).
    const tick = (intent as { tick: number }).tick;
    if (Date.now() < tick + 55_000) {
      await new Promise((r) => setTimeout(r, 3000));
      expect(fake.runs().filter((r) => r.startedAt >= tick && r.startedAt < tick + 60_000)).toHaveLength(1);
    }
    expect(value(metrics, 'invision_dataflow_starts_total', { flow_id: 'df-hourly-sales', flow: 'hourly-sales' })).toBe(0);
    expect(second.logs.some((l) => String(l.msg).startsWith('the exporter stopped between recording a data flow start and its answer'))).toBe(true);
    expect(read().collectors?.invision_dataflows?.state?.flows?.['df-hourly-sales']?.lastTick).toBe(tick);
  }, 120_000);
  it('killed with runs in flight, one of which ends while it is down: after the restart runs_total equals the runs the simulator finished, exactly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'invision-kill-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sim = new Simulator({ seed: 4 });
    await sim.listen('127.0.0.1', 0);
    cleanups.push(() => sim.close());
    const fake = sim.fake<InvisionFake>('invision');
    fake.setFlow('df-hourly-sales', { pendingMs: 1000, runningMs: 8000, failureShare: 0, stuckShare: 0 });
    fake.setFlow('df-budget-sync', { pendingMs: 1000, runningMs: 40_000, failureShare: 1, stuckShare: 0 });
    // Both flows start once, at a minute at least 10 s away (the exporter must poll before it).
    const at = new Date(Math.ceil((Date.now() + 10_000) / 60_000) * 60_000);
    const schedule = `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    const statePath = join(dir, 'state.json');
    const configPath = join(dir, 'config.yml');
    writeFileSync(configPath, `
server: { listen_address: "127.0.0.1:0" }
engine: { state_file: ${statePath}, shutdown_grace: 200ms }
sources:
  invision:
    base_url: ${sim.url}/invision
    api_key: demo-invision-key
    schedule: "*/2 * * * * *"
    timeout: 1500ms
    dataflows:
      - { id: df-hourly-sales, name: hourly-sales, schedule: "${schedule}", timeout: 5m }
      - { id: df-budget-sync, name: budget-sync, schedule: "${schedule}", timeout: 5m }
`);
    const exporters: RunningExporter[] = [];
    cleanups.push(() => exporters.forEach((e) => e.proc.kill('SIGKILL')));
    const first = await startExporter(['--config', configPath]);
    exporters.push(first);
    const inflight = () => ((existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as { collectors?: Record<string, { state?: { inflight?: unknown[]; intents?: unknown[] } }> }) : {}).collectors?.invision_dataflows?.state);
    await waitFor('both runs started and on disk', async () => {
      const st = inflight();
      return st?.inflight?.length === 2 && st.intents?.length === 0 ? true : undefined;
    }, 85_000);
    first.proc.kill('SIGKILL');
    await first.exited;
    // Down for 12 s: the short run ends meanwhile.
    await new Promise((r) => setTimeout(r, 12_000));
    expect(fake.runs().filter((r) => r.status === 'Succeeded')).toHaveLength(1);
    const second = await startExporter(['--config', configPath]);
    exporters.push(second);
    const labels = (id: string, name: string, result: string) => ({ flow_id: id, flow: name, result });
    const samples = await waitFor('every run ended and counted', async () => {
      if (fake.runs().some((r) => r.status === 'Pending' || r.status === 'Running')) return undefined;
      const s = parseExposition(await (await fetch(`${second.url}/metrics`)).text());
      return value(s, 'invision_dataflow_runs_total', labels('df-budget-sync', 'budget-sync', 'failed')) === 1 ? s : undefined;
    }, 60_000);
    const runs = fake.runs();
    expect(runs).toHaveLength(2);
    for (const [id, name] of [['df-hourly-sales', 'hourly-sales'], ['df-budget-sync', 'budget-sync']] as const) {
      for (const result of ['succeeded', 'failed'] as const) {
        const finished = runs.filter((r) => r.dataflowId === id && r.status === (result === 'succeeded' ? 'Succeeded' : 'Failed')).length;
        expect(value(samples, 'invision_dataflow_runs_total', labels(id, name, result)), `${id} ${result}`).toBe(finished);
      }
      expect(value(samples, 'invision_dataflow_starts_total', { flow_id: id, flow: name })).toBe(1);
      expect(value(samples, 'invision_dataflow_runs_in_progress', { flow_id: id, flow: name })).toBe(0);
    }
  }, 180_000);
});
