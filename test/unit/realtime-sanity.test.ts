import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { Runner } from '../../src/engine/runner.js';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import type { RealtimeQuery } from '../../src/sources/conviva/client.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { createRealtimeCollector } from '../../src/sources/conviva/realtime.js';
import { parseExposition, value } from '../helpers/exposition.js';

const M = 60_000;
const T0 = Date.UTC(2026, 10, 23, 20, 0, 30);

/** An upstream that answers each minute's bucket with the attempts count the test sets. */
function hostile(counts: Map<number, unknown>) {
  return {
    account: { name: 'prod', clientId: 'x', clientSecret: 'y' },
    async realtime(q: RealtimeQuery) {
      void q;
      return {
        time_series: [...counts].map(([ts, count]) => ({ timestamp: { epoch_ms: ts }, attempts: { count } })),
      };
    },
  };
}

describe('real-time counters against hostile numbers', () => {
  it('never decrease and never become non-finite: negative, huge and overflowing counts are skipped and counted', async () => {
    const config = parseConfig('sources:\n  conviva:\n    accounts: [{ name: prod, client_id: x, client_secret: y }]\n    realtime: { metrics: [attempts] }\n', {}, '.');
    const registry = new Registry();
    const metrics = createEngineMetrics(registry, 't');
    const clock = new ManualClock(T0);
    const counts = new Map<number, unknown>();
    const settled = T0 - 30_000 - 2 * M; // 19:58, the newest settled minute at T0
    const collector = createRealtimeCollector({
      clients: [hostile(counts)],
      config: (config.sources.conviva as ConvivaConfig).realtime,
      engine: metrics,
      bucketsMissed: new Counter({ name: 'm_total', help: 'h', labelNames: ['collector'], registers: [] }),
    });
    let text = '';
    const lines: Array<Record<string, unknown>> = [];
    const runner = new Runner({
      collectors: [collector], metrics, clock, stalenessMs: 300_000,
      log: pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) }),
      publisher: { publish: async (_n, t) => void (text = t), withdraw: () => {} },
      saveState: async () => false,
      guard: new CardinalityGuard(() => 100, 3_600_000, () => {}),
    });
    const total = () => value(parseExposition(text), 'conviva_attempts_total', { account: 'prod', filter: 'all', dimension: 'total', value: 'total' });
    const parseErrors = async () => (await metrics.parseErrors.get()).values.reduce((n, v) => n + v.value, 0);

    counts.set(settled, 400);
    expect(await runner.run('conviva_realtime')).toBe('success');
    expect(total()).toBe(400);

    // a negative count: skipped and counted, the counter stays
    clock.advance(M);
    counts.set(settled + M, -800);
    await runner.run('conviva_realtime');
    expect(total()).toBe(400);
    expect(await parseErrors()).toBe(1);
    expect(lines.filter((l) => l.msg === 'skipped upstream values that are not non-negative numbers')).toHaveLength(1);

    // a huge count is a number; the next one would overflow the total to +Inf: refused
    clock.advance(M);
    counts.set(settled + 2 * M, 1.7e308);
    await runner.run('conviva_realtime');
    clock.advance(M);
    counts.set(settled + 3 * M, 1.7e308);
    await runner.run('conviva_realtime');
    expect(Number.isFinite(total())).toBe(true);
    expect(total()).toBe(400 + 1.7e308);
    expect(text).not.toMatch(/Inf|NaN/);
    // the carried state holds the same finite total (JSON would turn Infinity into null)
    const carried = JSON.parse(JSON.stringify(collector.state!.carry())) as { scopes: Array<{ counters: Array<{ totals: Record<string, unknown> }> }> };
    expect(carried.scopes[0]!.counters[0]!.totals).toEqual({ conviva_attempts_total: 400 + 1.7e308 });
  });
});
