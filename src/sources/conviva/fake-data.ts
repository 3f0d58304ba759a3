/**
 * Deterministic Conviva-like data: the same seed, account, filter, dimension value and minute
 * always give the same numbers, with a daily shape, so tests can compute what was served.
 */

export interface DimensionSpec {
  /** snake_case response key, e.g. device_os, or tag_appVersion for a custom tag. */
  key: string;
  /** kebab-case path segment: device-os, or dimension-tag/appVersion. */
  path: string;
  description: string;
  values: string[];
}

import { hash } from '../../simulator/hash.js';

export { hash };

function generated(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
}

/** The dimensions the simulator knows; `cardinality` sets how many values the open-ended ones have. */
export function defaultDimensions(cardinality = 50): DimensionSpec[] {
  return [
    { key: 'device_os', path: 'device-os', description: 'Device OS', values: ['iOS', 'Android', 'Roku', 'tvOS', 'Windows', 'macOS', 'Fire OS', 'Tizen'] },
    { key: 'cdn', path: 'cdn', description: 'CDN', values: ['Akamai', 'Fastly', 'CloudFront', 'Edgio', 'Level3'] },
    { key: 'geo_country_code', path: 'geo-country-code', description: 'Country', values: ['US', 'GB', 'DE', 'FR', 'BR', 'IN', 'JP', 'CA', 'NO', 'AU'] },
    { key: 'asn', path: 'asn', description: 'ASN', values: generated('AS', cardinality) },
    { key: 'geo_city_name', path: 'geo-city-name', description: 'City', values: generated('City ', cardinality) },
    { key: 'asset', path: 'asset', description: 'Asset', values: generated('asset-', cardinality) },
    // Values with quotes, a backslash, a newline and non-ASCII: the exporter must escape them.
    { key: 'tag_appVersion', path: 'dimension-tag/appVersion', description: 'appVersion', values: ['5.2.0', '5.1.3', '5.0.9', 'beta "canary" \\ build\n7', 'versión-ß'] },
  ];
}

export interface SavedFilter {
  id: string;
  name: string;
  /** Share of all traffic the filter matches. */
  share: number;
}

export const SAVED_FILTERS: SavedFilter[] = [
  { id: '1234', name: 'Sports live events', share: 0.3 },
  { id: '5678', name: 'Kids profile', share: 0.12 },
];

/** Weight of each value of a dimension; weights of one dimension sum to 1. */
export function weights(seed: number, dim: Pick<DimensionSpec, 'key' | 'values'>): Map<string, number> {
  // Zipf-like: a few values carry most traffic, like CDNs and ASNs do.
  const raw = dim.values.map((v, i) => (0.5 + hash(`${seed}|w|${dim.key}|${v}`)) / (i + 1));
  const sum = raw.reduce((a, b) => a + b, 0);
  return new Map(dim.values.map((v, i) => [v, raw[i]! / sum]));
}

export interface BucketScope {
  seed: number;
  account: string;
  /** Share of all traffic selected by the request's filter (1 with no filter). */
  filterShare: number;
  /** Weight of the group-by value (1 for the ungrouped total). */
  weight: number;
  /** Label of the row, for noise: "" for the total. */
  rowKey: string;
  /** Whether some minutes are revised after they settled (default true). */
  lateRevisions?: boolean;
}

/** Full (settled) values of one minute for one row; counts are integers. */
export interface MinuteValues {
  attempts: number;
  plays: number;
  concurrent_plays: number;
  unique_devices: number;
  video_start_failures: number;
  video_playback_failures: number;
  exit_before_video_starts: number;
  ended_plays: number;
  rebuffering_ratio: number; // percent
  connection_induced_rebuffering_ratio: number; // percent
  bitrate: number; // bps
  framerate: number; // fps
  video_start_time: number; // seconds
  video_restart_time: number; // seconds
}

const DAY_MS = 86_400_000;

