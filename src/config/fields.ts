import { z } from 'zod';
import { explainCron, minIntervalMs } from './cron.js';
import { formatDuration, parseDuration } from './duration.js';
import type { HttpClientSettings } from '../http/client.js';

// Building blocks of every config block: durations, schedules, names, secrets.

/** A Prometheus-style duration ("500ms", "30s", "1h30m") with a default; parsed to milliseconds. */
export const duration = (def: string) =>
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

/** A node-cron expression with a default; a bad one is refused naming the field and why. */
export const schedule = (def: string) =>
  z
    .string()
    .default(def)
    .superRefine((s, ctx) => {
      const why = explainCron(s);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    });

/**
 * Refuses a run timeout that is not shorter than the shortest gap between two runs of the
 * schedule: a run must end before the next one is due (or that one is skipped, every time).
 */
export function checkRunFits(o: { schedule: string; timeout: number }, ctx: z.RefinementCtx): void {
  if (explainCron(o.schedule) !== undefined) return; // reported on `schedule` already
  const interval = minIntervalMs(o.schedule);
  if (interval === Infinity) {
    // node-cron accepts it, then cannot schedule it ("0 0 1 * 1#5": the 1st is never a fifth Monday).
    ctx.addIssue({ code: 'custom', path: ['schedule'], message: `cron expression "${o.schedule}" never fires` });
    return;
  }
  if (o.timeout >= interval) {
    ctx.addIssue({
      code: 'custom',
      path: ['timeout'],
      message: `must be shorter than the shortest interval of schedule "${o.schedule}" (${formatDuration(interval)}): a run must end before the next one is due`,
    });
  }
}

const LABEL_SAFE = /^[A-Za-z0-9_.:-]+$/;
/** A name that becomes a label value: letters, digits, _ . : or -. */
export const name = z.string().regex(LABEL_SAFE, 'must be letters, digits, _ . : or -');

/** A secret given inline or as a file path (exactly one; the source's resolve reads the file). */
export function secretPair<K extends string>(key: K) {
  return {
    [key]: z.string().min(1, 'must not be empty').optional(),
    [`${key}_file`]: z.string().min(1, 'must not be empty').optional(),
  } as Record<K | `${K}_file`, z.ZodOptional<z.ZodString>>;
}

/** Names listed more than once, each once, in order of first repeat (linear: configs can be large). */
export function duplicates(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) repeated.add(n);
    else seen.add(n);
  }
  return [...repeated];
}

/**
 * The HTTP client keys every HTTP source's block has, the same names and defaults everywhere
 * (docs/configuration.md); only the concurrency default differs per source.
 */
export function httpClientFields(defaults: { concurrency: number }) {
  return {
    /** A PEM bundle added to the trust store (verification is never switched off). */
    ca_file: z.string().optional(),
    connect_timeout: duration('5s'),
    request_timeout: duration('20s'),
    retries: z.number().int().min(0).max(10).default(3),
    retry_base_delay: duration('500ms'),
    retry_max_delay: duration('10s'),
    concurrency: z.number().int().min(1).max(64).default(defaults.concurrency),
  };
}

/** What `httpClientFields` parse to. */
export interface HttpClientFields {
  ca_file?: string;
  connect_timeout: number;
  request_timeout: number;
  retries: number;
  retry_base_delay: number;
  retry_max_delay: number;
  concurrency: number;
}

/** The HTTP client settings of a source's block, for one upstream API (`api` label) at `baseUrl`. */
export function httpSettings(c: HttpClientFields, api: string, baseUrl: string): HttpClientSettings {
  return {
    api,
    baseUrl,
    connectTimeoutMs: c.connect_timeout,
    headersTimeoutMs: c.request_timeout,
    bodyTimeoutMs: c.request_timeout,
    maxRetries: c.retries,
    retryBaseDelayMs: c.retry_base_delay,
    retryMaxDelayMs: c.retry_max_delay,
    concurrency: c.concurrency,
    caFile: c.ca_file,
  };
}
