import type { Clock } from '../../engine/clock.js';
import type { HttpClient } from '../../http/client.js';
import { UpstreamError } from '../../http/errors.js';

/** The `api` labels of IntelePeer's requests and errors: the token endpoint, and the Insights query API. */
export const AUTH_API = 'intelepeer_auth';
export const QUERY_API = 'intelepeer';
export const AUTH_ENDPOINT = '_rest/v4/authenticate';
export const SUBMIT_ENDPOINT = 'dwh/Q';
export const STATUS_ENDPOINT = 'dwh/Q/{guid}/status';
export const RESULT_ENDPOINT = 'dwh/Q/{guid}';

/** A token is valid 24 hours (documented); it is renewed this long before that. */
const TOKEN_LIFETIME_MS = 24 * 3600_000;
const RENEW_BEFORE_MS = 3600_000;

/**
 * The Bearer token: obtained with the username and password, reused until an hour before its 24
 * hours are up, and renewed once when a request is refused with 401. The password goes in the
 * POST body only: never in a URL, a log line or an error message (an error body that echoes it is
 * not carried).
 */
export class TokenSource {
  private current: { value: string; expires: number } | undefined;
  private pending: Promise<string> | undefined;
  /** Tokens obtained by this process (each one authentication). */
  obtained = 0;

  constructor(
    private readonly http: HttpClient,
    private readonly username: string,
    private readonly password: string,
    private readonly clock: Clock,
  ) {}

  async get(signal: AbortSignal, deadline: number): Promise<string> {
    if (this.current && this.clock.now() < this.current.expires - RENEW_BEFORE_MS) return this.current.value;
    // Requests of one run share one authentication.
    this.pending ??= this.authenticate(signal, deadline).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** Forgets a token the API refused (401), so the next get() authenticates again. */
  invalidate(token: string): void {
    if (this.current?.value === token) this.current = undefined;
  }

  private async authenticate(signal: AbortSignal, deadline: number): Promise<string> {
    let body: unknown;
    try {
      ({ body } = await this.http.json({
        method: 'POST',
        path: '',
        endpoint: AUTH_ENDPOINT,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: this.username, password: this.password }),
        signal,
        deadline,
      }));
    } catch (e) {
      // Rethrown without the answer's body: a careless endpoint may echo the login back.
      if (e instanceof UpstreamError) {
        const refused = e.status === 401 || e.status === 403;
        throw new UpstreamError(e.code, `${AUTH_API} ${AUTH_ENDPOINT}: ${refused ? 'username or password refused' : e.status !== undefined ? `answered ${e.status}` : e.code}`, { api: AUTH_API, endpoint: AUTH_ENDPOINT, status: e.status });
      }
      throw e;
    }
    const token = (body as { token?: unknown } | null)?.token;
    // Visible ASCII only: a token an HTTP header cannot hold would fail every request before it
    // leaves, with no 401 to renew it.
    if (typeof token !== 'string' || !/^[\x21-\x7e]{1,8192}$/.test(token)) throw this.http.malformed(AUTH_ENDPOINT, 'answer without a usable token');
    this.obtained++;
    this.current = { value: token, expires: this.clock.now() + TOKEN_LIFETIME_MS };
    return token;
  }
}

export type QueryStatus = 'Pending' | 'Completed' | 'Failed' | 'Canceled';
const STATUSES = new Set<string>(['Pending', 'Completed', 'Failed', 'Canceled']);
/** A guid goes back into URL paths: only ids that survive that as they are. */
const GUID = /^[A-Za-z0-9_-]{1,100}$/;

/**
 * The download paths in a finished query's sentence: `Process finished. Download:
 * [u'reports/a/b.csv.gz', u'reports/a/c.csv.gz']` (a Python list of one or more quoted strings, u
 * prefix optional, single or double quotes). Undefined when the sentence has no such list (the
 * query has not finished); an empty array when the list is empty.
 */
