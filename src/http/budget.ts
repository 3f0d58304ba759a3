import { UpstreamError } from './errors.js';

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
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = perMinute;
    this.last = this.now();
    this.ratePerMs = perMinute / 60_000;
  }

  /**
   * Takes one request's worth, waiting for the bucket to refill when empty. Returns the ms waited.
   * Throws BUDGET_EXHAUSTED, without waiting, when the refill would come after `deadline`.
   */
  async take(endpoint: string, deadline: number, signal?: AbortSignal): Promise<number> {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    const waitMs = Math.ceil((1 - this.tokens) / this.ratePerMs);
    if (this.now() + waitMs > deadline) {
      throw new UpstreamError('BUDGET_EXHAUSTED', `request budget of ${this.perMinute}/min exhausted for ${this.api}/${this.account}`, {
        api: this.api,
        endpoint,
      });
    }
    // Reserve the token now so concurrent callers queue behind each other instead of all waking at once.
    this.tokens -= 1;
    await sleep(waitMs, signal);
    return waitMs;
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.perMinute, this.tokens + (now - this.last) * this.ratePerMs);
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
