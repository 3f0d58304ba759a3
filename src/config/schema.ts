import { z } from 'zod';
import { SOURCES } from '../sources/index.js';
import { duration } from './fields.js';
import { parseListenAddress } from './listen.js';

// The shared part of the config; each source brings its own block under `sources.<name>`.
// Defaults live here (and in each source's schema) and nowhere else. Every object is strict.

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      listen_address: z.string().refine((a) => parseListenAddress(a) !== undefined, 'expected host:port').default(':19440'),
    })
    .default({ listen_address: ':19440' }),
  log: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    })
    .default({ level: 'info' }),
  engine: z
    .strictObject({
      staleness: duration('5m'),
      shutdown_grace: duration('10s'),
      series_idle_timeout: duration('1h'),
      state_file: z.string().min(1).optional(),
    })
    .default(() => ({ staleness: 300_000, shutdown_grace: 10_000, series_idle_timeout: 3_600_000 })),
  sources: z.strictObject(Object.fromEntries(SOURCES.map((s) => [s.name, s.configSchema.optional()]))),
});

export type RawConfig = z.output<typeof configSchema>;
