import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/load.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { value } from '../helpers/exposition.js';
import { MINUTE, startRealtimeStack, type Stack } from '../conviva/stack.js';

const conviva = (c: Config) => c.sources.conviva as ConvivaConfig;
const C = 'conviva_realtime';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** Runs the collector once a minute for `minutes` minutes. */
async function runMinutes(s: Stack, minutes: number) {
  for (let i = 0; i < minutes; i++) {
    s.clock.advance(MINUTE);
    expect((await s.run()).result).toBe('success');
  }
  return s.samples();
}

describe('the audit against the historical record', () => {
  it('finds no divergence when the counters took every late revision in, reading each ungrouped scope once an interval', async () => {
    stack = await startRealtimeStack();
    const samples = await runMinutes(stack, 60);
    // Three filters' totals audited: the first batch once a minute is 20 minutes old, then every 15.
    const audits = stack.sim.requests.filter((r) => r.path === '/metrics/custom-selection');
    expect(audits.length).toBeGreaterThanOrEqual(3 * 2);
    expect(audits.length).toBeLessThanOrEqual(3 * 4);
    expect(stack.sim.requests.filter((r) => r.path.startsWith('/metrics/custom-selection/group-by'))).toHaveLength(0);
    const buckets = value(samples, 'conviva_exporter_audit_buckets_total', { collector: C })!;
    expect(buckets).toBeGreaterThanOrEqual(3 * 25);
    for (const family of ['conviva_attempts_total', 'conviva_plays_total', 'conviva_ended_plays_total']) {
      const counted = value(samples, 'conviva_exporter_audit_counted_total', { collector: C, family })!;
      expect(counted, family).toBeGreaterThan(0);
      expect(value(samples, 'conviva_exporter_audit_reference_total', { collector: C, family }), family).toBe(counted);
      expect(value(samples, 'conviva_exporter_audit_divergence_ratio', { collector: C, family }), family).toBe(0);
    }
  });

  it('shows the undercount of a revise_window too short for the late revisions, as a negative divergence', async () => {
    stack = await startRealtimeStack({ mutate: (c) => (conviva(c).realtime.revise_window = MINUTE) });
    const samples = await runMinutes(stack, 60);
    const family = 'conviva_attempts_total';
    const counted = value(samples, 'conviva_exporter_audit_counted_total', { collector: C, family })!;
    const reference = value(samples, 'conviva_exporter_audit_reference_total', { collector: C, family })!;
    // A quarter of the minutes get their last 3% after they settled: about 0.75% short.
    expect(counted).toBeLessThan(reference);
    expect(counted / reference - 1).toBeLessThan(-0.002);
    expect(counted / reference - 1).toBeGreaterThan(-0.03);
    expect(value(samples, 'conviva_exporter_audit_divergence_ratio', { collector: C, family })).toBeLessThan(0);
  });

  it('with audit off, reads no historical data while nothing is owed', async () => {
    stack = await startRealtimeStack({ mutate: (c) => (conviva(c).audit.enabled = false) });
    const samples = await runMinutes(stack, 40);
    expect(stack.sim.requests.filter((r) => r.path.startsWith('/metrics/'))).toHaveLength(0);
    expect(value(samples, 'conviva_exporter_audit_buckets_total', { collector: C })).toBe(0);
  });
});
