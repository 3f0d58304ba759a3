import { UpstreamError } from '../../http/errors.js';

/** One row of one bucket: the ungrouped total (no value) or one dimension value. */
export interface Row {
  value?: string;
  metrics: Record<string, unknown>;
}

export interface Bucket {
  /** Bucket start, epoch ms. */
  ts: number;
  rows: Row[];
}

/**
 * Reads a Metrics V3 time_series answer leniently: unknown fields are ignored, a bucket without
 * a readable timestamp or a row without a dimension value is skipped and reported to `onSkip`.
 * Only a body that is not a time_series answer at all is an error.
 */
export function parseTimeSeries(body: unknown, endpoint: string, grouped: boolean, onSkip: (what: string) => void, api = 'conviva_realtime'): Bucket[] {
  // A filter that matches no traffic may answer without time_series: zero rows, not an error.
  if (isObject(body) && body.time_series === undefined) return [];
  if (!isObject(body) || !Array.isArray(body.time_series)) {
    throw new UpstreamError('UPSTREAM_MALFORMED', `${api} ${endpoint}: answer has no time_series array`, { api, endpoint });
  }
  const out: Bucket[] = [];
  for (const item of body.time_series) {
    if (!isObject(item)) {
      onSkip('bucket is not an object');
      continue;
    }
    const ts = timestampOf(item.timestamp);
    if (ts === undefined) {
      onSkip('bucket without a readable timestamp');
      continue;
    }
    const rows: Row[] = [];
    if (grouped) {
      const list = Array.isArray(item.dimensional_data) ? item.dimensional_data : [];
      for (const d of list) {
        if (!isObject(d) || !isObject(d.dimension) || d.dimension.value === undefined || d.dimension.value === null || !isObject(d.metrics)) {
          onSkip('row without a dimension value or metrics');
          continue;
        }
        const v = d.dimension.value;
        // A label value is a string (or a number, written as one); an array or object is not, and
        // String() of a deeply nested one would overflow the stack.
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
          onSkip('row whose dimension value is not a string');
          continue;
        }
        rows.push({ value: String(v), metrics: d.metrics });
      }
    } else if (isObject(item.metrics)) {
      // DPI Flow: without group-by the metric objects sit under `metrics`.
      rows.push({ metrics: item.metrics });
    } else {
      // Metrics V3: without group-by the metric objects sit beside the timestamp.
      const { timestamp: _t, ...metrics } = item;
      rows.push({ metrics });
    }
    out.push({ ts, rows });
  }
  return out;
}

/** A flow model as the exporter uses it. */
export interface FlowModelInfo {
  id: string;
  label: string;
  metrics: string[];
  dimensions: string[];
  convivaDefined: boolean;
}

/**
 * Reads the DPI Flow model list leniently: a model without a string id is skipped and reported;
 * a missing label falls back to the id; non-string metric or dimension names are left out.
 */
export function parseFlowModels(body: unknown, endpoint: string, onSkip: (what: string) => void): FlowModelInfo[] {
  const list = isObject(body) ? body.flow_models : undefined;
  if (!Array.isArray(list)) {
    throw new UpstreamError('UPSTREAM_MALFORMED', `conviva_flow ${endpoint}: answer has no flow_models array`, { api: 'conviva_flow', endpoint });
  }
  const out: FlowModelInfo[] = [];
  const seen = new Set<string>();
  for (const m of list) {
    if (!isObject(m) || typeof m.id !== 'string' || m.id === '' || seen.has(m.id)) {
      onSkip('flow model without a usable id');
      continue;
    }
    seen.add(m.id);
    const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    out.push({
      id: m.id,
      label: typeof m.label === 'string' && m.label !== '' ? m.label : m.id,
      metrics: strings(m.metrics),
      dimensions: strings(m.dimensions),
      convivaDefined: m.is_conviva_defined === true,
    });
  }
  return out;
}

/** What the sessions collector reads of one session; numbers are undefined when absent or unreadable. */
export interface SessionInfo {
  id: string;
  /** End time, epoch ms. */
  end: number;
  videoStartFailure: boolean;
  exitBeforeVideoStart: boolean;
  playbackFailure: boolean;
  videoStartTimeMs?: number;
  rebufferingRatioPercent?: number;
  playingTimeMs?: number;
  averagePeakBitrateBps?: number;
  /** Breakdown values by session dimension (device_os_family, ..., tag_<name>); absent when the session lacks it. */
  dimensions: Record<string, string>;
}

