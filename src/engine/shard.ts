import { createHash } from 'node:crypto';
import type { AnySource } from './source.js';

// Sharding across replicas (--shard N --total-shards M, kube-state-metrics' model): every replica
// reads the same config, hashes the stable key of each unit of upstream work (an account, a data
// flow, a query: each source declares its own, SourceDef.sharding) and polls only the units whose
// hash falls on its own ordinal. No replica talks to another: they agree because the hash and the config are the same.

/** Which shard this replica is; {ordinal 0, total 1} is no sharding. */
export interface ShardSpec {
  readonly ordinal: number;
  readonly total: number;
}

export const NO_SHARDING: ShardSpec = { ordinal: 0, total: 1 };

/** The most shards accepted (a sanity bound: each source's units are counted per shard). */
export const MAX_SHARDS = 1000;

/**
 * The shard (0..total-1) that owns `key`: the first 4 bytes of SHA-256 over the key's UTF-8 bytes,
 * read as a big-endian unsigned integer, modulo `total`. Stable across versions, platforms and
 * Node releases (changing it moves every unit); by hand:
 * `printf %s <source>/<unit> | sha256sum | cut -c1-8`, then that hex number modulo M.
 * (Not FNV-1a: its lowest bit is the parity of the key's odd bytes, so M = 2 would split names like
 * `eu-1`/`eu-3` by a single character.)
 */
export function shardOf(key: string, total: number): number {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`total shards must be an integer >= 1, got ${total}`);
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % total;
}

/** What a source's sharding hook gets: which of its units this shard owns, and its part of limits they share. */
export interface ShardContext extends ShardSpec {
  /** Whether this shard owns the unit (its key as the source's `units` gives it; the engine adds `<source>/`). */
  owns(unit: string): boolean;
  /**
   * This shard's part of an upstream limit that `units` (keys as above) share, such as a per-IP or
   * per-customer one: `limit` times the share of those units this shard owns, rounded down, and at
   * least 1 when it owns any (0 when it owns none). The parts of all shards add up to at most
   * `limit`, unless the limit is smaller than the number of shards that need a part: then each
   * still gets 1 (nothing would run otherwise), and the engine logs a warning naming the limit
   * (`name`, its config key).
   */
  share(limit: number, units: readonly string[], name: string): number;
}

/** A divided limit, for the log line that says what this replica took. */
export interface SharedLimit {
  source: string;
  name: string;
  limit: number;
  part: number;
  /** Every shard's part, by ordinal. */
  parts: number[];
}

/** The key the engine hashes for a source's unit: `<source>/<unit>`; a source without hooks is one unit keyed `<source>`. */
export function unitKey(source: string, unit: string | undefined): string {
  return unit === undefined ? source : `${source}/${unit}`;
}

/** A source's block as one shard sees it. */
export interface ShardedBlock<Resolved> {
  /** The block keeping only the units this shard owns; undefined when it owns none (no collector is built). */
  block: Resolved | undefined;
  /** Every unit of the block, as `unitKey` spells them, in config order. */
  units: string[];
  /** Those this shard owns. */
  owned: string[];
  limits: SharedLimit[];
}

/**
 * Applies sharding to one source's resolved block: the block whole when there is one shard; the
 * block its `sharding.keep` hook returns when this shard owns some of its units; undefined when it
 * owns none. A source without the hook is one unit, owned by the shard its name hashes to.
 */
export function shardBlock<R>(source: AnySource, block: R, spec: ShardSpec): ShardedBlock<R> {
  const keys: Array<string | undefined> = source.sharding ? (source.sharding.units(block) as string[]) : [undefined];
  const units = keys.map((k) => unitKey(source.name, k));
  if (spec.total === 1) return { block, units, owned: units, limits: [] };
  const owned = units.filter((u) => shardOf(u, spec.total) === spec.ordinal);
  if (owned.length === 0) return { block: undefined, units, owned, limits: [] };
  if (!source.sharding) return { block, units, owned, limits: [] };
  const limits: SharedLimit[] = [];
  const ctx: ShardContext = {
    ordinal: spec.ordinal,
    total: spec.total,
    owns: (unit) => shardOf(unitKey(source.name, unit), spec.total) === spec.ordinal,
    share: (limit, scope, name) => {
      const counts = new Array<number>(spec.total).fill(0);
      for (const u of scope) counts[shardOf(unitKey(source.name, u), spec.total)]!++;
      const parts = counts.map((c) => (c === 0 ? 0 : Math.max(1, Math.floor((limit * c) / scope.length))));
      const part = parts[spec.ordinal]!;
      limits.push({ source: source.name, name, limit, part, parts });
      return part;
    },
  };
  return { block: source.sharding.keep(block, ctx) as R, units, owned, limits };
}

/**
 * The shard from --shard and --total-shards (both or neither; neither is no sharding), or the
 * message that says what is wrong with them.
 */
export function parseShardFlags(shard: string | undefined, total: string | undefined): ShardSpec | string {
  if (shard === undefined && total === undefined) return NO_SHARDING;
  if (shard === undefined || total === undefined) return '--shard and --total-shards go together: give both, or neither (no sharding)';
  const whole = (s: string) => (/^\d{1,7}$/.test(s) ? Number(s) : undefined);
  const m = whole(total);
  if (m === undefined || m < 1 || m > MAX_SHARDS) return `--total-shards: expected a whole number from 1 to ${MAX_SHARDS}, got "${total}"`;
  const n = whole(shard);
  if (n === undefined || n >= m) return `--shard: expected a whole number from 0 to ${m - 1} (--total-shards ${m}), got "${shard}"`;
  return { ordinal: n, total: m };
}

/**
 * What each shard of `total` polls under `sources` (the config's resolved blocks), for
 * --check-config: one line per shard, and a warning per shared limit the shards cannot divide.
 */
export function describeSharding(sources: readonly AnySource[], blocks: Record<string, unknown>, total: number): { lines: string[]; warnings: string[] } {
  const lines: string[] = [];
  const warnings = new Map<string, string>();
  for (let ordinal = 0; ordinal < total; ordinal++) {
    const owned: string[] = [];
    const parts: string[] = [];
    for (const source of sources) {
      const block = blocks[source.name];
      if (block === undefined) continue;
      const s = shardBlock(source, block, { ordinal, total });
      owned.push(...s.owned);
      for (const l of s.limits) {
        parts.push(`${l.source}.${l.name} ${l.part} of ${l.limit}`);
        const sum = l.parts.reduce((a, b) => a + b, 0);
        if (sum > l.limit) warnings.set(`${l.source}.${l.name}`, `sources.${l.source}.${l.name}: ${l.limit} cannot be divided among the ${l.parts.filter((p) => p > 0).length} shards that need a part: each takes 1, ${sum} together`);
      }
    }
    lines.push(`shard ${ordinal} of ${total} polls ${owned.length === 0 ? 'nothing' : owned.join(', ')}${parts.length > 0 ? ` (limits: ${parts.join(', ')})` : ''}`);
  }
  return { lines, warnings: [...warnings.values()] };
}
