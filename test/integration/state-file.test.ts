import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { find, value } from '../helpers/exposition.js';
import { labelSets, settledSum } from '../conviva/expected.js';
import { MINUTE, T0, startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';

const SETTLED_AT_T0 = T0 - 30_000 - 2 * MINUTE;
const stacks: Stack[] = [];
afterEach(async () => {
  for (const s of stacks.splice(0)) await s.close();
});

describe('state file', () => {
  it('a restart neither resets the counters nor loses the minutes the exporter was down', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    const first = await startStack({ mutate: (c) => (c.engine.state_file = path) });
    stacks.push(first);
    await first.run();
    first.clock.advance(MINUTE);
    await first.run();
    await first.close();
    stacks.pop();
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ version: 2, collectors: { conviva_realtime: { version: 1, state: { scopes: expect.any(Array) } } } });

    // Three minutes later a new process starts from the file.
    const second = await startStack({ start: T0 + 4 * MINUTE, mutate: (c) => (c.engine.state_file = path) });
    stacks.push(second);
    expect(second.logs.some((l) => l.msg === 'collector state restored from the state file')).toBe(true);
    const { result, samples } = await second.run();
    expect(result).toBe('success');
    const sets = labelSets(second.sim, 'demo', ['all', 'ios', 'sports'], ['total', 'device_os', 'tag_appVersion']);
    for (const ls of sets) {
      expect(value(samples, 'conviva_attempts_total', { ...ls })).toBe(settledSum(second.sim, ls, SETTLED_AT_T0, SETTLED_AT_T0 + 4 * MINUTE, 'attempts'));
    }
    expect(find(samples, 'conviva_attempts_total')).toHaveLength(sets.length);
  });

  it('an unreadable state file is logged and the exporter starts afresh', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    writeFileSync(path, '{"version": 1, "collectors": {"conviva_realtime": {"version": 1, "scopes": [{"key": 5}]}}');
    const s = await startStack({ mutate: (c) => (c.engine.state_file = path) });
    stacks.push(s);
    expect(s.logs.filter((l) => l.msg === 'state file unreadable: starting without it')).toHaveLength(1);
    const { result, samples } = await s.run();
    expect(result).toBe('success');
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(samples, 'conviva_attempts_total', total)).toBe(value(samples, 'conviva_attempts', total));
  });

  it('state that does not fit (wrong shapes, unknown scopes) is ignored, not trusted', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    writeFileSync(path, JSON.stringify({ version: 1, collectors: { conviva_realtime: { version: 1, scopes: [
      { key: 'not-a-scope', watermark: 1, counters: [] },
      { key: 5, watermark: 'x', counters: 'no' },
    ] } } }));
    const s = await startStack({ mutate: (c) => (c.engine.state_file = path) });
    stacks.push(s);
    const { result, samples } = await s.run();
    expect(result).toBe('success');
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(samples, 'conviva_attempts_total', total)).toBe(value(samples, 'conviva_attempts', total));
  });
});
