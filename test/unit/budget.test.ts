import pino from 'pino';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Engine } from '../../src/engine/engine.js';
import { createBudgetMetrics, RequestBudget, WindowBudget } from '../../src/engine/limits.js';
import type { AnySource, SourceServices } from '../../src/engine/source.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('RequestBudget with a cost', () => {
  it('takes `cost` units of the minute: 12 requests of cost 5 spend a 60/min budget, the 13th waits 5 s', async () => {
    vi.useFakeTimers({ now: 0 });
    const b = new RequestBudget('api', 'acct', 60, () => Date.now()); // one unit a second
    for (let i = 0; i < 12; i++) expect(await b.take('e', 10_000, undefined, 5)).toBe(0);
    // 5 units need 5 s of refill: a deadline a millisecond short of it is refused at once.
    await expect(b.take('e', 4_999, undefined, 5)).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'api', account: 'acct' });
    const p = b.take('e', 5_000, undefined, 5);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await p).toBe(5_000);
    // The default cost is still one unit: a second of refill.
    const one = b.take('e', 20_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await one).toBe(1_000);
  });

  it('clamps a cost above the capacity to it: such a request goes whenever the bucket is full', async () => {
    let now = 0;
    const b = new RequestBudget('api', 'acct', 10, () => now);
    expect(await b.take('e', 0, undefined, 50)).toBe(0); // a full bucket lets it through
    expect(await b.take('e', 0, undefined, 0)).toBe(0);
    await expect(b.take('e', now + 59_999, undefined, 50)).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED' });
    now += 60_000; // refilled to the top
    expect(await b.take('e', now, undefined, 50)).toBe(0);
    await expect(b.take('e', now + 5_000, undefined, 1)).rejects.toThrow('request budget of 10/min exhausted for api/acct');
  });
});

/** True when no `windowMs` span holds more than `max` of the (sorted) times. */
function atMost(times: number[], max: number, windowMs: number): boolean {
  const t = [...times].sort((a, b) => a - b);
  for (let i = 0; i + max < t.length; i++) if (t[i + max]! - t[i]! < windowMs) return false;
  return true;
}

