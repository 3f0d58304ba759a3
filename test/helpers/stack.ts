import { Writable } from 'node:stream';
import { App } from '../../src/app.js';
import { parseConfig, type Config } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createLogger } from '../../src/logger.js';
import { Simulator } from '../../src/simulator/server.js';
import { parseExposition, type ParsedSample } from './exposition.js';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** 2026-11-23 20:00:30 UTC: 30 s into a minute, at the daily peak. */
export const T0 = Date.UTC(2026, 10, 23, 20, 0, 30);
export const MINUTE = 60_000;

export const BASE_CONFIG = `
engine: { staleness: 5m, shutdown_grace: 2s }
sources:
  conviva:
    base_url: http://127.0.0.1:1/insights/3.0
    request_timeout: 400ms
    connect_timeout: 400ms
    retries: 2
    retry_base_delay: 10ms
    retry_max_delay: 40ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
    realtime:
      timeout: 10s
      metrics: [attempts, plays, concurrent-plays, video-start-failures, rebuffering-ratio, bitrate, video-start-time, ended-plays]
      group_by: [device-os, dimension-tag/appVersion]
      filters:
        - { name: all }
        - { name: ios, dimensions: { device_os: [iOS] } }
        - { name: sports, filter_id: 1234 }
`;

export interface Stack {
  clock: ManualClock;
  sim: Simulator;
  app: App;
  logs: LogLine[];
  config: Config;
  /** Runs the real-time collector once and returns the parsed exposition. */
  run(): Promise<{ result: string; samples: ParsedSample[] }>;
  samples(): Promise<ParsedSample[]>;
  close(): Promise<void>;
}

/** Simulator + App on loopback sharing a manual clock; logs captured as parsed JSON lines. */
export async function startStack(opts: { configText?: string; start?: number; seed?: number; mutate?: (c: Config) => void } = {}): Promise<Stack> {
  const clock = new ManualClock(opts.start ?? T0);
  const sim = new Simulator({ clock, seed: opts.seed ?? 7 });
  await sim.listen('127.0.0.1', 0);
  const config = parseConfig(opts.configText ?? BASE_CONFIG, {}, process.cwd());
  config.sources.conviva!.base_url = sim.convivaUrl;
  opts.mutate?.(config);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const app = new App({ config, log: createLogger('debug', sink), clock });
  const samples = async () => parseExposition(await app.exposition());
  return {
    clock, sim, app, logs, config, samples,
    async run() {
      const result = await app.runner.run('conviva_realtime');
      return { result, samples: await samples() };
    },
    async close() {
      await app.stop();
      await sim.close();
    },
  };
}
