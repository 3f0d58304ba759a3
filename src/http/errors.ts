/** Stable error codes; callers branch on `code`, never on message text. */
export type UpstreamErrorCode =
  | 'UPSTREAM_STATUS' // a non-retryable or retries-exhausted HTTP status
  | 'UPSTREAM_THROTTLED' // 429 after the retry budget was spent
  | 'UPSTREAM_AUTH' // 401 or 403: the credentials were refused
  | 'UPSTREAM_TIMEOUT' // connect, headers or body timeout
  | 'UPSTREAM_NETWORK' // connection refused, reset, DNS, TLS
  | 'UPSTREAM_MALFORMED' // body was not the JSON or shape we expect
  | 'DEADLINE_EXCEEDED'; // the run's deadline passed

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
  readonly api: string;
  readonly endpoint: string;
  readonly status: number | undefined;
  /** The account whose request failed, when the request was made for one. */
  readonly account: string | undefined;
  /** The start of an error answer's body, credentials taken out (client.ts `redactBody`); undefined when empty. */
  readonly detail: string | undefined;

  constructor(
    code: UpstreamErrorCode,
    message: string,
    opts: { api: string; endpoint: string; status?: number; account?: string; detail?: string; cause?: unknown },
  ) {
    super(message, { cause: opts.cause });
    this.name = 'UpstreamError';
    this.code = code;
    this.api = opts.api;
    this.endpoint = opts.endpoint;
    this.status = opts.status;
    this.account = opts.account;
    this.detail = opts.detail;
  }
}
