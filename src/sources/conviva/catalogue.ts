import { defineFamily, type FamilyDef } from '../../engine/family.js';

/**
 * Every Conviva Metrics V3 metric the real-time collector can export, and how: the path name,
 * the response key, which value fields become which family, and the unit conversion.
 * Names are written out, not generated (Prometheus: never build metric names procedurally).
 */
export interface MetricSpec {
  /** kebab-case path name, as in config and the API path. */
  readonly path: string;
  /** snake_case key in the response. */
  readonly key: string;
  readonly gauges: readonly GaugeSpec[];
  /** Counter that adds each settled one-minute bucket's `count` exactly once. */
  readonly counter?: FamilyDef;
}

export interface GaugeSpec {
  readonly field: 'count' | 'percentage' | 'ratio' | 'bps' | 'fps' | 'value';
  /** Divides the upstream value into the base unit (percent to ratio: 100); division keeps 98.53 -> 0.9853 exact. */
  readonly divisor: number;
  readonly family: FamilyDef;
}

export const REALTIME_LABELS = ['account', 'filter', 'dimension', 'value'] as const;
const RT = 'GET /insights/3.0/real-time-metrics/custom-selection[/group-by/{dimension}]';

const POLLED = 'Polled every minute from Conviva Metrics V3 real-time';

function gauge(name: string, unit: string, upstream: string, what: string): FamilyDef {
  return defineFamily({
    name,
    type: 'gauge',
    unit,
    source: RT,
    labelNames: REALTIME_LABELS,
    help: `${what} in the newest settled one-minute bucket. ${POLLED} (${upstream}).`,
  });
}

function counter(name: string, upstream: string, what: string): FamilyDef {
  return defineFamily({
    name,
    type: 'counter',
    unit: 'count',
    source: RT,
    labelNames: REALTIME_LABELS,
    help: `${what}, adding each settled one-minute bucket once. ${POLLED} (${upstream}.count).`,
  });
}

/** A metric with `count` and `percentage`: count gauge, counter, and the percentage as a 0..1 ratio. */
function countWithRatio(path: string, key: string, base: string, what: string, ratioWhat: string): MetricSpec {
  return {
    path,
    key,
    gauges: [
      { field: 'count', divisor: 1, family: gauge(`conviva_${base}`, 'count', `${key}.count`, what) },
      { field: 'percentage', divisor: 100, family: gauge(`conviva_${base}_ratio`, 'ratio', `${key}.percentage / 100`, ratioWhat) },
    ],
    counter: counter(`conviva_${base}_total`, key, what),
  };
}

/** A metric with one value field and one gauge. */
function single(path: string, key: string, field: GaugeSpec['field'], divisor: number, name: string, unit: string, what: string): MetricSpec {
  const upstream = `${key}.${field}${divisor === 1 ? '' : ` / ${divisor}`}`;
  return { path, key, gauges: [{ field, divisor, family: gauge(name, unit, upstream, what) }] };
}

