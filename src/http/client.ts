import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { type Budget, Semaphore, sleep } from '../engine/limits.js';
import { UpstreamError } from './errors.js';
import type { HttpMetrics } from './metrics.js';

/** What a source decides about its HTTP client (from its config). */
export interface HttpClientSettings {
  /** Bounded label for metrics and logs: one per upstream API (<source>_<api>). */
  api: string;
  baseUrl: string;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  concurrency: number;
  /** PEM bundle added to the trust store; verification itself is never switched off. */
  caFile?: string;
  /** Largest body read, in bytes; larger answers fail as UPSTREAM_MALFORMED. */
  maxBodyBytes?: number;
}

/** Settings plus what the engine wires in. */
export interface HttpClientOptions extends HttpClientSettings {
  metrics: HttpMetrics;
  /** The shared parse-error counter: a body that is not JSON counts there. */
  parseErrors: Counter<'api' | 'endpoint'>;
  log: Logger;
  now?: () => number;
  random?: () => number;
}

export interface RequestOptions {
  /** Path below baseUrl, starting with '/'. */
  path: string;
  /** Repeated keys are given as arrays. */
  query?: Record<string, string | number | readonly (string | number)[] | undefined>;
  headers?: Record<string, string>;
  /** Bounded label for metrics: the route template, never the concrete path. */
  endpoint: string;
  /**
   * Budgets every attempt takes from, in order (an account's, then a shared per-IP one); the
   * first one's account is named in errors.
   */
  budget?: Budget | readonly Budget[];
  /** What one attempt costs the budgets that count cost (default 1); those that count requests take 1. */
  cost?: number;
  signal: AbortSignal;
  deadline: number;
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  body?: string;
}

export interface JsonResponse {
  status: number;
  body: unknown;
}

const RETRYABLE_NETWORK = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
]);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** An upstream HTTP client: timeouts, bounded retries with backoff, request budget, concurrency cap, metrics. */
export class HttpClient {
  private readonly agent: Dispatcher;
  private readonly semaphore: Semaphore;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly base: string;

  constructor(private readonly o: HttpClientOptions) {
    this.agent = new Agent({
      // `ca` replaces Node's trust store, so the bundled roots go first: the file adds to them.
      connect: { timeout: o.connectTimeoutMs, ...(o.caFile ? { ca: [...rootCertificates, readFileSync(o.caFile, 'utf8')] } : {}) },
      headersTimeout: o.headersTimeoutMs,
      bodyTimeout: o.bodyTimeoutMs,
      connections: Math.max(1, o.concurrency),
    });
    this.semaphore = new Semaphore(o.concurrency);
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.base = o.baseUrl.replace(/\/+$/, '');
  }

  /** Creates the zero-valued series of the API and its endpoints, so alerts and panels see 0, not nothing. */
  declareEndpoints(endpoints: readonly string[]): void {
    const { api, metrics, parseErrors } = this.o;
    metrics.throttled.inc({ api }, 0);
    for (const endpoint of endpoints) {
      metrics.retries.inc({ api, endpoint }, 0);
      parseErrors.inc({ api, endpoint }, 0);
    }
  }

  /**
   * An answer that is valid JSON but not of the shape the source expects: counted in
   * parse_errors_total like unreadable JSON, and returned (to throw) as UPSTREAM_MALFORMED.
   */
  malformed(endpoint: string, why: string): UpstreamError {
    this.o.parseErrors.inc({ api: this.o.api, endpoint });
    return new UpstreamError('UPSTREAM_MALFORMED', `${this.o.api} ${endpoint}: ${why}`, { api: this.o.api, endpoint });
  }

