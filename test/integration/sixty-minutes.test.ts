import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createLogger } from '../../src/logger.js';
import type { FaultRule } from '../../src/simulator/faults.js';
import { Simulator } from '../../src/simulator/server.js';
import { revisedLate } from '../../src/sources/conviva/fake-data.js';
import { convivaStorm } from '../faults/plugins/conviva.js';
import { parseExposition, value, type ParsedSample } from '../helpers/exposition.js';
import { MINUTE, T0, useSimulator } from '../helpers/stack.js';

// Issue 8's end-to-end law for Conviva: 60 simulated minutes of real time, DPI Flow and sample
// sessions with transient faults, the simulator's late revisions, a 40-minute outage of every
// Conviva API and a restart, after which every counter equals what the simulator served, no more
// and no less. The minutes the outage took out of the 15-minute real-time window come from the
// historical APIs (catch-up); the restart comes while they are still owed, so they are carried in
// the state file. The oracle is the fault suite's (test/faults/plugins/conviva.ts, seed 11).

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Transient faults by minute (every other minute is clean): each API, each kind. */
const TRANSIENT: Record<number, FaultRule[]> = {
  2: [{ kind: 'status', status: 503, match: '/real-time-metrics' }],
  3: [{ kind: 'malformed', match: '/flow-data/real-time-metrics' }],
  4: [{ kind: 'status', status: 429, retryAfter: 0, remaining: 3 }, { kind: 'truncate', match: '/sessions' }],
  6: [{ kind: 'hang', match: '/group-by/', remaining: 2 }],
  // After the outage: the first historical reads fail, and are read again at the next run.
  49: [{ kind: 'status', status: 500, match: '/metrics/' }],
  53: [{ kind: 'malformed', match: '/insights/3.0/metrics/' }, { kind: 'status', status: 502, match: '/flow-data/real-time-metrics', remaining: 4 }],
  56: [{ kind: 'status', status: 503, match: '/sessions' }],
};
const OUTAGE = { from: 8, to: 48 }; // minutes [8, 48): every Conviva request answers 503
const RESTART_AFTER = 48; // the run that sees the gap records it, then the process goes