/**
 * Reads a Sessions V3 answer leniently: a session without a string id or a readable end time is
 * skipped and reported; an unreadable number is left out (reported). Never reads viewer_id.
 */
export function parseSessions(body: unknown, endpoint: string, onSkip: (what: string) => void): SessionInfo[] {
  const list = isObject(body) ? body.sessions : undefined;
  if (!Array.isArray(list)) {
    throw new UpstreamError('UPSTREAM_MALFORMED', `conviva_sessions ${endpoint}: answer has no sessions array`, { api: 'conviva_sessions', endpoint });
  }
  const out: SessionInfo[] = [];
  for (const s of list) {
    const end = isObject(s) && isObject(s.timestamps) ? timestampOf(s.timestamps.end) : undefined;
    if (!isObject(s) || typeof s.conviva_session_id !== 'string' || s.conviva_session_id === '' || end === undefined) {
      onSkip('session without an id or an end time');
      continue;
    }
    const status = isObject(s.status_info) ? s.status_info : {};
    const lm = isObject(s.lifetime_metrics) ? s.lifetime_metrics : {};
    const flag = (...keys: string[]) => keys.some((k) => status[k] === true);
    const num = (k: string, allowNegative = false): number | undefined => {
      const v = lm[k];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v) || (!allowNegative && v < 0)) {
        onSkip(`session value ${k} is not a number`);
        return undefined;
      }
      return v;
    };
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined);
    const device = isObject(s.device_info) ? s.device_info : {};
    const content = isObject(s.content_info) ? s.content_info : {};
    const geo = isObject(s.geo_info) ? s.geo_info : {};
    const network = isObject(s.network_info) ? s.network_info : {};
    const tags = isObject(s.tags) && isObject(s.tags.custom_tags) ? s.tags.custom_tags : {};
    const dimensions: Record<string, string> = {};
    const set = (k: string, v: unknown) => {
      const x = str(v);
      if (x !== undefined) dimensions[k] = x;
    };
    set('device_os_family', device.os_family);
    set('device_os', device.os);
    set('browser', isObject(device.browser) ? device.browser.name : undefined);
    set('content_category', content.category);
    // The CDN the session started on: the first of the list.
    set('cdn', Array.isArray(network.cdn) ? network.cdn[0] : network.cdn);
    set('country_code', isObject(geo.country) ? geo.country.code : undefined);
    set('isp', network.isp);
    for (const [k, v] of Object.entries(tags)) if (/^[A-Za-z0-9_]+$/.test(k)) set(`tag_${k}`, v);
    out.push({
      id: s.conviva_session_id,
      end,
      videoStartFailure: flag('is_video_start_failure', 'is_video_start_failure_business', 'is_video_start_failure_tech'),
      exitBeforeVideoStart: flag('is_exit_before_video_start'),
      playbackFailure: flag('is_video_playback_failure', 'is_video_playback_failure_business', 'is_video_playback_failure_tech'),
      videoStartTimeMs: num('video_start_time_ms', true),
      rebufferingRatioPercent: num('rebuffering_ratio_percent'),
      playingTimeMs: num('playing_time_ms'),
      averagePeakBitrateBps: num('average_peak_bitrate_bps'),
      dimensions,
    });
  }
  return out;
}

function timestampOf(t: unknown): number | undefined {
  if (isObject(t)) {
    if (typeof t.epoch_ms === 'number' && Number.isFinite(t.epoch_ms)) return t.epoch_ms;
    if (typeof t.iso_date === 'string') {
      const ms = Date.parse(t.iso_date);
      if (!Number.isNaN(ms)) return ms;
    }
  }
  return undefined;
}

/**
 * A finite, non-negative number at obj[metric][field], or undefined when absent; `bad` is called
 * for a present value that is not one (every Metrics V3 value is a count, a share, a rate or a
 * duration: a negative one is as unreadable as a string).
 */
export function readValue(metrics: Record<string, unknown>, key: string, field: string, bad: () => void): number | undefined {
  const obj = metrics[key];
  if (obj === undefined || obj === null) return undefined;
  if (!isObject(obj)) {
    bad();
    return undefined;
  }
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) {
    bad();
    return undefined;
  }
  return n;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
