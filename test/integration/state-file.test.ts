import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../src/config/load.js';
import type { Collector } from '../../src/engine/collector.js';
import { Engine } from '../../src/engine/engine.js';
import { defineSource } from '../../src/engine/source.js';
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

  it('a watermark ahead of the clock (a clock stepped back) is reported, and counters wait for it without counting twice', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    const first = await startStack({ start: T0 + 20 * MINUTE, mutate: (c) => (c.engine.state_file = path) });
    stacks.push(first);
    const before = (await first.run()).samples;
    await first.close();
    stacks.pop();
    // The next process's clock is 20 minutes behind.
    const second = await startStack({ start: T0, mutate: (c) => (c.engine.state_file = path) });
    stacks.push(second);
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    const { samples } = await second.run();
    expect(value(samples, 'conviva_exporter_watermark_ahead_seconds', { collector: 'conviva_realtime' })).toBe(20 * 60);
    expect(value(samples, 'conviva_attempts_total', total)).toBe(value(before, 'conviva_attempts_total', total));
    await second.run();
    expect(second.logs.filter((l) => l.msg === 'counter watermark ahead of the clock: counters wait until the clock passes it')).toHaveLength(1);
    // once the clock has passed the watermark, counting resumes from it
    second.clock.advance(21 * MINUTE);
    const after = (await second.run()).samples;
    expect(value(after, 'conviva_exporter_watermark_ahead_seconds', { collector: 'conviva_realtime' })).toBe(0);
    expect(value(after, 'conviva_attempts_total', total)).toBe(
      value(before, 'conviva_attempts_total', total) + settledSum(second.sim, total, SETTLED_AT_T0 + 21 * MINUTE, SETTLED_AT_T0 + 21 * MINUTE, 'attempts'),
    );
  });

  it('the state is on disk before the counters it carries are served: after a crash no counter comes back lower than a scrape saw', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    const first = await startStack({ mutate: (c) => (c.engine.state_file = path) });
    stacks.push(first);
    await first.run();
    first.clock.advance(MINUTE);
    // A kill -9 the instant the exposition takes the new counters leaves what is on disk then.
    let onDisk = '';
    const update = first.app.exposition.update.bind(first.app.exposition);
    first.app.exposition.update = (parts, remove) => {
      if (parts.some((p) => p.name.includes('conviva_realtime'))) onDisk = readFileSync(path, 'utf8');
      update(parts, remove);
    };
    const scraped = (await first.run()).samples;
    await first.close();
    stacks.pop();
    writeFileSync(path, onDisk);
    // The restarted exporter finds one scope failing: it serves what the state carries for it.
    const second = await startStack({ start: T0 + MINUTE, mutate: (c) => (c.engine.state_file = path) });
    stacks.push(second);
    second.sim.faults.set([{ kind: 'status', status: 500, match: 'appVersion' }]);
    const { result, samples } = await second.run();
    expect(result).toBe('failure');
    const counters = find(scraped, 'conviva_attempts_total', { dimension: 'tag_appVersion' });
    expect(counters.length).toBeGreaterThan(10);
    for (const c of counters) expect(value(samples, 'conviva_attempts_total', c.labels), JSON.stringify(c.labels)).toBe(c.value);
  });

  it('keeps no client id in the file, and still adopts the unhashed scope keys an earlier version wrote', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    const legacyKey = JSON.stringify(['demo', 'demo-client', { name: 'all' }, null, 60_000]);
    writeFileSync(path, JSON.stringify({ version: 1, savedAt: 'x', collectors: { conviva_realtime: { version: 1, scopes: [
      { key: legacyKey, watermark: SETTLED_AT_T0 - MINUTE, counters: [{ labels: ['demo', 'all', 'total', 'total'], totals: { conviva_attempts_total: 1000 } }] },
    ] } } }));
    const s = await startStack({ mutate: (c) => (c.engine.state_file = path) });
    stacks.push(s);
    const { samples } = await s.run();
    const total = { account: 'demo', filter: 'all', dimension: 'total', value: 'total' };
    expect(value(samples, 'conviva_attempts_total', total)).toBe(1000 + settledSum(s.sim, total, SETTLED_AT_T0, SETTLED_AT_T0, 'attempts'));
    await s.close();
    stacks.pop();
    expect(readFileSync(path, 'utf8')).not.toContain('demo-client');
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

describe('state on demand', () => {
  /** A source whose collector records a remote job as started, and asks for the state on disk before going on. */
  function jobSource(seen: { durable?: boolean; onDisk?: unknown }, statePath = '') {
    const started: string[] = [];
    const collector: Collector = {
      name: 'test_jobs',
      schedule: '* * * * *',
      timeoutMs: 5000,
      families: [],
      state: { version: 7, carry: () => ({ started: [...started] }), adopt: (s) => started.push(...((s as { started: string[] }).started ?? [])) },
      async collect(ctx) {
        started.push(`run-${started.length + 1}`);
        seen.durable = await ctx.saveState();
        // what is on disk now, before the run has published anything
        seen.onDisk = seen.durable ? JSON.parse(readFileSync(statePath, 'utf8')) : undefined;
        return {};
      },
    };
    return defineSource<Record<string, never>, Record<string, never>>({
      name: 'testjobs',
      configSchema: z.strictObject({}),
      resolve: (raw) => raw,
      families: [],
      build: () => [collector],
      fake: () => ({ mount: () => {} }),
      useSimulator: (c) => c,
    });
  }

  it('a collector can have its state written before a step that cannot be undone, atomically, versioned per collector', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'state-')), 'state.json');
    const seen: { durable?: boolean; onDisk?: unknown } = {};
    const config = parseConfig(`engine: { state_file: ${path} }\nsources: {}\n`, {}, '/');
    config.sources.testjobs = {};
    const log = pino({ level: 'silent' });
    const engine = new Engine({ config, log, sink: { update: () => {} }, version: 't', sources: [jobSource(seen, path)] });
    expect(await engine.runner.run('test_jobs')).toBe('success');
    expect(seen.durable).toBe(true);
    expect(seen.onDisk).toMatchObject({ version: 2, collectors: { test_jobs: { version: 7, state: { started: ['run-1'] } } } });
    await engine.stop();

    // a restart adopts it; state of another format version would not be handed over
    const again: { durable?: boolean; onDisk?: unknown } = {};
    const second = new Engine({ config, log, sink: { update: () => {} }, version: 't', sources: [jobSource(again, path)] });
    await second.runner.run('test_jobs');
    expect(again.onDisk).toMatchObject({ collectors: { test_jobs: { state: { started: ['run-1', 'run-2'] } } } });
    await second.stop();
  });

  it('without a state file, saveState answers false and the run goes on', async () => {
    const seen: { durable?: boolean } = {};
    const config = parseConfig('sources: {}\n', {}, '/');
    config.sources.testjobs = {};
    const engine = new Engine({ config, log: pino({ level: 'silent' }), sink: { update: () => {} }, version: 't', sources: [jobSource(seen)] });
    expect(await engine.runner.run('test_jobs')).toBe('success');
    expect(seen.durable).toBe(false);
    await engine.stop();
  });
});
