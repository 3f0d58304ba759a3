import { z } from 'zod';
import { SOURCES } from '../sources/index.js';
import { duration, secretPair } from './fields.js';
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
  otlp: z
    .strictObject({
      // The receiver: the full URL for http/protobuf (https://collector:4318/v1/metrics), the
      // host's URL for gRPC (http://collector:4317). No credentials in it: headers carry them.
      endpoint: z
        .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
        .refine((u) => { const x = new URL(u); return x.username === '' && x.password === ''; }, 'must not hold credentials: give them in headers (value_file)'),
      protocol: z.enum(['http/protobuf', 'grpc']).default('http/protobuf'),
      headers: z
        .array(z.strictObject({ name: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name'), ...secretPair('value') }))
        .default([]),
      interval: duration('60s'),
      timeout: duration('10s'),
      compression: z.enum(['gzip', 'none']).default('gzip'),
      // A push is sent as requests of at most this many data points: receivers cap a request's
      // size (an OpenTelemetry Collector's gRPC receiver takes 4 MiB by default; 5,000 points are
      // about 0.6 MiB with the demo's labels), and /metrics may hold 100,000 series.
      max_points_per_request: z.number().int().min(100).max(1_000_000).default(5000),
      resource_attributes: z.record(z.string().min(1), z.string()).default({}),
    })
    .refine((o) => o.timeout < o.interval, { path: ['timeout'], message: 'must be shorter than interval: a push must end before the next one is due' })
    .optional(),
  sources: z.strictObject(Object.fromEntries(SOURCES.map((s) => [s.name, s.configSchema.optional()]))),
});

export type RawConfig = z.output<typeof configSchema>;