export const METRICS: readonly MetricSpec[] = [
  { ...single('attempts', 'attempts', 'count', 1, 'conviva_attempts', 'count', 'Video start attempts'), counter: counter('conviva_attempts_total', 'attempts', 'Video start attempts') },
  countWithRatio('plays', 'plays', 'plays', 'Plays (attempts that started video)', 'Plays as a fraction of attempts (0..1)'),
  single('concurrent-plays', 'concurrent_plays', 'count', 1, 'conviva_concurrent_plays', 'count', 'Concurrent plays'),
  single('unique-devices', 'unique_devices', 'count', 1, 'conviva_unique_devices', 'count', 'Unique devices'),
  countWithRatio('video-start-failures', 'video_start_failures', 'video_start_failures', 'Video start failures', 'Video start failures as a fraction of attempts (0..1)'),
  countWithRatio('video-playback-failures', 'video_playback_failures', 'video_playback_failures', 'Video playback failures', 'Video playback failures as a fraction of ended plays (0..1)'),
  countWithRatio('exit-before-video-starts', 'exit_before_video_starts', 'exit_before_video_starts', 'Exits before video start', 'Exits before video start as a fraction of attempts (0..1)'),
  single('rebuffering-ratio', 'rebuffering_ratio', 'ratio', 100, 'conviva_rebuffering_ratio', 'ratio', 'Share of viewing time spent rebuffering (0..1)'),
  single('connection-induced-rebuffering-ratio', 'connection_induced_rebuffering_ratio', 'ratio', 100, 'conviva_connection_induced_rebuffering_ratio', 'ratio', 'Share of viewing time spent rebuffering for network reasons (0..1)'),
  // Prometheus base units are bytes, not bits (promtool check metrics enforces it): bps / 8.
  single('bitrate', 'bitrate', 'bps', 8, 'conviva_bitrate_bytes_per_second', 'bytes_per_second', "Average peak bitrate (Conviva's Avg. Peak Bitrate)"),
  single('framerate', 'framerate', 'fps', 1, 'conviva_framerate_frames_per_second', 'frames_per_second', 'Average rendered frame rate'),
  single('video-start-time', 'video_start_time', 'value', 1, 'conviva_video_start_time_seconds', 'seconds', 'Average video start time'),
  single('video-restart-time', 'video_restart_time', 'value', 1, 'conviva_video_restart_time_seconds', 'seconds', 'Average video restart time after a seek or rebuffer'),
  { ...single('ended-plays', 'ended_plays', 'count', 1, 'conviva_ended_plays', 'count', 'Ended plays'), counter: counter('conviva_ended_plays_total', 'ended_plays', 'Ended plays') },
];

/** Path aliases the API also accepts (Conviva documents both spellings). */
export const PATH_ALIASES: Readonly<Record<string, string>> = { 'exits-before-video-start': 'exit-before-video-starts' };

export const METRIC_PATHS = METRICS.map((m) => m.path);

export function metricSpec(path: string): MetricSpec | undefined {
  const p = PATH_ALIASES[path] ?? path;
  return METRICS.find((m) => m.path === p);
}

/** Every family the real-time collector can emit. */
export function realtimeFamilies(): FamilyDef[] {
  return METRICS.flatMap((m) => [...m.gauges.map((g) => g.family), ...(m.counter ? [m.counter] : [])]);
}

// DPI Flow: one model's real-time metrics, per flow model and optional dimension.

export const FLOW_LABELS = ['account', 'flow_model_id', 'flow', 'dimension', 'value'] as const;
const FLOW_RT = 'GET /flow-data/real-time-metrics/{flow_model_id}/last_{N}_minutes[/group-by/{dimension}]';
const FLOW_POLLED = 'Polled every minute from Conviva DPI Flow real-time';

function flowFamily(name: string, type: 'gauge' | 'counter', unit: string, help: string): FamilyDef {
  return defineFamily({ name, type, unit, source: FLOW_RT, labelNames: FLOW_LABELS, help: `${help} ${FLOW_POLLED}.` });
}

/** A flow count: the newest settled minute as a gauge, and every settled minute once in a counter. */
function flowCount(key: string, base: string, what: string): MetricSpec {
  return {
    path: key,
    key,
    gauges: [{ field: 'count', divisor: 1, family: flowFamily(`conviva_flow_${base}`, 'gauge', 'count', `${what} in the newest settled one-minute bucket (${key}.count).`) }],
    counter: flowFamily(`conviva_flow_${base}_total`, 'counter', 'count', `${what}, adding each settled one-minute bucket once (${key}.count).`),
  };
}

