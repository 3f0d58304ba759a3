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

/** A start or status answer: `{"runId": "...", "status": "..."}`. */
export function parseRunAnswer(body: unknown, endpoint: string): { runId: string; status: RunStatus } {
  const b = body as { runId?: unknown; status?: unknown } | null;
  if (!b || typeof b !== 'object' || typeof b.runId !== 'string' || b.runId === '' || b.runId.length > 200 || typeof b.status !== 'string' || !STATUSES.has(b.status)) {
    throw new UpstreamError('UPSTREAM_MALFORMED', `${INVISION_API} ${endpoint}: answer without a runId and a known status`, { api: INVISION_API, endpoint });
  }
  return { runId: b.runId, status: b.status as RunStatus };
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
    return parseRunAnswer(res.body, START_ENDPOINT);
  }

  /** GET api/pub/v1/dataflows/{id}/runs/{runId}/status. */
  async status(dataflowId: string, runId: string, signal: AbortSignal, deadline: number): Promise<{ runId: string; status: RunStatus }> {
    const res = await this.http.json({ path: `/api/pub/v1/dataflows/${encodeURIComponent(dataflowId)}/runs/${encodeURIComponent(runId)}/status`, endpoint: STATUS_ENDPOINT, headers: { 'x-api-key': this.apiKey }, signal, deadline });
    return parseRunAnswer(res.body, STATUS_ENDPOINT);
  }
}