describe('60 simulated minutes of Conviva', () => {
  it('with faults, late revisions, a 40-minute outage and a restart: every real-time, flow and session counter equals what the simulator served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sixty-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    for (const [name, content] of Object.entries(convivaStorm.files ?? {})) writeFileSync(join(dir, name), content, { mode: 0o600 });
    const configText = `
engine: { staleness: 90m, shutdown_grace: 200ms, state_file: ${join(dir, 'state.json')} }
sources:
  conviva:${convivaStorm.configBlock.replace('timeout: 800ms\n      metrics', 'timeout: 3s\n      metrics')}`;
    const clock = new ManualClock(T0);
    const sim = new Simulator({ clock, seed: 11 });
    await sim.listen('127.0.0.1', 0);
    cleanups.push(() => sim.close());
    const logs: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const log = createLogger('info', sink);
    const start = async () => {
      const config = parseConfig(configText, { SECRET_DIR: dir }, dir);
      useSimulator(config, sim.endpoints);
      return App.create({ config, log, clock });
    };
    let app = await start();
    let stopped = false;
    cleanups.push(() => (stopped ? undefined : app.stop()));
    const runAll = async () => {
      const results: string[] = [];
      for (const name of app.runner.collectorNames) results.push(await app.runner.run(name));
      return results;
    };
    const samples = async (): Promise<ParsedSample[]> => parseExposition(await app.text());
    const highest = new Map<string, number>();
    const families = new Set(convivaStorm.counterFamilies);
    /** No counter reading is ever lower than one before it, across the restart too. */
    const checkMonotonic = (list: ParsedSample[], when: string) => {
      for (const s of list) {
        if (!families.has(s.name)) continue;
        const k = `${s.name}${JSON.stringify(s.labels)}`;
        expect(s.value, `${k} at ${when}`).toBeGreaterThanOrEqual(highest.get(k) ?? 0);
        highest.set(k, s.value);
      }
    };

    const firstRunAt = clock.now();
    let failedRuns = 0;
    let owedAtRestart = 0;
    for (let minute = 0; minute < 60; minute++) {
      if (minute > 0) clock.advance(MINUTE);
      const outage = minute >= OUTAGE.from && minute < OUTAGE.to;
      sim.faults.set(outage ? [{ kind: 'status', status: 503 }] : (TRANSIENT[minute] ?? []));
      const results = await runAll();
      failedRuns += results.filter((r) => r === 'failure').length;
      if (outage) expect(results.filter((r) => r === 'success'), `minute ${minute}: the outage fails every run`).toEqual([]);
      const now = await samples();
      checkMonotonic(now, `minute ${minute}`);
      if (minute === RESTART_AFTER) {
        // 40 minutes down: 13 settled minutes are still in the real-time window, the rest are owed.
        owedAtRestart = value(now, 'conviva_exporter_buckets_owed', { collector: 'conviva_realtime' }) ?? 0;
        expect(value(now, 'conviva_exporter_buckets_owed', { collector: 'conviva_flow' })).toBe(owedAtRestart);
        await app.stop();
        app = await start();
      }
    }
    // Owed: the minutes from the one after the newest settled one before the outage (minute
    // OUTAGE.from - 3, read at OUTAGE.from - 1) to the oldest the real-time window still served at
    // the restart; and before them, the minutes counted but not read again once their revisions
    // were in (their growth only).
    const neverCounted = RESTART_AFTER - 14 - (OUTAGE.from - 2);
    expect(owedAtRestart).toBeGreaterThan(neverCounted);
    expect(failedRuns).toBeGreaterThan((OUTAGE.to - OUTAGE.from) * 3);

    // The end: no faults, one clean run.
    sim.faults.clear();
    clock.advance(MINUTE);
    const lastRunAt = clock.now();
    expect(await runAll()).toEqual(app.runner.collectorNames.map(() => 'success'));
    const final = await samples();
    checkMonotonic(final, 'the end');
    await app.stop();
    stopped = true;

    // Late revisions happened in the span, and the historical API was read.
    let late = 0;
    for (let ts = firstRunAt; ts < lastRunAt; ts += MINUTE) if (revisedLate({ seed: 11, account: 'demo' }, Math.floor(ts / MINUTE) * MINUTE)) late++;
    expect(late).toBeGreaterThan(5);
    // (Paths below each API's mount: /insights/3.0 and /flow-data.)
    expect(sim.requests.filter((r) => r.path.startsWith('/metrics/custom-selection') && r.status === 200).length).toBeGreaterThan(0);
    expect(sim.requests.filter((r) => /^\/metrics\/[^/]+\/\d+_to_\d+/.test(r.path) && r.status === 200).length).toBeGreaterThan(0);
    for (const collector of ['conviva_realtime', 'conviva_flow']) {
      expect(value(final, 'conviva_exporter_buckets_missed_total', { collector }), collector).toBe(0);
      expect(value(final, 'conviva_exporter_buckets_owed', { collector }), collector).toBe(0);
      expect(value(final, 'conviva_exporter_buckets_recovered_total', { collector }), collector).toBe(RESTART_AFTER - 14 - (OUTAGE.from - 2));
    }
    expect(logs.filter((l) => l.msg === 'historical reads failed (catch-up and audit wait for the next run)').length).toBeGreaterThan(0);

    // Every counter series the simulator's record calls for, with exactly its value, and no other.
    const expected = convivaStorm.expected(sim, { firstRunAt, lastRunAt });
    const key = (s: ParsedSample) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    const want = new Map(expected.map((s) => [key(s), s.value]));
    const got = new Map(final.filter((s) => families.has(s.name)).map((s) => [key(s), s.value]));
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    const wrong = [...want].filter(([k, v]) => got.get(k) !== v).map(([k, v]) => `${k}: served ${got.get(k)}, simulator ${v}`);
    expect(wrong).toEqual([]);
    expect(want.size).toBeGreaterThan(300);
  });
});
