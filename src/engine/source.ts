import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { HttpClient, HttpClientSettings } from '../http/client.js';
import type { Fake, FakeOptions, SimulatorEndpoints } from '../simulator/fake.js';
import type { Clock } from './clock.js';
import type { Collector } from './collector.js';
import type { FamilyDef } from './family.js';
import type { RequestBudget, WindowBudget } from './limits.js';
import type { ShardContext } from './shard.js';
import type { EngineMetrics } from './self-metrics.js';

/** Helpers a source's `resolve` gets: secrets with their *_file twins, paths, problems with key paths. */
export interface ResolveContext {
  /** "sources.<name>" */
  readonly at: string;
  /**
   * The secret under `key` or read from the file under `${key}_file` of `obj` (exactly one of the
   * two; the file's content, one trailing newline dropped). `at` is obj's key path.
   */
  secret(obj: Record<string, unknown>, key: string, at: string): string;
  /** A path from the config, resolved against the config file's folder. */
  path(p: string): string;
  /** Records a problem; the config is refused with every problem listed. */
  problem(at: string, message: string): void;
  /** Records a warning: the config is accepted; --check-config prints it, start-up and reloads log it. */
  warn(at: string, message: string): void;
}

/** What the engine hands a source to build its collectors. */
export interface SourceServices {
  readonly log: Logger;
  readonly clock: Clock;
  readonly engine: EngineMetrics;
  /** An HTTP client for one upstream API; the engine closes it when the pipeline is replaced. */
  httpClient(settings: HttpClientSettings): HttpClient;
  /**
   * The request budget of (api, account): the same one across reloads while it is still asked for
   * with the same rate (tokens spent before a reload stay spent); its series go when it is not.
   */
  budget(api: string, account: string, perMinute: number): RequestBudget;
  /**
   * The sliding-window limit of (api, account), at most `max` requests in any `windowMs` (for a
   * limit shared by several accounts, such as a per-IP one, `account` names the scope): kept across
   * reloads like `budget`, while asked for with the same `max` and `windowMs`.
   */
  windowBudget(api: string, account: string, max: number, windowMs: number): WindowBudget;
}

/**
 * A source: everything the rest of the program needs to know of one upstream, defined in
 * `src/sources/<name>/index.ts` and listed once in `src/sources/index.ts`. (Model:
 * blackbox_exporter's prober map, node_exporter's registerCollector.)
 */
export interface SourceDef<Raw = unknown, Resolved = unknown, Self = unknown> {
  /** The key under `sources:` in the config, and the prefix of its collectors' names. */
  readonly name: string;
  /** Its config block (defaults live here; unknown keys are errors). Secrets come in pairs: `x` or `x_file`. */
  readonly configSchema: z.ZodType<Raw>;
  /** Resolves secrets and paths, and checks what the schema cannot (duplicate names, ...). */
  resolve(raw: Raw, ctx: ResolveContext): Resolved;
  /** Every data family the source can emit, whatever its config (the docs test reads this). */
  readonly families: readonly FamilyDef[];
  /** The source's own health metrics, created once per process in the exporter's registry. */
  selfMetrics?(registry: Registry): Self;
  /** Its collectors for a resolved config. */
  build(config: Resolved, services: SourceServices, self: Self): Collector[];
  /** Its fake upstream, mounted by the simulator. */
  fake(options: FakeOptions): Fake;
  /** The config pointed at the simulator (demo mode and tests): its HTTP base URL, and its SFTP server when it has one. */
  useSimulator(config: Resolved, sim: SimulatorEndpoints): Resolved;
  /**
   * Its units of upstream work, for sharding across replicas (--shard, --total-shards; see
   * docs/scaling.md). A unit is what can run on one replica while another runs the rest: its
   * requests, and the budgets they spend, belong to it alone. Without this, the source is one unit
   * (keyed by its name), run whole by one shard.
   */
  readonly sharding?: SourceSharding<Resolved>;
}

/** A source's units of work and how to keep only some of them (see SourceDef.sharding). */
export interface SourceSharding<Resolved> {
  /**
   * The stable keys of the block's units, unique within the source: the engine hashes
   * `<source>/<key>`. A key must not change while the unit does not (a renamed key moves the unit
   * to another shard, which starts it afresh).
   */
  units(config: Resolved): string[];
  /**
   * The block keeping only the units `shard` owns (it owns at least one), with every limit that
   * all the units share upstream (per IP, per customer) cut to this shard's part, `shard.share()`.
   */
  keep(config: Resolved, shard: ShardContext): Resolved;
}

/** Defines a source, keeping its config types together. */
export function defineSource<Raw, Resolved, Self = undefined>(def: SourceDef<Raw, Resolved, Self>): SourceDef<Raw, Resolved, Self> {
  return def;
}

// The list holds sources of different config types; the engine hands each its own block.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySource = SourceDef<any, any, any>;
