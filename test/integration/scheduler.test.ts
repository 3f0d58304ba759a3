import cron from 'node-cron';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/engine/clock.js';
import type { Collector } from '../../src/engine/collector.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { Runner } from '../../src/engine/runner.js';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import { startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';

// These use the real clock: node-cron fires on wall time.

let stack: Stack | undefined;
let runner: Runner | undefined;
afterEach(async () => {
  await runner?.stop(1000);
  runner = undefined;
  await stack?.close();
  stack = undefined;
  vi.restoreAllMocks();
});

describe('scheduler', () => {
  it('a tick missed while the event loop was blocked is counted as skipped and logged as JSON, once', async () => {
    const metrics = createEngineMetrics(new Registry(), 't');
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    const warn = vi.spyOn(console, 'warn');
    const collector: Collector = { name: 'tick', schedule: '* * * * * *', timeoutMs: 500, families: [], collect: async () => ({}) };
    runner = new Runner({
      collectors: [collector], metrics, log, clock: systemClock, stalenessMs: 300_000, saveState: async () => false,
      publisher: { publish: async () => {}, withdraw: () => {} },
      guard: new CardinalityGuard(() => 10, 60_000, () => {}),
    });
    runner.start();
    await new Promise((r) => setTimeout(r, 1200)); // let the scheduler settle on a beat
    const until = Date.now() + 3500;
    while (Date.now() < until); // block the event loop across three ticks
    await new Promise((r) => setTimeout(r, 1500));
    const skipped = (await metrics.collectorSkipped.get()).values[0]!.value;
    expect(skipped).toBeGreaterThanOrEqual(2);
    const missed = lines.filter((l) => l.msg === 'collector run skipped: the scheduler missed its tick');
    expect(missed.length).toBe(skipped);
    expect(missed.filter((l) => l.level === 40)).toHaveLength(1); // the rest at debug until the next run
    expect(warn).not.toHaveBeenCalled(); // nothing from node-cron on the console
  });

  it('two reloads in quick succession while a run is in flight leave one pipeline', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'latency', latencyMs: 300 }]); // a slow upstream: runs are in flight
    await stack.app.start({ host: '127.0.0.1', port: 0 });
    const tasksBefore = cron.getTasks().size;
    const a = structuredClone(stack.config);
    const b = structuredClone(stack.config);
    await Promise.all([stack.app.reload(a), stack.app.reload(b)]);
    // one schedule per collector, as before the reloads: no pipeline left running on the side
    expect(cron.getTasks().size).toBe(tasksBefore);
    expect(stack.logs.filter((l) => l.msg === 'configuration reloaded')).toHaveLength(2);
  });
});
