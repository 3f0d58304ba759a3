import type { Simulator } from '../../../src/simulator/server.js';
import type { ParsedSample } from '../../helpers/exposition.js';

/** A configured credential: the storm's secret scan looks for it and for its Basic and Bearer encodings. */
export interface StormSecret {
  /** The identifier that goes with the secret in Basic auth (`id:secret`), when there is one. */
  id?: string;
  secret: string;
}

/** What the storm knows at the end, for a source's oracle. */
export interface StormSpan {
  /** Clock time of the storm's first run (a clean one: every scope starts counting there). */
  firstRunAt: number;
  /** Clock time of the final clean run (the clock then is past every time the storm reached). */
  lastRunAt: number;
  /** The collectors' state as the state file holds it at the end (collector name -> {version, state}). */
  state?: Record<string, unknown>;
}

/**
 * How a source takes part in the fault suite (test/faults/storm.test.ts). Every source in
 * src/sources/index.ts registers one in ./index.ts; the suite refuses to run without it.
 */
export interface StormPlugin {
  /** The source's name, as in SOURCES. */
  source: string;
  /**
   * The source's block under `sources:` (YAML, each line indented by four spaces), pointed at the
   * simulator by the suite. `${SECRET_DIR}` is a folder for `*_file` secrets (see `files`).
   */
  configBlock: string;
  /** Files to write into `${SECRET_DIR}` before the config loads (name -> content). */
  files?: Record<string, string>;
  secrets: StormSecret[];
  /** Substrings of this source's upstream request paths: the storm aims its faults at them. */
  paths: string[];
  /** Paths of the source's wide requests (a 413 for an answer too large); `paths` when absent. */
  widePaths?: string[];
  /**
   * Every counter series the source must serve after the storm, with the value the simulator
   * served (its oracle). The suite checks the final exposition has exactly these series of
   * `counterFamilies`, with these values.
   */
  expected(sim: Simulator, span: StormSpan): ParsedSample[];
  /** The counter families the oracle covers. */
  counterFamilies: string[];
  /** Self-metric series that must read 0 after the storm (nothing lost), e.g. buckets missed. */
  mustBeZero?: Array<{ name: string; labels: Record<string, string> }>;
}