/** Attempts per minute for an account at time ts before filters and weights: a daily curve peaking at 20:00 UTC. */
export function baseAttempts(seed: number, account: string, ts: number): number {
  const scale = 2000 + Math.floor(hash(`${seed}|scale|${account}`) * 3000);
  const hourOfDay = ((ts % DAY_MS) / DAY_MS) * 24;
  const shape = 0.55 + 0.45 * Math.cos(((hourOfDay - 20) / 24) * 2 * Math.PI);
  return scale * shape;
}

/** Values of the minute starting at ts, as they are once the minute has settled. */
export function minuteValues(scope: BucketScope, ts: number): MinuteValues {
  const n = (what: string) => hash(`${scope.seed}|${scope.account}|${scope.rowKey}|${ts}|${what}`);
  const attempts = Math.round(baseAttempts(scope.seed, scope.account, ts) * scope.filterShare * scope.weight * (0.9 + 0.2 * n('a')));
  const rowBias = hash(`${scope.seed}|bias|${scope.rowKey}`);
  const vsfRate = 0.004 + 0.012 * rowBias * n('vsf');
  const video_start_failures = Math.round(attempts * vsfRate);
  const exit_before_video_starts = Math.round(attempts * (0.01 + 0.02 * n('ebvs')));
  const plays = Math.max(0, attempts - video_start_failures - exit_before_video_starts);
  return {
    attempts,
    plays,
    concurrent_plays: Math.round(attempts * (16 + 4 * n('cc'))),
    unique_devices: Math.round(attempts * (0.85 + 0.1 * n('ud'))),
    video_start_failures,
    video_playback_failures: Math.round(plays * (0.002 + 0.006 * n('vpf'))),
    exit_before_video_starts,
    ended_plays: Math.round(plays * (0.9 + 0.08 * n('ep'))),
    rebuffering_ratio: round3(0.2 + 1.2 * rowBias * n('rb') + 0.1),
    connection_induced_rebuffering_ratio: round3((0.2 + 1.2 * rowBias * n('rb')) * 0.6),
    bitrate: Math.round(3_200_000 + 2_000_000 * (1 - rowBias) * (0.9 + 0.1 * n('br'))),
    framerate: round3(29 + n('fr') * 1),
    video_start_time: round3(1.1 + 1.5 * rowBias * n('vst')),
    video_restart_time: round3(0.4 + 0.8 * n('vrt')),
  };
}

const COUNT_KEYS = new Set<keyof MinuteValues>(['attempts', 'plays', 'unique_devices', 'video_start_failures', 'video_playback_failures', 'exit_before_video_starts', 'ended_plays']);

/** About one minute in four of an account is revised late (Conviva: data may arrive 5–10 minutes late). */
export function revisedLate(scope: Pick<BucketScope, 'seed' | 'account'>, ts: number): boolean {
  return hash(`late|${ts / 60_000}|${scope.account}|${scope.seed}`) < 0.25;
}

/** A late-revised minute reaches 97% of its counts as it settles and the rest by ts + 6 minutes. */
export const LATE_REVISION_MS = 360_000;

/**
 * Values as served at `now`: a minute that ended less than a minute ago is still filling in,
 * so its counts are a share of the final ones; most are final once now >= ts + 120 s, and a
 * late-revised one grows on until ts + 6 minutes. Counts never go down as `now` moves on.
 */
export function servedValues(scope: BucketScope, ts: number, now: number): MinuteValues {
  const full = minuteValues(scope, ts);
  const progress = Math.min(1, Math.max(0, (now - ts) / 120_000));
  const late = (scope.lateRevisions ?? true) && revisedLate(scope, ts);
  const share = late ? 0.97 * progress + 0.03 * Math.min(1, Math.max(0, (now - ts - 120_000) / (LATE_REVISION_MS - 120_000))) : progress;
  if (share >= 1) return full;
  const out = { ...full };
  for (const k of COUNT_KEYS) out[k] = Math.floor(full[k] * share);
  return out;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
