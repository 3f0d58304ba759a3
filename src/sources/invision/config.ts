import { z } from 'zod';
import { checkRunFits, duplicates, duration, httpClientFields, name, schedule, secretPair } from '../../config/fields.js';
import { explainCron } from '../../config/cron.js';
import type { ResolveContext } from '../../engine/source.js';

// The `sources.invision` block (Profitbase InVision Data Flows). Defaults live here and nowhere else.

const dataflow = z.strictObject({
  /** The data flow's id in InVision (the {dataflowId} of the API's paths). */
  id: z.string().min(1, 'must not be empty').regex(/^[A-Za-z0-9_.:-]+$/, 'must be letters, digits, _ . : or -'),
  /** Becomes the `flow` label. */
  name,
  /** Cron (5 fields, minute resolution) on which the exporter starts the flow; absent: it only follows runs handed over. */
  schedule: z
    .string()
    .superRefine((s, ctx) => {
      const why = explainCron(s);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
      else if (s.trim().split(/\s+/).length === 6) ctx.addIssue({ code: 'custom', message: 'data flows start on whole minutes: use 5 fields (minute hour day month weekday)' });
    })
    .optional(),
  /** A run still Pending or Running this long after it started is reported stuck (and still followed). */
  timeout: duration('6h'),
  /** A success is expected at least this often (exported, for the "no recent success" alert); 0s: no expectation. */
  expected_interval: duration('0s'),
});

const monitoring = z.strictObject({
  enabled: z.boolean().default(false),
  ...secretPair('api_key'),
  schedule: schedule('* * * * *'),
  timeout: duration('50s'),
  /** Rows may be listed late: each read starts this long before the watermark (row ids de-duplicate). */
  overlap: duration('5m'),
  /** A first start (no state) reads the rows of this long before now. */
  initial_lookback: duration('10m'),
  /** Only these log event types (`DataFlowExecution`, `ApplicationError`, ...); all when empty. */
  event_types: z.array(z.string().min(1)).default([]),
  /** Only these levels (`Error`, `Warning`, `Information`, `Verbose`); all when empty. */
  levels: z.array(z.enum(['Error', 'Warning', 'Information', 'Verbose'])).default([]),
}).superRefine(checkRunFits);

export const invisionConfigSchema = z
  .strictObject({
    /** The InVision site, such as https://mydomain.com/invision; the exporter adds api/pub/v1/... */
    base_url: z.url({ error: 'must be an absolute http(s) URL' }),
    ...secretPair('api_key'),
    // retries: of status reads (GET); a start (POST) is repeated only when it provably never reached InVision.
    ...httpClientFields({ concurrency: 4 }),
    /** How often in-flight runs' status is read and due starts are made (the collector's schedule). */
    schedule: schedule('* * * * *'),
    timeout: duration('50s'),
    /** A schedule tick missed by up to this long (the exporter down, a run of the collector late) is still started. */
    start_grace: duration('10m'),
    /** A run whose status InVision answers 404 (no such run) without a break for this long is given up (runs_lost_total). */
    unknown_run_after: duration('30m'),
    /** Start a flow on its schedule even while its previous run is still in flight. */
    allow_overlap: z.boolean().default(false),
    /** Time zone of the data flows' schedules (IANA name). */
    timezone: z.string().default('UTC'),
    /** A folder where schedulers drop run ids to follow (docs/configuration.md, "Runs started elsewhere"). */
    handover_dir: z.string().optional(),
    dataflows: z.array(dataflow).min(1, 'needs at least one data flow'),
    monitoring: monitoring.default(() => monitoring.parse({})),
    max_series_per_metric: z.number().int().min(1).default(5000),
  })
  .superRefine(checkRunFits);

export type InvisionRawConfig = z.output<typeof invisionConfigSchema>;
export type DataflowConfig = InvisionRawConfig['dataflows'][number];
export type InvisionConfig = Omit<InvisionRawConfig, 'api_key' | 'api_key_file' | 'monitoring'> & {
  apiKey: string;
  monitoring: Omit<InvisionRawConfig['monitoring'], 'api_key' | 'api_key_file'> & { apiKey?: string };
  /**
   * With shards (set by the source's sharding hook, not a YAML key): whether this replica takes
   * the hand-over files of a data flow id. Files of flows another shard owns are left in the
   * folder for it; absent, every file is this replica's.
   */
  handoverOwned?: (flowId: string) => boolean;
};

/** Reads the API keys (inline or *_file) and checks what the schema cannot. */
export function resolveInvisionConfig(c: InvisionRawConfig, ctx: ResolveContext): InvisionConfig {
  const apiKey = ctx.secret(c, 'api_key', ctx.at);
  const { api_key: _k, api_key_file: _f, monitoring: m, ...rest } = c;
  let monitoringKey: string | undefined;
  if (m.enabled) monitoringKey = ctx.secret(m, 'api_key', `${ctx.at}.monitoring`);
  for (const d of duplicates(c.dataflows.map((f) => f.id))) ctx.problem(`${ctx.at}.dataflows`, `data flow id "${d}" listed twice`);
  for (const d of duplicates(c.dataflows.map((f) => f.name))) ctx.problem(`${ctx.at}.dataflows`, `data flow name "${d}" listed twice`);
  try {
    new Intl.DateTimeFormat('en', { timeZone: c.timezone });
  } catch {
    ctx.problem(`${ctx.at}.timezone`, `unknown time zone "${c.timezone}": an IANA name such as UTC or Europe/Oslo`);
  }
  c.dataflows.forEach((f, i) => {
    if (f.timeout <= 0) ctx.problem(`${ctx.at}.dataflows[${i}].timeout`, 'must be longer than 0s');
  });
  if (c.unknown_run_after < 60_000) ctx.problem(`${ctx.at}.unknown_run_after`, 'must be at least 1m (a 404 right after a start may be InVision catching up)');
  if (c.start_grace < 60_000) ctx.problem(`${ctx.at}.start_grace`, 'must be at least 1m (ticks are whole minutes)');
  const { api_key: _mk, api_key_file: _mf, ...mon } = m;
  return { ...rest, apiKey, ca_file: c.ca_file === undefined ? undefined : ctx.path(c.ca_file), handover_dir: c.handover_dir === undefined ? undefined : ctx.path(c.handover_dir), monitoring: { ...mon, apiKey: monitoringKey } };
}
