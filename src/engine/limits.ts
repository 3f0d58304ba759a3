import { Counter, type Registry } from 'prom-client';
import { SELF_PREFIX } from './self-metrics.js';

// Limits shared by every transport (HTTP today, SFTP later): a per-account request budget, a
// concurrency cap and an abortable sleep. They know nothing of HTTP.

/** Sleeps `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The budget's own metrics, per (api, account). */
export function createBudgetMetrics(registry: Registry) {
  return {
    wait: new Counter({
      name: `${SELF_PREFIX}budget_wait_seconds_total`,
      help: 'Time spent waiting for the client-side request budget of an upstream API and account.',
      labelNames: ['api', 'account'],
      registers: [registry],
    }),
    exhausted: new Counter({
      name: `${SELF_PREFIX}budget_exhausted_total`,
      help: 'Upstream calls abandoned because the request budget had no room before the run deadline.',
      labelNames: ['api', 'account'],
      registers: [registry],
    }),
  };
}
export type BudgetMetrics = ReturnType<typeof createBudgetMetrics>;

/** Thrown when the budget cannot give a request before the deadline; `code` is stable. */
export class BudgetExhaustedError extends Error {
  readonly code = 'BUDGET_EXHAUSTED';
  constructor(
    readonly api: string,
    readonly account: string,
    readonly endpoint: string,
    perMinute: number,
  ) {
    super(`request budget of ${perMinute}/min exhausted for ${api}/${account}`);
    this.name = 'BudgetExhaustedError';
  }
}

/**
 * Client-side request budget: a token bucket of `perMinute` requests refilled continuously, so
 * the exporter stays under the upstream's per-account limit before the upstream has to say 429.
 */
export class RequestBudget {
  private tokens: number;
  private last: number;
  private readonly ratePerMs: number;

  constructor(
    readonly api: string,
    readonly account: string,
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly metrics?: BudgetMetrics,
  ) {
    this.tokens = perMinute;
    this.last = this.now();
    this.ratePerMs = perMinute / 60_000;
    // Known series exist from the start, so alerts and panels see 0 rather than nothing.
    metrics?.wait.inc({ api, account }, 0);
    metrics?.exhausted.inc({ api, account }, 0);
  }

  /**
   * Takes one request's worth, waiting for the bucket to refill when empty. Returns the ms waited.
   * Throws BudgetExhaustedError, without waiting, when the refill would come after `deadline`.
   */
  async take(endpoint: string, deadline: number, signal?: AbortSignal): Promise<number> {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    const waitMs = Math.ceil((1 - this.tokens) / this.ratePerMs);
    if (this.now() + waitMs > deadline) {
      this.metrics?.exhausted.inc({ api: this.api, account: this.account });
      throw new BudgetExhaustedError(this.api, this.account, endpoint, this.perMinute);
    }
    // Reserve the token now so concurrent callers queue behind each other instead of all waking at once.
    this.tokens -= 1;
    await sleep(waitMs, signal);
    this.metrics?.wait.inc({ api: this.api, account: this.account }, waitMs / 1000);
    return waitMs;
  }

  /** Removes this budget's series (the account is no longer configured). */
  forget(): void {
    this.metrics?.wait.remove({ api: this.api, account: this.account });
    this.metrics?.exhausted.remove({ api: this.api, account: this.account });
  }

  private refill(): void {
    const now = this.now();
    // A clock stepped backwards refills nothing (and must not drain the bucket by the step).
    this.tokens = Math.min(this.perMinute, this.tokens + Math.max(0, now - this.last) * this.ratePerMs);
    this.last = now;
  }
}

/** Caps how many requests run at once; waiters are served first come, first served. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.active < this.max) {
      this.active++;
      return () => this.release();
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason);
      };
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(grant);
    });
    return () => this.release();
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }
}
