import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { checkRunFits, duplicates, duration, httpClientFields, name, schedule, secretPair } from '../../config/fields.js';
import { minIntervalMs } from '../../config/cron.js';
import type { ResolveContext } from '../../engine/source.js';
import { isFingerprint } from '../../sftp/client.js';

// The `sources.intelepeer` block (IntelePeer Insights: warehouse queries whose gzipped CSV results
// are fetched over SFTP). Defaults live here and nowhere else.

/** Schema and field names as the Insights API spells them (case-sensitive). */
const FIELD = /^[A-Za-z][A-Za-z0-9_]*$/;
const field = z.string().regex(FIELD, 'must be a field name of the schema (letters, digits, _), as the Insights API spells it');
const OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'] as const;
/** Labels every query's series carry; a group_by field may not become one of these. */
export const RESERVED_LABELS = new Set(['query', 'event', 'duration', 'le', 'job', 'instance']);

/** A field name as a label name: FlowName -> flow_name, IsTriggerAction -> is_trigger_action, DTMFInput -> dtmf_input. */
export function labelName(f: string): string {
  return f
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

const histogram = z
  .strictObject({
    /** The `duration` label of intelepeer_event_duration_seconds. */
    name,
    /** A duration from two time fields of the event (ISO 8601), end minus start... */
    start: field.optional(),
    end: field.optional(),
    /** ...or one numeric field, in seconds. */
    field: field.optional(),
  })
  .superRefine((h, ctx) => {
    const pair = h.start !== undefined || h.end !== undefined;
    if (pair && h.field !== undefined) ctx.addIssue({ code: 'custom', message: 'give start and end (two time fields), or field (a number of seconds), not both' });
    else if (pair && (h.start === undefined || h.end === undefined)) ctx.addIssue({ code: 'custom', message: 'needs both start and end' });
    else if (!pair && h.field === undefined) ctx.addIssue({ code: 'custom', message: 'needs start and end (two time fields) or field (a number of seconds)' });
  });

const query = z.strictObject({
  /** The `query` label. */
  name,
  /** The schema (event type) queried: ApplicationExitEvent, DtmfEvent, CallEvent, MsgEvent, ... */
  event: field,
  /** When an interval is cut and its query submitted (5-field cron, minute resolution). */
  schedule: schedule('*/15 * * * *').refine((s) => s.trim().split(/\s+/).length === 5, 'intervals are cut on whole minutes: use 5 fields (minute hour day month weekday)'),
  /** Events reach the warehouse late: an interval ends this long before the tick that cuts it. */
  lag: duration('15m'),
  /** Fields whose values become labels (snake_case names: FlowName -> flow_name). */
  group_by: z.array(field).default([]),
  /** The API's filters on this schema's fields: `{ FlowId: { $eq: "..." } }`. */
  filters: z.record(field, z.partialRecord(z.enum(OPERATORS), z.union([z.string(), z.number()]))).default({}),
  /** Histograms of a duration per event: intelepeer_event_duration_seconds{duration=<name>}. */
  histograms: z.array(histogram).default([]),
  /** The longest interval one query covers (a catch-up after an outage is cut into several). */
  max_interval: duration('6h'),
  /** A first start (no state) counts from this long before its first interval's end. */
  initial_lookback: duration('1h'),
});

const sftp = z.strictObject({
  host: z.string().min(1, 'must not be empty'),
  port: z.number().int().min(1).max(65535).default(22),
  ...secretPair('username'),
  ...secretPair('password'),
  /** An OpenSSH or PEM private key (instead of a password). */
  private_key_file: z.string().min(1).optional(),
  ...secretPair('passphrase'),
  /** The server's host key as `ssh-keygen -l -E sha256 -f key.pub` prints it: SHA256:... Required: no host key is accepted blindly. */
  host_key_fingerprint: z.string().refine(isFingerprint, 'must be a SHA256 fingerprint as ssh-keygen -l prints it: SHA256: and 43 base64 characters'),
  connect_timeout: duration('10s'),
});

export const intelepeerConfigSchema = z
  .strictObject({
    /** The token endpoint (POST, username and password in the body). */
    auth_url: z.url({ error: 'must be an absolute http(s) URL' }).default('https://customer.intelepeer.com/_rest/v4/authenticate'),
    /** The Insights query API's Q resource; the exporter adds /{guid}/status, /{guid}. */
    base_url: z.url({ error: 'must be an absolute http(s) URL' }).default('https://api.intelepeer.com/_rest/v4/dwh/Q'),
    ...secretPair('username'),
    ...secretPair('password'),
    ...httpClientFields({ concurrency: 4 }),
    /** How often jobs are followed, results downloaded and due queries submitted (the collector's schedule). */
    schedule: schedule('* * * * *'),
    /** A run's deadline, downloads included. */
    timeout: duration('50s'),
    /** IntelePeer runs at most this many queries of a customer at once (a third is refused with 429). */
    max_running_queries: z.number().int().min(1).max(10).default(2),
    /** A query still Pending this long after it was submitted is given up, and its interval submitted again. */
    query_timeout: duration('1h'),
    /** Download attempts of one completed query's files before its interval is submitted again. */
    max_download_attempts: z.number().int().min(1).max(20).default(3),
    sftp,
    queries: z.array(query).min(1, 'needs at least one query'),
    max_series_per_metric: z.number().int().min(1).default(5000),
  })
  .superRefine(checkRunFits);

export type IntelepeerRawConfig = z.output<typeof intelepeerConfigSchema>;
export type QueryConfig = IntelepeerRawConfig['queries'][number];
export type HistogramConfig = QueryConfig['histograms'][number];

export interface SftpConfig {
  host: string;
  port: number;
  username: string;
  password?: string;
  privateKey?: Buffer;
  passphrase?: string;
  hostKeyFingerprint: string;
  connectTimeoutMs: number;
}

export type IntelepeerConfig = Omit<IntelepeerRawConfig, 'username' | 'username_file' | 'password' | 'password_file' | 'sftp'> & {
  username: string;
  password: string;
  sftp: SftpConfig;
};

/** Reads the secrets (inline or *_file) and the key file, and checks what the schema cannot. */
export function resolveIntelepeerConfig(c: IntelepeerRawConfig, ctx: ResolveContext): IntelepeerConfig {
  const at = ctx.at;
  const username = ctx.secret(c, 'username', at);
  const password = ctx.secret(c, 'password', at);
  const s = c.sftp;
  const sftpAt = `${at}.sftp`;
  const sftpUser = ctx.secret(s, 'username', sftpAt);
  let privateKey: Buffer | undefined;
  let sftpPassword: string | undefined;
  if (s.private_key_file !== undefined) {
    if (s.password !== undefined || s.password_file !== undefined) ctx.problem(sftpAt, 'give password (or password_file) or private_key_file, not both');
    try {
      privateKey = readFileSync(ctx.path(s.private_key_file));
    } catch (e) {
      ctx.problem(`${sftpAt}.private_key_file`, `cannot read ${ctx.path(s.private_key_file)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  } else if (s.password !== undefined || s.password_file !== undefined) {
    sftpPassword = ctx.secret(s, 'password', sftpAt);
  } else {
    ctx.problem(sftpAt, 'needs password (or password_file) or private_key_file');
  }
  const passphrase = s.passphrase !== undefined || s.passphrase_file !== undefined ? ctx.secret(s, 'passphrase', sftpAt) : undefined;
  for (const d of duplicates(c.queries.map((q) => q.name))) ctx.problem(`${at}.queries`, `query name "${d}" listed twice`);
  if (c.query_timeout < 60_000) ctx.problem(`${at}.query_timeout`, 'must be at least 1m');
  c.queries.forEach((q, i) => {
    const qa = `${at}.queries[${i}]`;
    const labels = q.group_by.map(labelName);
    for (const l of labels) if (RESERVED_LABELS.has(l)) ctx.problem(`${qa}.group_by`, `field becomes label "${l}", which the exporter sets itself`);
    for (const d of duplicates(labels)) ctx.problem(`${qa}.group_by`, `two fields become label "${d}"`);
    for (const d of duplicates(q.histograms.map((h) => h.name))) ctx.problem(`${qa}.histograms`, `histogram name "${d}" listed twice`);
    if (q.max_interval < 60_000) ctx.problem(`${qa}.max_interval`, 'must be at least 1m');
    const every = minIntervalMs(q.schedule);
    if (every !== Infinity && q.max_interval < every) ctx.problem(`${qa}.max_interval`, `must be at least the schedule's interval (${Math.round(every / 60_000)}m)`);
    for (const [f, ops] of Object.entries(q.filters)) if (Object.keys(ops).length === 0) ctx.problem(`${qa}.filters.${f}`, 'needs an operator: $eq, $ne, $gt, $gte, $lt or $lte');
  });
  const { username: _u, username_file: _uf, password: _p, password_file: _pf, sftp: _s, ...rest } = c;
  return {
    ...rest,
    username,
    password,
    ca_file: c.ca_file === undefined ? undefined : ctx.path(c.ca_file),
    sftp: { host: s.host, port: s.port, username: sftpUser, password: sftpPassword, privateKey, passphrase, hostKeyFingerprint: s.host_key_fingerprint.replace(/=+$/, ''), connectTimeoutMs: s.connect_timeout },
  };
}