/** Every DPI Flow metric the flow collector reads, by the name the model lists it under. */
export const FLOW_METRICS: readonly MetricSpec[] = [
  flowCount('init', 'inits', 'Flows started'),
  flowCount('complete', 'completions', 'Flows completed (succeeded or failed)'),
  flowCount('success', 'successes', 'Flows completed successfully'),
  flowCount('error', 'errors', 'Flows that ended in an error'),
  {
    path: 'percentage',
    key: 'percentage',
    gauges: [{ field: 'value', divisor: 100, family: flowFamily('conviva_flow_success_ratio', 'gauge', 'ratio', 'Share of completed flows that succeeded (0..1) in the newest settled one-minute bucket (percentage.value / 100).') }],
  },
  {
    path: 'avg_duration',
    key: 'avg_duration',
    gauges: [{ field: 'value', divisor: 1000, family: flowFamily('conviva_flow_average_duration_seconds', 'gauge', 'seconds', 'Average flow duration in the newest settled one-minute bucket (avg_duration.value / 1000: milliseconds upstream).') }],
  },
];

export const FLOW_MODEL_INFO = defineFamily({
  name: 'conviva_flow_model_info',
  type: 'gauge',
  unit: 'info',
  source: 'GET /flow-data/metadata/flow-models',
  labelNames: ['account', 'flow_model_id', 'flow', 'conviva_defined'],
  help: 'A DPI flow model the exporter follows (value 1): its id, its label and whether Conviva defined it. Listed at start and on the discovery schedule.',
});

/** Every family the flow collectors can emit. */
export function flowFamilies(): FamilyDef[] {
  return [FLOW_MODEL_INFO, ...FLOW_METRICS.flatMap((m) => [...m.gauges.map((g) => g.family), ...(m.counter ? [m.counter] : [])])];
}

// Sample sessions: per-session quality as histograms, and outcomes as a counter.

export const SESSION_LABELS = ['account', 'dimension', 'value'] as const;
const SESSIONS_SRC = 'GET /insights/3.0/sessions/content';
const SAMPLED = 'Conviva sample sessions (a sample of ended sessions, not every session), each counted once when it is listed';

function sessionHistogram(name: string, unit: string, buckets: number[], what: string): FamilyDef {
  return defineFamily({ name, type: 'histogram', unit, source: SESSIONS_SRC, labelNames: SESSION_LABELS, buckets, help: `${what}. ${SAMPLED}.` });
}

export const SESSION_VIDEO_START_TIME = sessionHistogram(
  'conviva_session_video_start_time_seconds', 'seconds', [0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 30],
  'Video start time of sampled sessions whose video started (lifetime_metrics.video_start_time_ms / 1000; negative values, video never started, are not observed)',
);
export const SESSION_REBUFFERING_RATIO = sessionHistogram(
  'conviva_session_rebuffering_ratio', 'ratio', [0, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2],
  'Share of playing time spent rebuffering (0..1) of sampled sessions whose video started (rebuffering_ratio_percent / 100)',
);
export const SESSION_PLAYING_TIME = sessionHistogram(
  'conviva_session_playing_time_seconds', 'seconds', [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400],
  'Playing time of sampled sessions whose video started (playing_time_ms / 1000)',
);
export const SESSION_BITRATE = sessionHistogram(
  'conviva_session_average_peak_bitrate_bytes_per_second', 'bytes_per_second', [62_500, 125_000, 250_000, 375_000, 500_000, 625_000, 750_000, 1_000_000, 1_250_000, 1_500_000],
  'Average peak bitrate of sampled sessions whose video started, in bytes per second (average_peak_bitrate_bps / 8)',
);
export const SESSIONS_TOTAL = defineFamily({
  name: 'conviva_sessions_total',
  type: 'counter',
  unit: 'count',
  source: SESSIONS_SRC,
  labelNames: [...SESSION_LABELS, 'outcome'],
  help: `Sampled sessions by outcome (played, video_start_failure, exit_before_video_start, playback_failure, not_started; one per session). ${SAMPLED}.`,
});

/** Every family the sessions collector can emit. */
export function sessionFamilies(): FamilyDef[] {
  return [SESSION_VIDEO_START_TIME, SESSION_REBUFFERING_RATIO, SESSION_PLAYING_TIME, SESSION_BITRATE, SESSIONS_TOTAL];
}