describe('WindowBudget', () => {
  it('lets exactly max requests through in any window: the next waits for the oldest to leave it', async () => {
    vi.useFakeTimers({ now: 0 });
    const b = new WindowBudget('api', 'acct', 3, 1_000, () => Date.now());
    const sent: number[] = [];
    const all = Array.from({ length: 10 }, () => b.take('e', 60_000).then(() => sent.push(Date.now())));
    await vi.advanceTimersByTimeAsync(10_000);
    await Promise.all(all);
    // Three at once, then three each time the oldest of the last three is a window old.
    expect(sent).toEqual([0, 0, 0, 1_000, 1_000, 1_000, 2_000, 2_000, 2_000, 3_000]);
    expect(atMost(sent, 3, 1_000)).toBe(true);
  });

  it('holds the limit, and only waits when it must, for requests arriving at any time', async () => {
    vi.useFakeTimers({ now: 0 });
    const b = new WindowBudget('api', 'acct', 5, 1_000, () => Date.now());
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const sent: number[] = [];
    const waits: Array<Promise<number>> = [];
    for (let i = 0; i < 200; i++) {
      waits.push(b.take('e', Infinity).then((w) => {
        sent.push(Date.now());
        return w;
      }));
      await vi.advanceTimersByTimeAsync(Math.floor(random() * 300));
    }
    await vi.advanceTimersByTimeAsync(100_000);
    const waited = await Promise.all(waits);
    expect(sent).toHaveLength(200);
    expect(atMost(sent, 5, 1_000)).toBe(true);
    expect(atMost(sent, 5, 1_001)).toBe(false); // tight: some window of 1 s holds all 5 it may
    expect(waited.some((w) => w === 0)).toBe(true);
    expect(waited.some((w) => w > 0)).toBe(true);
  });

  it('refuses at once, counted, when the oldest leaves the window after the deadline; a refusal takes nothing', async () => {
    let now = 0;
    const metrics = createBudgetMetrics(new Registry());
    const b = new WindowBudget('conviva_ip', 'all', 2, 300_000, () => now, metrics);
    expect(await b.take('e', 0)).toBe(0);
    now = 100_000;
    expect(await b.take('e', now)).toBe(0);
    await expect(b.take('e', 299_999)).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_ip', account: 'all', endpoint: 'e' });
    await expect(b.take('e', 299_999)).rejects.toThrow('request budget of 2 per 5m exhausted for conviva_ip/all');
    expect((await metrics.exhausted.get()).values).toEqual([{ labels: { api: 'conviva_ip', account: 'all' }, value: 2 }]);
    now = 300_000; // the first left the window; the refused ones reserved nothing
    expect(await b.take('e', now)).toBe(0);
    await expect(b.take('e', now + 99_999)).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED' });
  });

  it('counts the time waited in budget_wait_seconds_total, and a forgotten budget drops its series', async () => {
    vi.useFakeTimers({ now: 0 });
    const metrics = createBudgetMetrics(new Registry());
    const b = new WindowBudget('conviva_ip', 'all', 1, 2_000, () => Date.now(), metrics);
    expect((await metrics.wait.get()).values).toEqual([{ labels: { api: 'conviva_ip', account: 'all' }, value: 0 }]);
    await b.take('e', 10_000);
    const p = b.take('e', 10_000);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await p).toBe(2_000);
    expect((await metrics.wait.get()).values).toEqual([{ labels: { api: 'conviva_ip', account: 'all' }, value: 2 }]);
    b.forget();
    expect((await metrics.wait.get()).values).toEqual([]);
    expect((await metrics.exhausted.get()).values).toEqual([]);
  });

  it('is not drained by a clock stepped backwards (an hour back must not cost an hour of waiting)', async () => {
    let now = 3_600_000;
    const b = new WindowBudget('api', 'acct', 2, 1_000, () => now);
    expect(await b.take('e', now)).toBe(0);
    expect(await b.take('e', now)).toBe(0);
    now -= 3_600_000; // NTP steps the clock back an hour
    await expect(b.take('e', now + 999)).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED' }); // still full: no free room either
    now += 1_000; // a window after the two were sent, counted from the step
    expect(await b.take('e', now)).toBe(0);
    expect(await b.take('e', now)).toBe(0);
  });
});

describe('Engine budgets', () => {
  /** A source that only asks for a window budget, with the max and window its config block gives. */
  function windowSource(got: { budget?: ReturnType<SourceServices['windowBudget']> }): AnySource {
    return {
      name: 'test',
      configSchema: z.unknown(),
      resolve: (raw: unknown) => raw,
      families: [],
      build(config: { max: number; windowMs: number } | undefined, services: SourceServices) {
        if (config) got.budget = services.windowBudget('test_ip', 'all', config.max, config.windowMs);
        return [];
      },
      fake: () => {
        throw new Error('unused');
      },
      useSimulator: (c: unknown) => c,
    };
  }
  const configWith = (block: unknown) => ({ ...parseConfig('sources: {}', {}, '.'), sources: block === undefined ? {} : { test: block } });

  it('keeps a window budget across reloads while asked for alike, and forgets it when not', async () => {
    const got: { budget?: WindowBudget } = {};
    const engine = new Engine({ config: configWith({ max: 1, windowMs: 60_000 }), log: pino({ level: 'silent' }), sink: { update: () => {} }, version: 't', sources: [windowSource(got)] });
    const first = got.budget!;
    expect(await first.take('e', Date.now())).toBe(0);
    await engine.reload(configWith({ max: 1, windowMs: 60_000 }));
    expect(got.budget).toBe(first);
    // The request sent before the reload still counts.
    await expect(got.budget!.take('e', Date.now())).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'test_ip', account: 'all' });
    await engine.reload(configWith({ max: 2, windowMs: 60_000 }));
    expect(got.budget).not.toBe(first);
    expect(got.budget!.max).toBe(2);
    const series = async () => (await engine.registry.getSingleMetric('conviva_exporter_budget_wait_seconds_total')!.get()).values.map((v) => v.labels);
    expect(await series()).toContainEqual({ api: 'test_ip', account: 'all' });
    await engine.reload(configWith(undefined));
    expect(await series()).not.toContainEqual({ api: 'test_ip', account: 'all' });
    await engine.stop();
  });
});
