import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { expect } from 'vitest';
import { App } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import type { Collector } from '../../src/engine/collector.js';
import type { ManualClock } from '../../src/engine/clock.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { Runner } from '../../src/engine/runner.js';
import { createEngineMetrics, type EngineMetrics } from '../../src/engine/self-metrics.js';
import { createLogger } from '../../src/logger.js';
import type { Simulator } from '../../src/simulator/server.js';
import { parseExposition } from '../helpers/exposition.js';
import { useSimulator } from '../helpers/stack.js';

/** What the property tests count as they go. */
export interface BodyStats {
  sequences: number;
  bodies: number;
  runs: { success: number; failure: number };
  countersChecked: number;
  seriesChecked: number;
}

export const newStats = (): BodyStats => ({ sequences: 0, bodies: 0, runs: { success: 0, failure: 0 }, countersChecked: 0, seriesChecked: 0 });

/** A counter for a collector's own health series, registered nowhere. */
export const looseCounter = <L extends string>(name: string, labelNames: L[]) => new Counter({ name, help: 'h', labelNames, registers: [] });

export function engineMetrics(): EngineMetrics {
  return createEngineMetrics(new Registry(), 't');
}

/**
 * The real runner around collectors fed generated answers: after every run, every served value
 * must be finite, no counter lower than before, and the exposition must parse.
 */
export function harness(collectors: Collector[], clock: ManualClock, metrics: EngineMetrics, stats: BodyStats) {
  const texts = new Map<string, string>();
  const runner = new Runner({
    collectors, metrics, clock, stalenessMs: 3_600_000, log: pino({ level: 'silent' }), saveState: async () => false,
    publisher: { publish: async (name, t) => void texts.set(name, t), withdraw: (name) => void texts.delete(name) },
    guard: new CardinalityGuard(() => 1000, 3_600_000, () => {}),
  });
  const totals = new Map<string, number>();
  return async function run(name: string): Promise<void> {
    const result = await runner.run(name);
    stats.runs[result === 'success' ? 'success' : 'failure']++;
    for (const s of parseExposition([...texts.values()].join(''))) {
      stats.seriesChecked++;
      expect(Number.isFinite(s.value), `${s.name} ${s.value}`).toBe(true);
      if (!s.name.endsWith('_total') && !s.name.endsWith('_count') && !s.name.endsWith('_bucket') && !s.name.endsWith('_sum')) continue;
      const key = `${s.name}${JSON.stringify(s.labels)}`;
      expect(s.value, key).toBeGreaterThanOrEqual(totals.get(key) ?? 0);
      totals.set(key, s.value);
      stats.countersChecked++;
    }
  };
}

/** The state file's folder: in memory where there is /dev/shm (the body tests write it many times a poll, with fsync). */
export const stateRoot = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** An exporter (engine inline) against `sim` on `clock`; its log lines, raw, appended to `lines`. */
export async function bootExporter(text: string, sim: Simulator, clock: ManualClock, lines: string[]): Promise<App> {
  const cfg = parseConfig(text, {}, process.cwd());
  useSimulator(cfg, sim.endpoints);
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(line);
      cb();
    },
  });
  return App.create({ config: cfg, log: createLogger('debug', sink), clock });
}

/** Nesting depth of a parsed value (objects and arrays), without recursion. */
export function depthOf(v: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[v, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (x && typeof x === 'object') {
      max = Math.max(max, d + 1);
      for (const c of Object.values(x)) stack.push([c, d + 1]);
    }
  }
  return max;
}
