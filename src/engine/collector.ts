import type { Logger } from 'pino';
import type { FamilyDef } from './family.js';
import type { SampleSet } from './samples.js';
import type { CardinalityGuard } from './guard.js';

/** What a collector gets for one run. */
export interface RunContext {
  /** Aborted when the run's deadline passes or the exporter stops. */
  readonly signal: AbortSignal;
  /** Epoch ms at which the run must be over; retries and budget waits fit inside it. */
  readonly deadline: number;
  /** Epoch ms at the start of the run, from the injected clock. */
  readonly now: number;
  readonly log: Logger;
  readonly samples: SampleSet;
  readonly guard: CardinalityGuard;
}

export interface RunOutcome {
  /** Epoch ms (upstream time) of the newest data in this run, if the source has such a notion. */
  newestDataTimestamp?: number;
  /**
   * Parts of the run that failed while others succeeded: the samples are published, and the run
   * still counts as failed (collector_up 0). A run in which nothing succeeded throws instead.
   */
  errors?: readonly unknown[];
}

/**
 * A collector builds a complete SampleSet per run and throws on failure; the runner logs,
 * sets health metrics and publishes. "No data" is a success with an empty set.
 */
export interface Collector {
  readonly name: string;
  /** node-cron expression. */
  readonly schedule: string;
  /** Per-run deadline in ms. */
  readonly timeoutMs: number;
  /** Every family this collector can emit (docs check and duplicate check). */
  readonly families: readonly FamilyDef[];
  /** Cardinality guard: label sets per family (default 5000). */
  readonly maxSeriesPerFamily?: number;
  collect(ctx: RunContext): Promise<RunOutcome>;
  /**
   * State worth keeping across a config reload or a restart (counters, watermarks), as plain JSON:
   * handed to the collector of the next config, and written to the state file.
   */
  carryState?(): unknown;
  /**
   * Takes over carried state (from the previous config, or read back from the state file); keeps
   * only what still applies and ignores anything it cannot read.
   */
  adoptState?(state: unknown): void;
}