  /** Sends a request and parses a JSON answer; throws UpstreamError for anything but a 2xx JSON body. */
  async json(opts: RequestOptions): Promise<JsonResponse> {
    const { status, text } = await this.send(opts);
    try {
      // JSON.parse of a body nested thousands deep (under the size cap) costs gigabytes, and code
      // that walks it recursively overflows the stack: refuse it before parsing.
      const depth = jsonDepth(text, MAX_JSON_DEPTH);
      if (depth > MAX_JSON_DEPTH) throw new Error(`nested deeper than ${MAX_JSON_DEPTH} levels`);
      return { status, body: text.length === 0 ? null : JSON.parse(text) };
    } catch (e) {
      this.o.parseErrors.inc({ api: this.o.api, endpoint: opts.endpoint });
      // Not the parser's error as the cause: V8 quotes the body in it (all of a short one), and a
      // body may be a credential echoed back; the log prints causes.
      const why = e instanceof SyntaxError ? 'not valid JSON' : e instanceof Error ? e.message : 'unreadable';
      throw new UpstreamError('UPSTREAM_MALFORMED', `malformed JSON from ${this.o.api} ${opts.endpoint} (${why})`, {
        api: this.o.api, endpoint: opts.endpoint, status,
      });
    }
  }

  /** Sends a request, retrying idempotent ones; returns the status and body text of a 2xx answer. */
  async send(opts: RequestOptions): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    const { api, metrics } = this.o;
    const method = opts.method ?? 'GET';
    const idempotent = method === 'GET' || method === 'HEAD' || method === 'PUT' || method === 'DELETE';
    const url = this.url(opts);
    const labels = { api, endpoint: opts.endpoint };
    const budgets: readonly Budget[] = opts.budget === undefined ? [] : Array.isArray(opts.budget) ? opts.budget : [opts.budget as Budget];
    for (let attempt = 0; ; attempt++) {
      let retryAfterMs: number | undefined;
      let failure: UpstreamError;
      let retryable: boolean;
      for (const b of budgets) await b.take(opts.endpoint, opts.deadline, opts.signal, opts.cost);
      const release = await this.semaphore.acquire(opts.signal);
      const t0 = performance.now();
      let statusCode: number | undefined;
      try {
        const res = await request(url, {
          method,
          headers: { accept: 'application/json', 'user-agent': 'conviva-exporter', ...opts.headers },
          body: opts.body,
          dispatcher: this.agent,
          signal: opts.signal,
        });
        statusCode = res.statusCode;
        const text = await this.readBody(res.body, opts.endpoint);
        metrics.duration.observe(labels, (performance.now() - t0) / 1000);
        metrics.requests.inc({ ...labels, code: String(res.statusCode) });
        if (res.statusCode >= 200 && res.statusCode < 300) {
          return { status: res.statusCode, text, headers: res.headers };
        }
        if (res.statusCode === 429) metrics.throttled.inc({ api });
        retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.now());
        const account = budgets[0]?.account;
        // A refused credential has a code of its own, so that it is never taken for a repeat of
        // another failure (and logged at debug): the account is named.
        const auth = res.statusCode === 401 || res.statusCode === 403;
        // The body, redacted, rides along: a caller may act on what it names (a 400's parameter).
        const detail = redactBody(text, opts.headers) || undefined;
        failure = new UpstreamError(
          res.statusCode === 429 ? 'UPSTREAM_THROTTLED' : auth ? 'UPSTREAM_AUTH' : 'UPSTREAM_STATUS',
          `${api} ${opts.endpoint} answered ${res.statusCode}${auth && account ? ` for account ${account}: credentials refused` : ''}${detail ? `: ${detail}` : ''}`,
          { api, endpoint: opts.endpoint, status: res.statusCode, account, detail },
        );
        retryable = res.statusCode === 429 || res.statusCode >= 500;
      } catch (e) {
        // Counted even when the run's deadline aborted it: the slowest requests belong in the
        // latency histogram most of all. No complete answer arrived: code "error".
        const aborted = opts.signal.aborted;
        metrics.duration.observe(labels, (performance.now() - t0) / 1000);
        metrics.requests.inc({ ...labels, code: !aborted && e instanceof UpstreamError && statusCode !== undefined ? String(statusCode) : 'error' });
        if (aborted) throw opts.signal.reason;
        if (e instanceof UpstreamError) throw e;
        failure = networkError(e, api, opts.endpoint);
        retryable = RETRYABLE_NETWORK.has(causeCode(e));
      } finally {
        release();
      }
      if (!retryable) throw failure;
      if (!idempotent || attempt >= this.o.maxRetries) throw failure;
      const backoff = Math.min(this.o.retryMaxDelayMs, this.o.retryBaseDelayMs * 2 ** attempt);
      // Equal jitter: half fixed, half random, so retries spread out but never fire at once.
      const delay = retryAfterMs ?? backoff / 2 + this.random() * (backoff / 2);
      if (this.now() + delay >= opts.deadline) throw failure;
      metrics.retries.inc(labels);
      this.o.log.debug({ api, endpoint: opts.endpoint, attempt: attempt + 1, delayMs: Math.round(delay), code: failure.code, status: failure.status }, 'retrying upstream request');
      await sleep(delay, opts.signal);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private url(opts: RequestOptions): string {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v) qs.append(k, String(item));
      else qs.append(k, String(v));
    }
    const q = qs.toString();
    return `${this.base}${opts.path}${q ? `?${q}` : ''}`;
  }

  private async readBody(body: Dispatcher.ResponseData['body'], endpoint: string): Promise<string> {
    const max = this.o.maxBodyBytes ?? 16 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += (chunk as Buffer).length;
      if (size > max) {
        body.destroy();
        throw new UpstreamError('UPSTREAM_MALFORMED', `${this.o.api} ${endpoint} body larger than ${max} bytes`, { api: this.o.api, endpoint });
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

/** Deepest answer we read: upstream JSON is a handful of levels deep. */
const MAX_JSON_DEPTH = 64;

/**
 * The nesting depth of JSON text (objects and arrays), counted without parsing; stops counting
 * once past `limit`. Brackets inside strings do not count.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

function causeCode(e: unknown): string {
  if (e && typeof e === 'object' && 'code' in e && typeof e.code === 'string') return e.code;
  return '';
}

function networkError(e: unknown, api: string, endpoint: string): UpstreamError {
  const code = causeCode(e);
  const timeout = TIMEOUTS.has(code);
  return new UpstreamError(
    timeout ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_NETWORK',
    `${api} ${endpoint}: ${timeout ? 'timed out' : 'network error'} (${code || (e instanceof Error ? e.message : 'unknown')})`,
    { api, endpoint, cause: e },
  );
}

/** Retry-After as delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The start of an error body, for the log and the landing page, with credentials taken out: an
 * upstream or a proxy may echo the request's Authorization header (or the credentials it encodes).
 */
export function describeBody(text: string, headers: Record<string, string> = {}): string {
  const t = redactBody(text, headers);
  return t ? `: ${t}` : '';
}

/** The start of an error body (200 characters) with credentials taken out; '' for an empty body. */
export function redactBody(text: string, headers: Record<string, string> = {}): string {
  let t = text.trim();
  if (!t) return '';
  for (const secret of headerSecrets(headers)) t = t.split(secret).join('[REDACTED]');
  t = t.replace(/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+/gi, '$1 [REDACTED]');
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

/** Every header value, for Basic auth the decoded "id:secret" and its parts, and their base64 forms, longest first. */
function headerSecrets(headers: Record<string, string>): string[] {
  const out = new Set<string>();
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'accept' || name.toLowerCase() === 'user-agent') continue;
    const m = /^(?:Basic|Bearer)\s+(.+)$/i.exec(value);
    out.add(value);
    if (!m) continue;
    out.add(m[1]!);
    if (/^basic/i.test(value)) {
      const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
      out.add(decoded);
      for (const part of decoded.split(':')) out.add(part);
    }
  }
  // ... and each of them base64-encoded (padded and not): an echo may encode what it repeats.
  for (const s of [...out]) {
    const b64 = Buffer.from(s, 'utf8').toString('base64');
    out.add(b64);
    out.add(b64.replace(/=+$/, ''));
  }
  return [...out].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
}
