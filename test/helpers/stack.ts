import { Writable } from 'node:stream';
import { App } from '../../src/app.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createLogger } from '../../src/logger.js';
import type { SimulatorEndpoints } from '../../src/simulator/fake.js';
import { Simulator } from '../../src/simulator/server.js';
import { SOURCES } from '../../src/sources/index.js';
import { parseExposition, type ParsedSample } from './exposition.js';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** 2026-11-23 20:00:30 UTC: 30 s into a minute, at the daily peak. */
export const T0 = Date.UTC(2026, 10, 23, 20, 0, 30);
export const MINUTE = 60_000;

export interface Stack {
  clock: ManualClock;
  sim: Simulator;
  app: App;
  logs: LogLine[];
  config: Config;
  /** Runs one collector (by default the only one) once and returns the parsed exposition. */
  run(collector?: string): Promise<{ result: string; samples: ParsedSample[] }>;
  samples(): Promise<ParsedSample[]>;
  close(): Promise<void>;
}

/** Points every configured source at the simulator, as --demo does. */
export function useSimulator(config: Config, sim: SimulatorEndpoints): void {
  for (const s of SOURCES) if (config.sources[s.name] !== undefined) config.sources[s.name] = s.useSimulator(config.sources[s.name], sim);
}

/**
 * Simulator + App (engine inline) on loopback sharing a manual clock; logs captured as parsed JSON
 * lines. Every configured source points at the simulator.
 */
export async function startStack(opts: {
  configText: string;
  start?: number;
  seed?: number;
  mutate?: (c: Config) => void;
  /** A restart: a new exporter against this running simulator and clock (its state file survives). */
  on?: { sim: Simulator; clock: ManualClock };
  /** The collector `run()` runs when not told. */
  collector?: string;
}): Promise<Stack> {
  const clock = opts.on?.clock ?? new ManualClock(opts.start ?? T0);
  const sim = opts.on?.sim ?? new Simulator({ clock, seed: opts.seed ?? 7 });
  if (!opts.on) await sim.listen('127.0.0.1', 0);
  const config = parseConfig(opts.configText, {}, process.cwd());
  useSimulator(config, sim.endpoints);
  opts.mutate?.(config);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const app = await App.create({ config, log: createLogger('debug', sink), clock });
  const samples = async () => parseExposition(await app.text());
  return {
    clock, sim, app, logs, config, samples,
    async run(collector?: string) {
      const names = app.runner.collectorNames;
      const name = collector ?? opts.collector ?? (names.length === 1 ? names[0]! : undefined);
      if (!name) throw new Error(`say which collector to run: ${names.join(', ')}`);
      const result = await app.runner.run(name);
      return { result, samples: await samples() };
    },
    async close() {
      await app.stop();
      await sim.close();
    },
  };
}
