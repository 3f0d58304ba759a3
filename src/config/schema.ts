import cron from 'node-cron';
import { z } from 'zod';
import { METRIC_PATHS, PATH_ALIASES } from '../sources/conviva/catalogue.js';
import { parseDuration } from './duration.js';
import { parseListenAddress } from './listen.js';

// Defaults live here and nowhere else. Every object is strict: an unknown key is an error.

const duration = (def: string) =>
  z
    .string({ error: 'expected a duration such as 30s, 5m or 1h30m' })
    .default(def)
    .transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `invalid duration "${s}": expected a duration such as 30s, 5m or 1h30m` });
        return z.NEVER;
      }
      return ms;
    });

const schedule = (def: string) =>
  z
    .string()
    .default(def)
    .refine((s) => cron.validate(s), { message: 'invalid cron expression' });

const LABEL_SAFE = /^[A-Za-z0-9_.:-]+$/;
const name = z.string().regex(LABEL_SAFE, 'must be letters, digits, _ . : or -');

/** A secret given inline or as a file path (exactly one); the loader reads the file. */
function secretPair<K extends string>(key: K) {
  return {
    [key]: z.string().min(1, 'must not be empty').optional(),
    [`${key}_file`]: z.string().min(1, 'must not be empty').optional(),
  } as Record<K | `${K}_file`, z.ZodOptional<z.ZodString>>;
}

const account = z.strictObject({
  name,
  ...secretPair('client_id'),
  ...secretPair('client_secret'),
});

const filter = z
  .strictObject({
    name,
    filter_id: z.union([z.string().regex(/^\d+$/, 'must be a number'), z.number().int().nonnegative()]).transform(String).optional(),
    dimensions: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'dimension keys are snake_case, such as device_os'), z.array(z.string()).min(1, 'needs at least one value')).optional(),
    tags: z.record(z.string().min(1), z.array(z.string()).min(1, 'needs at least one value')).optional(),
  })
  .refine((f) => !(f.filter_id !== undefined && (f.dimensions || f.tags)), {
    message: 'filter_id cannot be combined with dimensions or tags (Conviva answers 400)',
  });

const GROUP_BY_RE = /^([a-z][a-z0-9-]*|dimension-tag\/[A-Za-z0-9_.-]+)$/;

const realtime = z.strictObject({
  enabled: z.boolean().default(true),
  schedule: schedule('* * * * *'),
  timeout: duration('50s'),
  settle_delay: duration('60s'),
  metrics: z
    .array(z.enum([...METRIC_PATHS, ...Object.keys(PATH_ALIASES)] as [string, ...string[]], { error: `must be one of: ${METRIC_PATHS.join(', ')}` }))
    .min(1, 'needs at least one metric')
    .default(['attempts', 'plays', 'concurrent-plays', 'video-start-failures', 'rebuffering-ratio', 'bitrate', 'video-start-time', 'exit-before-video-starts', 'video-playback-failures', 'ended-plays']),
  group_by: z.array(z.string().regex(GROUP_BY_RE, 'expected a kebab-case dimension (device-os) or dimension-tag/<tag>')).default([]),
  group_limit: z.number().int().min(1).max(500).default(100),
  filters: z.array(filter).min(1, 'needs at least one filter').default([{ name: 'all' }]),
  max_series_per_metric: z.number().int().min(1).default(5000),
});

const conviva = z.strictObject({
  base_url: z.url({ error: 'must be an absolute http(s) URL' }).default('https://api.conviva.com/insights/3.0'),
  ca_file: z.string().optional(),
  connect_timeout: duration('5s'),
  request_timeout: duration('20s'),
  retries: z.number().int().min(0).max(10).default(3),
  retry_base_delay: duration('500ms'),
  retry_max_delay: duration('10s'),
  concurrency: z.number().int().min(1).max(64).default(8),
  realtime_requests_per_minute: z.number().int().min(1).default(500),
  accounts: z.array(account).min(1, 'needs at least one account'),
  realtime: realtime.default(() => realtime.parse({})),
});

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
  sources: z.strictObject({
    conviva: conviva.optional(),
  }),
});

export type RawConfig = z.output<typeof configSchema>;
