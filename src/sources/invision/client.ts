import type { HttpClient } from '../../http/client.js';
import { UpstreamError } from '../../http/errors.js';

/** The `api` label of InVision's requests and errors. */
export const INVISION_API = 'invision';
export const START_ENDPOINT = 'api/pub/v1/dataflows/{dataflowId}/start';
export const STATUS_ENDPOINT = 'api/pub/v1/dataflows/{dataflowId}/runs/{runId}/status';
export const MONITORING_API = 'invision_monitoring';
export const MONITORING_ENDPOINT = 'api/v1/monitoring';

export type RunStatus = 'Pending' | 'Running' | 'Succeeded' | 'Failed';
const STATUSES = new Set<string>(['Pending', 'Running', 'Succeeded', 'Failed']);

/** A start or status answer: `{"runId": "...", "status": "..."}`; undefined when it is not of that shape. */
export function parseRunAnswer(body: unknown): { runId: string; status: RunStatus } | undefined {
  const b = body as { runId?: unknown; status?: unknown } | null;
  // A run id goes back into a URL path: only ids that survive that as they are (not `.` or `..`).
  if (!b || typeof b !== 'object' || typeof b.runId !== 'string' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(b.runId) || /^\.+$/.test(b.runId) || typeof b.status !== 'string' || !STATUSES.has(b.status)) {
    return undefined;
  }
  return { runId: b.runId, status: b.status as RunStatus };
}

function throwMalformed(http: Pick<HttpClient, 'malformed'>, endpoint: string): never {
  throw http.malformed(endpoint, 'answer without a runId and a known status');
}

/** Network errors of a request that provably never reached the server: no connection was made. */
const NEVER_REACHED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Whether a failed start provably never reached InVision (so starting again cannot start a second run). */
export function neverReached(e: unknown): boolean {
  if (!(e instanceof UpstreamError) || (e.code !== 'UPSTREAM_NETWORK' && e.code !== 'UPSTREAM_TIMEOUT')) return false;
  const code = (e.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && NEVER_REACHED.has(code);
}

/** Profitbase InVision's Data Flow execution API: the `x-api-key` header on every request (never the URL). */
export class InvisionClient {
  constructor(
    private readonly http: HttpClient,
    private readonly apiKey: string,
  ) {}

  /** POST api/pub/v1/dataflows/{id}/start (never await=true: a run can take hours). Not retried by the HTTP client. */
  async start(dataflowId: string, signal: AbortSignal, deadline: number): Promise<{ runId: string; status: RunStatus }> {
    const res = await this.http.json({ method: 'POST', path: `/api/pub/v1/dataflows/${encodeURIComponent(dataflowId)}/start`, endpoint: START_ENDPOINT, headers: { 'x-api-key': this.apiKey }, signal, deadline });
    return parseRunAnswer(res.body) ?? throwMalformed(this.http, START_ENDPOINT);
  }

  /** GET api/pub/v1/dataflows/{id}/runs/{runId}/status. */
  async status(dataflowId: string, runId: string, signal: AbortSignal, deadline: number): Promise<{ runId: string; status: RunStatus }> {
    const res = await this.http.json({ path: `/api/pub/v1/dataflows/${encodeURIComponent(dataflowId)}/runs/${encodeURIComponent(runId)}/status`, endpoint: STATUS_ENDPOINT, headers: { 'x-api-key': this.apiKey }, signal, deadline });
    const answer = parseRunAnswer(res.body) ?? throwMalformed(this.http, STATUS_ENDPOINT);
    // An answer about another run says nothing of this one: as unreadable as a broken one.
    if (answer.runId !== runId) throw this.http.malformed(STATUS_ENDPOINT, `status of run ${runId} answered for another run`);
    return answer;
  }
}

/** A time as the Monitoring API's query parameters spell it: yyyy.MM.dd HH:mm:ss, UTC (milliseconds dropped). */
export function formatMonitoringTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}.${p(d.getUTCMonth() + 1)}.${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

/**
 * A row's `timestamputc` to epoch ms: yyyy.MM.dd HH:mm:ss as the query parameters (documented), or
 * an ISO 8601 spelling (`2026-11-23T20:00:05.123Z`, assumed possible), UTC unless an offset is given;
 * undefined when it is neither, or not a real time (2026.02.30).
 */
export function parseMonitoringTime(s: string): number | undefined {
  const m = /^(\d{4})([.-])(\d{2})\2(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = [m[1], m[3], m[4], m[5], m[6], m[7]].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return undefined;
  const base = Date.UTC(y, mo - 1, d, h, mi, se);
  // Date.UTC rolls 2026.02.30 over to March: the day must survive the round trip.
  if (new Date(base).getUTCDate() !== d) return undefined;
  const ms = m[8] === undefined ? 0 : Math.floor(Number(`0.${m[8]}`) * 1000);
  const zone = m[9];
  const offset = zone === undefined || zone === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2))) * 60_000;
  return base + ms - offset;
}

