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
});
