import type { Router } from 'express';
import type { Clock } from '../engine/clock.js';

/** What every source's fake upstream gets from the simulator. */
export interface FakeOptions {
  seed: number;
  clock: Clock;
  /** How many values the open-ended dimensions (ASN, city, asset, ...) have. */
  cardinality: number;
  /** Whether data is revised after it settled, as real upstreams do (default true). */
  lateRevisions?: boolean;
}

/** One source's fake upstream: routes on the simulator's server, behind its fault switches. */
export interface Fake {
  /** Mounts the fake's routes (absolute paths, as the real API has them). */
  mount(router: Router): void;
  /** Mounts routes that change the fake's data, under /_admin: not subject to the fault switches. */
  admin?(router: Router): void;
}
