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
  /**
   * Writes every collector's state to the state file now, before a step that cannot be undone
   * (starting a remote job). Resolves true once the state is on disk, false when no state file is
   * configured; rejects (StateWriteError) when the write failed.
   */
  saveState(): Promise<boolean>;
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
 * State a collector keeps across a config reload or a restart (counters, watermarks, jobs in
 * flight), as plain JSON. `version` is the format of `carry()`'s answer: state written under
 * another version is not handed to `adopt()`.
 */
export interface CollectorState {
  readonly version: number;
  carry(): unknown;
  /** Takes over carried state; keeps only what still applies and ignores anything it cannot read. */
  adopt(state: unknown): void;
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
  /** The families this collector emits with its configuration (the cardinality guard and series_dropped_total). */
  readonly families: readonly FamilyDef[];
  /** Cardinality guard: label sets per family (default 5000). */
  readonly maxSeriesPerFamily?: number;
  collect(ctx: RunContext): Promise<RunOutcome>;
  readonly state?: CollectorState;
}
