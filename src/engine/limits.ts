import { Counter, type Registry } from 'prom-client';
import { formatDuration } from '../config/duration.js';
import { SELF_PREFIX } from './self-metrics.js';

// Limits shared by every transport (HTTP today, SFTP later): a per-account request budget, a
// sliding-window request limit, a concurrency cap and an abortable sleep. They know nothing of HTTP.

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
      help: 'Time spent waiting for the client-side request budget of an upstream API and account (account="all" for a limit shared by every account of an API).',
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
    /** The limit as people read it: "500/min", "3000 per 5m". */
    limit: string,
  ) {
    super(`request budget of ${limit} exhausted for ${api}/${account}`);
    this.name = 'BudgetExhaustedError';
  }
}

/** What a transport asks of a budget before each attempt; `api` and `account` label its metrics and errors. */
export interface Budget {
  readonly api: string;
  readonly account: string;
  /**
   * Takes room for one request costing `cost` units (default 1), waiting for it; returns the ms
   * waited. Throws BudgetExhaustedError, without waiting, when the room would come after
   * `deadline`. A budget that counts requests (WindowBudget) takes 1 whatever the cost.
   */
  take(endpoint: string, deadline: number, signal?: AbortSignal, cost?: number): Promise<number>;
  /** Removes this budget's series (it is no longer configured). */
  forget(): void;
}

/** What both kinds of budget share: their series (at 0 from the start), refusing, waiting, forgetting. */
abstract class BudgetBase {
  constructor(
    readonly api: string,
    readonly account: string,
    private readonly metrics: BudgetMetrics | undefined,
    /** The limit as the refusal's message states it ("500/min", "3000 per 5m"). */
    private readonly limit: string,
  ) {
    // Known series exist from the start, so alerts and panels see 0 rather than nothing.
    metrics?.wait.inc({ api, account }, 0);
    metrics?.exhausted.inc({ api, account }, 0);
  }

  /** Removes this budget's series (it is no longer configured). */
  forget(): void {
    this.metrics?.wait.remove({ api: this.api, account: this.account });
    this.metrics?.exhausted.remove({ api: this.api, account: this.account });
  }

  /** The refusal of a request whose room would come after its deadline, counted. */
  protected exhausted(endpoint: string): BudgetExhaustedError {
    this.metrics?.exhausted.inc({ api: this.api, account: this.account });
    return new BudgetExhaustedError(this.api, this.account, endpoint, this.limit);
  }

  /** Waits `ms` for room (already reserved), counted; returns `ms`. */
  protected async wait(ms: number, signal?: AbortSignal): Promise<number> {
    await sleep(ms, signal);
    this.metrics?.wait.inc({ api: this.api, account: this.account }, ms / 1000);
    return ms;
  }
}

/**
 * Client-side request budget: a token bucket of `perMinute` units refilled continuously, so the
 * exporter stays under the upstream's per-account limit before the upstream has to say 429. A
 * request takes `cost` units (an upstream may count a request with 5 filters as 5).
 */
export class RequestBudget extends BudgetBase implements Budget {
  private tokens: number;
  private last: number;
  private readonly ratePerMs: number;

  constructor(
    api: string,
    account: string,
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
    metrics?: BudgetMetrics,
  ) {
    super(api, account, metrics, `${perMinute}/min`);
    this.tokens = perMinute;
    this.last = this.now();
    this.ratePerMs = perMinute / 60_000;
  }

  /**
   * Takes `cost` units (default 1), waiting for the bucket to refill when short. Returns the ms
   * waited. Throws BudgetExhaustedError, without waiting, when the refill would come after
   * `deadline`. A cost above `perMinute` takes the whole bucket, so it still goes once it is full.
   */
  async take(endpoint: string, deadline: number, signal?: AbortSignal, cost = 1): Promise<number> {
    const need = Math.min(cost, this.perMinute);
    this.refill();
    if (this.tokens >= need) {
      this.tokens -= need;
      return 0;
    }
    const waitMs = Math.ceil((need - this.tokens) / this.ratePerMs);
    if (this.now() + waitMs > deadline) throw this.exhausted(endpoint);
    // Reserve the units now so concurrent callers queue behind each other instead of all waking at once.
    this.tokens -= need;
    return this.wait(waitMs, signal);
  }

  private refill(): void {
    const now = this.now();
    // A clock stepped backwards refills nothing (and must not drain the bucket by the step).
    this.tokens = Math.min(this.perMinute, this.tokens + Math.max(0, now - this.last) * this.ratePerMs);
    this.last = now;
  }
}

/**
 * At most `max` requests in any `windowMs`, exactly (a sliding window over the last `max` send
 * times; a token bucket would let twice as many through in its worst window). For limits stated
 * as "N requests per W", such as 3,000 requests per 5 minutes per IP address.
 */
export class WindowBudget extends BudgetBase implements Budget {
  /** Send times of the last `max` requests (past, or reserved by a waiter), in order; a ring. */
  private readonly sent: Float64Array;
  /** Where the next send time goes; once the ring is full, also the oldest of the last `max`. */
  private next = 0;
  private count = 0;
  private last: number;

  constructor(
    api: string,
    account: string,
    readonly max: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
    metrics?: BudgetMetrics,
  ) {
    super(api, account, metrics, `${max} per ${formatDuration(windowMs)}`);
    this.sent = new Float64Array(max);
    this.last = this.now();
  }

  /**
   * Takes room for one request (whatever `cost`: the limit counts requests), waiting until the
   * oldest of the last `max` leaves the window. Returns the ms waited. Throws BudgetExhaustedError,
   * without waiting, when that would be after `deadline`.
   */
  async take(endpoint: string, deadline: number, signal?: AbortSignal): Promise<number> {
    const now = this.clock();
    const oldest = this.count < this.max ? -Infinity : this.sent[this.next]!;
    const newest = this.count === 0 ? -Infinity : this.sent[(this.next + this.max - 1) % this.max]!;
    // `newest` keeps the ring in order; with a clock that only goes forward it never decides.
    const at = Math.max(now, oldest + this.windowMs, newest);
    const waitMs = Math.ceil(at - now);
    if (waitMs > 0 && now + waitMs > deadline) throw this.exhausted(endpoint);
    // Reserve the send time now so concurrent callers queue behind each other.
    this.sent[this.next] = at;
    this.next = (this.next + 1) % this.max;
    this.count = Math.min(this.count + 1, this.max);
    return waitMs <= 0 ? 0 : this.wait(waitMs, signal);
  }

  /**
   * Now, with a clock stepped backwards taken as no time passing: the recorded send times move
   * back by the step, so the window neither empties nor fills up (an hour back must not cost an
   * hour of waiting).
   */
  private clock(): number {
    const now = this.now();
    if (now < this.last) {
      const step = now - this.last;
      for (let i = 0; i < this.count; i++) this.sent[i]! += step;
    }
    this.last = now;
    return now;
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