/** A readable row of the Monitoring log. */
export interface MonitoringRow {
  /** The row's id (an identity column: unique, never reused), as text. */
  id: string;
  /** Its timestamp, epoch ms. */
  time: number;
  level: string;
  event: string;
}

/** The longest event type or level taken as a label value; a longer one is not a type. */
const MAX_LABEL_LENGTH = 128;

/**
 * The rows of a GET api/v1/monitoring answer (an array of `{rowid, data, level, timestamputc,
 * logevent}`). A row without a usable rowid, timestamp, level or event type is handed to `onSkip`
 * (with its rowid and time when it has them, so a re-read can tell it was seen); an answer that is
 * not an array throws UPSTREAM_MALFORMED.
 */
export function parseMonitoringRows(body: unknown, onSkip: (what: string, id?: string, time?: number) => void): MonitoringRow[] {
  if (!Array.isArray(body)) {
    throw new UpstreamError('UPSTREAM_MALFORMED', `${MONITORING_API} ${MONITORING_ENDPOINT}: answer is not an array of rows`, { api: MONITORING_API, endpoint: MONITORING_ENDPOINT });
  }
  const rows: MonitoringRow[] = [];
  const label = (v: unknown) => (typeof v === 'string' && v.trim() !== '' && v.length <= MAX_LABEL_LENGTH ? v : undefined);
  for (const raw of body as unknown[]) {
    const r = raw as Record<string, unknown> | null;
    if (!r || typeof r !== 'object' || Array.isArray(r)) {
      onSkip('row is not an object');
      continue;
    }
    const rowid = r.rowid;
    const id = typeof rowid === 'number' && Number.isSafeInteger(rowid) ? String(rowid) : typeof rowid === 'string' && /^[0-9A-Za-z_-]{1,100}$/.test(rowid) ? rowid : undefined;
    const time = typeof r.timestamputc === 'string' ? parseMonitoringTime(r.timestamputc) : undefined;
    const level = label(r.level);
    const event = label(r.logevent);
    if (id === undefined) onSkip('row without a usable rowid', undefined, time);
    else if (time === undefined) onSkip('row without a usable timestamputc', id);
    else if (level === undefined) onSkip('row without a usable level', id, time);
    else if (event === undefined) onSkip('row without a usable logevent', id, time);
    else rows.push({ id, time, level, event });
  }
  return rows;
}

/** The Monitoring log API (InVision 5.2+): its own key, in the `x-api-key` header (never the URL). */
export class MonitoringClient {
  constructor(
    private readonly http: HttpClient,
    private readonly apiKey: string,
  ) {}

  /** GET api/v1/monitoring for rows with timestamps in [from, to) (whole seconds), optionally of one event type and one level; the raw answer. */
  async monitoring(q: { from: number; to: number; logEventType?: string; logLevel?: string }, signal: AbortSignal, deadline: number): Promise<unknown> {
    const res = await this.http.json({
      path: '/api/v1/monitoring',
      endpoint: MONITORING_ENDPOINT,
      query: { fromDateTimeUtc: formatMonitoringTime(q.from), toDateTimeUtc: formatMonitoringTime(q.to), logEventType: q.logEventType, logLevel: q.logLevel },
      headers: { 'x-api-key': this.apiKey },
      signal,
      deadline,
    });
    if (!Array.isArray(res.body)) throw this.http.malformed(MONITORING_ENDPOINT, 'answer is not an array of rows');
    return res.body;
  }
}
