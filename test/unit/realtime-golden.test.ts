import { readFileSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { Registry, Counter } from 'prom-client';
import { CardinalityGuard } from '../../src/engine/guard.js';
import { Runner } from '../../src/engine/runner.js';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { createRealtimeCollector, type RealtimeSource } from '../../src/sources/conviva/realtime.js';
import type { RealtimeQuery } from '../../src/sources/conviva/client.js';

const dir = new URL('../fixtures/conviva/', import.meta.url);
const recorded = (name: string): unknown => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));

/** A source that answers with recorded JSON, as the real client would hand it over. */
function recordedSource(): RealtimeSource & { queries: RealtimeQuery[] } {
  const queries: RealtimeQuery[] = [];
  return {
    queries,
    account: { name: 'prod', clientId: 'x', clientSecret: 'y' },
    async realtime(q: RealtimeQuery) {
      queries.push(q);
      return recorded(q.groupBy ? `realtime-${q.groupBy}.json` : 'realtime-total.json');
    },
  };
}

describe('real-time collector: recorded JSON in, exposition out', () => {
  it('matches the golden exposition', async () => {
    const config = parseConfig(
      `
sources:
  conviva:
    accounts: [{ name: prod, client_id: x, client_secret: y }]
    realtime:
      metrics: [attempts, plays, rebuffering-ratio, bitrate, video-start-time, concurrent-plays]
      group_by: [device-os]
      group_limit: 4
`,
      {},
      '.',
    );
    const metrics = createEngineMetrics(new Registry(), 'test');
    const source = recordedSource();
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 20, 0, 30));
    const bucketsMissed = new Counter({ name: 'missed_total', help: 'h', labelNames: ['collector'], registers: [] });
    const collector = createRealtimeCollector({ clients: [source], config: (config.sources.conviva as ConvivaConfig).realtime, engine: metrics, bucketsMissed });
    let text = '';
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    const runner = new Runner({
      collectors: [collector], metrics, log, clock, stalenessMs: 300_000,
      publisher: { publish: async (_name, t) => void (text = t), withdraw: () => {} },
      saveState: async () => false,
      guard: new CardinalityGuard(() => 100, 3_600_000, () => {}),
    });
    expect(await runner.run('conviva_realtime')).toBe('success');
    const golden = new URL('realtime.golden.prom', dir);
    if (process.env.UPDATE_GOLDEN) writeFileSync(golden, text);
    expect(text).toBe(readFileSync(golden, 'utf8'));
    // the first run asks for the window reaching the newest settled minute: 19:58 .. 20:00
    expect(source.queries.map((q) => q.minutes)).toEqual([3, 3]);
    expect(source.queries[1]).toMatchObject({ groupBy: 'device-os', limit: 4, sortBy: 'attempts' });
    // unreadable parts are skipped, counted and logged once each kind
    const parseErrors = (await metrics.registry.getSingleMetric('conviva_exporter_parse_errors_total')!.get()).values;
    expect(parseErrors.reduce((s, v) => s + v.value, 0)).toBe(3); // a row with no value, a bucket with no timestamp, "n/a"
    expect(lines.filter((l) => l.msg === 'skipped unreadable upstream data')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'skipped upstream values that are not non-negative numbers')).toHaveLength(1);
  });
});