export function parseDownloadPaths(sentence: string): string[] | undefined {
  const m = /Download:\s*\[([\s\S]*)\]\s*\.?\s*$/.exec(sentence);
  if (!m) return undefined;
  const paths: string[] = [];
  const item = /\s*u?(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*(,|$)/y;
  const list = m[1]!;
  if (list.trim() === '') return [];
  item.lastIndex = 0;
  while (item.lastIndex < list.length) {
    const start = item.lastIndex;
    const x = item.exec(list);
    if (!x || x.index !== start) return undefined;
    const raw = (x[1] ?? x[2])!;
    paths.push(raw.replace(/\\(.)/g, '$1'));
    if (x[3] === '') break;
  }
  return paths;
}

/** A path from the API that the exporter will open on the SFTP server: relative, no `..`, no control characters. */
export function safeRemotePath(p: string): boolean {
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  return p.length > 0 && p.length <= 1024 && !p.startsWith('/') && !/[\u0000-\u001f\u007f]/.test(p) && !p.split('/').some((s) => s === '..');
}

/** The Insights query API: every request with the Bearer token, renewed once on a 401. */
export class InsightsClient {
  constructor(
    private readonly http: HttpClient,
    private readonly tokens: TokenSource,
  ) {}

  private async authorized<T>(signal: AbortSignal, deadline: number, call: (auth: Record<string, string>, token: string) => Promise<T>): Promise<T> {
    const token = await this.tokens.get(signal, deadline);
    try {
      return await call({ authorization: `Bearer ${token}` }, token);
    } catch (e) {
      if (!(e instanceof UpstreamError && e.status === 401 && e.endpoint !== AUTH_ENDPOINT)) throw e;
      this.tokens.invalidate(token);
      const renewed = await this.tokens.get(signal, deadline);
      return call({ authorization: `Bearer ${renewed}` }, renewed);
    }
  }

  /** POST Q: submits a query; its guid. Not retried (a POST): a 429 (two queries running) is the caller's to wait out. */
  async submit(query: unknown, signal: AbortSignal, deadline: number): Promise<string> {
    const { body } = await this.authorized(signal, deadline, (auth) =>
      this.http.json({ method: 'POST', path: '', endpoint: SUBMIT_ENDPOINT, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(query), signal, deadline }));
    const id = (body as { id?: unknown } | null)?.id;
    if (typeof id !== 'string' || !GUID.test(id)) throw this.http.malformed(SUBMIT_ENDPOINT, 'answer without a usable query id');
    return id;
  }

  /** GET Q/{guid}/status. An unknown guid answers 500 (documented): UPSTREAM_STATUS with status 500. */
  async status(guid: string, signal: AbortSignal, deadline: number): Promise<{ status: QueryStatus; messages: string[] }> {
    let used = '';
    const { body } = await this.authorized(signal, deadline, (auth, token) => {
      used = token;
      return this.http.json({ path: `/${encodeURIComponent(guid)}/status`, endpoint: STATUS_ENDPOINT, headers: auth, signal, deadline });
    });
    const b = body as { status?: unknown; messages?: unknown } | null;
    if (!b || typeof b !== 'object' || typeof b.status !== 'string' || !STATUSES.has(b.status)) throw this.http.malformed(STATUS_ENDPOINT, 'answer without a known status');
    // The messages are logged: the token they may echo (a careless gateway) is taken out first.
    const redact = (m: string) => (used ? m.split(used).join('[redacted]') : m).replace(/(bearer\s+)\S+/gi, '$1[redacted]');
    const messages = Array.isArray(b.messages) ? b.messages.filter((m): m is string => typeof m === 'string').map((m) => redact(m).slice(0, 300)) : [];
    return { status: b.status as QueryStatus, messages };
  }

  /** GET Q/{guid}: the result files' paths once the query has finished; undefined before that. */
  async result(guid: string, signal: AbortSignal, deadline: number): Promise<string[] | undefined> {
    const { body } = await this.authorized(signal, deadline, (auth) =>
      this.http.json({ path: `/${encodeURIComponent(guid)}`, endpoint: RESULT_ENDPOINT, headers: auth, signal, deadline }));
    const sentence = (body as { status?: unknown } | null)?.status;
    if (typeof sentence !== 'string') throw this.http.malformed(RESULT_ENDPOINT, 'answer without a status sentence');
    if (/has not finish/i.test(sentence)) return undefined;
    const paths = parseDownloadPaths(sentence);
    if (paths === undefined || paths.length === 0 || !paths.every(safeRemotePath)) throw this.http.malformed(RESULT_ENDPOINT, 'finished query without a list of relative download paths');
    return paths;
  }
}
