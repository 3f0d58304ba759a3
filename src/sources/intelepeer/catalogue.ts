import { defineFamily, type FamilyDef } from '../../engine/family.js';
import { labelName, type QueryConfig } from './config.js';

// Every family the IntelePeer source can emit. Names are written out, not generated. The event
// families carry, after `query` and `event`, one label per group_by field of the queries configured
// (snake_case); a query leaves the others empty (the same as absent to Prometheus).

const RESULT = 'GET dwh/Q/{guid} + SFTP .csv.gz';
const JOBS = 'The queries the exporter submits (POST dwh/Q) and follows (GET dwh/Q/{guid}/status)';

/** Buckets of every duration histogram: from a second to two hours (a call, a flow, a message exchange). */
export const DURATION_BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

const EVENTS_HELP = 'Events of the query\'s schema in the intervals counted, by the query\'s group_by fields (snake_case labels), each event counted once.';
const DURATION_HELP = 'Durations per event (end minus start time field, or a field in seconds), by the query\'s histograms and group_by fields, each event observed once.';

/** The families as documented: the event families with their fixed labels only. */
export const EVENTS = defineFamily({ name: 'intelepeer_events_total', type: 'counter', unit: 'count', source: RESULT, labelNames: ['query', 'event'], help: EVENTS_HELP });
export const DURATIONS = defineFamily({ name: 'intelepeer_event_duration_seconds', type: 'histogram', unit: 'seconds', source: RESULT, labelNames: ['query', 'event', 'duration'], buckets: DURATION_BUCKETS, help: DURATION_HELP });

/** The group_by labels of every query, in order of first use. */
export function groupLabels(queries: readonly QueryConfig[]): string[] {
  const out: string[] = [];
  for (const q of queries) for (const f of q.group_by) if (!out.includes(labelName(f))) out.push(labelName(f));
  return out;
}

/** The event families of a config: the fixed labels, then every query's group_by labels. */
export function eventFamilies(queries: readonly QueryConfig[]): { events: FamilyDef; durations: FamilyDef } {
  const extra = groupLabels(queries);
  return {
    events: defineFamily({ ...EVENTS, labelNames: [...EVENTS.labelNames, ...extra] }),
    durations: defineFamily({ ...DURATIONS, labelNames: [...DURATIONS.labelNames, ...extra] }),
  };
}

function family(name: string, type: 'gauge' | 'counter', unit: string, help: string, labelNames: string[] = ['query']): FamilyDef {
  return defineFamily({ name, type, unit, source: name.startsWith('intelepeer_sftp') ? 'SFTP' : 'dwh/Q', labelNames, help });
}

export const JOB_PHASES = ['queued', 'running', 'downloading'] as const;
export const FAILURE_REASONS = ['rejected', 'throttled', 'submit', 'status', 'canceled', 'lost', 'timeout', 'download', 'corrupt'] as const;
export const RETRY_REASONS = ['canceled', 'lost', 'timeout', 'download', 'corrupt'] as const;
export const SFTP_ERRORS = ['host_key', 'auth', 'connect', 'timeout', 'not_found', 'io'] as const;

export const QUERY_JOBS = family('intelepeer_query_jobs', 'gauge', 'count',
  `Intervals of the query not counted yet, by phase: queued (waiting for a free slot: at most max_running_queries run at once), running (submitted, Pending in IntelePeer), downloading (Completed, its files not read yet). ${JOBS}.`, ['query', 'phase']);
export const OLDEST_JOB = family('intelepeer_query_oldest_job_age_seconds', 'gauge', 'seconds', 'Age of the query\'s oldest interval not counted yet (since it was cut); 0 when none is waiting.');
export const COUNTED_UNTIL = family('intelepeer_query_counted_until_timestamp_seconds', 'gauge', 'seconds', 'Every event of the query before this time is counted (Unix time): the query\'s lag is time() minus this.');
export const LAST_COUNTED = family('intelepeer_query_last_counted_timestamp_seconds', 'gauge', 'seconds', 'When an interval of the query was last counted (Unix time, the exporter\'s clock).');
export const SCHEDULE_INTERVAL = family('intelepeer_query_schedule_interval_seconds', 'gauge', 'seconds', 'The shortest interval between two ticks of the query\'s schedule (config), for the alert on queries no longer completing.');
export const INTERVALS_COUNTED = family('intelepeer_query_intervals_counted_total', 'counter', 'count',
  'Intervals counted, each once: result data (its files read) or no_data (the query Failed: no events in the interval).', ['query', 'result']);
export const FAILURES = family('intelepeer_query_failures_total', 'counter', 'count',
  'Failures of the query\'s jobs, by reason: rejected (400 on submit), throttled (429: two queries already running), submit (no id for another reason), status (a status or result read failed), canceled (IntelePeer canceled it), lost (IntelePeer no longer knows its id), timeout (still Pending after query_timeout), download (SFTP), corrupt (a .csv.gz that is not gzip or not the CSV asked for, or a result sentence without usable paths). No interval is lost to any of them.', ['query', 'reason']);
export const RETRIES = family('intelepeer_query_intervals_retried_total', 'counter', 'count',
  'Intervals submitted again, by reason: canceled (cut in halves), lost, timeout, download or corrupt (after max_download_attempts failed reads).', ['query', 'reason']);
export const RESULT_BYTES = family('intelepeer_query_result_bytes_total', 'counter', 'bytes', 'Bytes of result files read over SFTP (compressed), failed reads included.');
export const RESULT_ROWS = family('intelepeer_query_result_rows_total', 'counter', 'count', 'CSV rows read from result files, failed reads included (a row is counted in intelepeer_events_total only when its interval is).');
export const SFTP_UP = family('intelepeer_sftp_up', 'gauge', 'bool', '1 when the last SFTP session (connect, host key, login, reads) succeeded, 0 when it failed; absent until the first download.', []);
export const SFTP_ERRORS_TOTAL = family('intelepeer_sftp_errors_total', 'counter', 'count',
  'SFTP failures, by reason: host_key (the server presented another key than host_key_fingerprint: refused), auth, connect, timeout, not_found (a result file missing), io.', ['reason']);

export function jobFamilies(): FamilyDef[] {
  return [QUERY_JOBS, OLDEST_JOB, COUNTED_UNTIL, LAST_COUNTED, SCHEDULE_INTERVAL, INTERVALS_COUNTED, FAILURES, RETRIES, RESULT_BYTES, RESULT_ROWS, SFTP_UP, SFTP_ERRORS_TOTAL];
}
