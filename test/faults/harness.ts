import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { expect } from 'vitest';
import type { Collector } from '../../src/engine/collector.js';
import type { ManualClock } from '../../src/engine/clock.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { Runner } from '../../src/engine/runner.js';
import { createEngineMetrics, type EngineMetrics } from '../../src/engine/self-metrics.js';
import { parseExposition } from '../helpers/exposition.js';

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
