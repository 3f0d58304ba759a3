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
