import { afterEach, describe, expect, it } from 'vitest';
import { find, value } from '../helpers/exposition.js';
import { REALTIME_COUNTERS as COUNTERS, labelSets, settledSum } from '../conviva/expected.js';
import { MINUTE, T0, startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';
import type { FaultRule } from '../../src/simulator/faults.js';
import { revisedLate } from '../../src/sources/conviva/fake-data.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

describe('the counter law', () => {
  it('after N minutes with faults and re-reads, every _total equals the sum of the settled buckets served, late revisions included', async () => {
    stack = await startStack();
    const s = stack;
    // Each step: how far the clock moves, the faults during the run(s), and how many runs.
    const steps: Array<{ advance: number; faults?: FaultRule[]; runs?: number; expect: 'success' | 'failure' }> = [
      { advance: 0, expect: 'success' },
      { advance: MINUTE, expect: 'success' },
      { advance: MINUTE, faults: [{ kind: 'status', status: 500 }], expect: 'failure' }, // storm
      { advance: MINUTE, faults: [{ kind: 'malformed' }], expect: 'failure' }, // (all requests: an aborted request of the previous run may still reach the simulator)
      { advance: MINUTE, expect: 'success' }, // catch-up of 2 minutes
      { advance: 20_000, runs: 3, expect: 'success' }, // re-reads within the same minute
      { advance: 40_000, faults: [{ kind: 'status', status: 429, retryAfter: 0, remaining: 2 }], expect: 'success' },
      { advance: 30_000, expect: 'success' }, // overlapping windows, half a minute apart
      { advance: 30_000, expect: 'success' },
      { advance: MINUTE, faults: [{ kind: 'status', status: 503, match: 'appVersion' }], expect: 'failure' }, // one scope fails
      { advance: MINUTE, faults: [{ kind: 'status', status: 503, match: 'appVersion' }], expect: 'failure' },
      { advance: MINUTE, faults: [{ kind: 'status', status: 500, remaining: 1 }], runs: 2, expect: 'success' },
      { advance: 3 * MINUTE, expect: 'success' },
    ];
    let lastSuccess = T0;
    for (const step of steps) {
      s.clock.advance(step.advance);
      s.sim.faults.set(step.faults ?? []);
      for (let i = 0; i < (step.runs ?? 1); i++) {
        const { result } = await s.run();
        if (i === 0) expect(result, `run at +${(s.clock.now() - T0) / 1000}s`).toBe(step.expect);
        if (result === 'success') lastSuccess = s.clock.now();
      }
    }
    s.sim.faults.clear();
    const samples = await s.samples();
    const first = Math.floor((T0 - 2 * MINUTE) / MINUTE) * MINUTE;
    const last = Math.floor((lastSuccess - 2 * MINUTE) / MINUTE) * MINUTE;
    expect((last - first) / MINUTE + 1).toBe(13); // thirteen settled minutes in all
    // Some of them were revised late (grew after they settled): the counters must have caught up.
    let late = 0;
    for (let ts = first; ts <= last; ts += MINUTE) if (revisedLate({ seed: 7, account: 'demo' }, ts)) late++;
    expect(late).toBeGreaterThan(0);
    const sets = labelSets(s.sim, 'demo', ['all', 'ios', 'sports'], ['total', 'device_os', 'tag_appVersion']);
    expect(sets.length).toBeGreaterThan(20);
    let checked = 0;
    for (const ls of sets) {
      for (const [family, key] of COUNTERS) {
        expect(value(samples, family, { ...ls }), `${family}${JSON.stringify(ls)}`).toBe(settledSum(s.sim, ls, first, last, key));
        checked++;
      }
    }
    expect(checked).toBe(sets.length * COUNTERS.length);
    // no stray label sets either
    expect(find(samples, 'conviva_attempts_total')).toHaveLength(sets.length);
  });
});
