/**
 * Conviva's sample-sessions fake (upstream-apis.md section 3): ended video sessions under
 * /insights/3.0/sessions/content. Every account has a fixed set of sessions ending in each minute,
 * generated from the seed, so a test can compute exactly what a request was served.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../engine/clock.js';
import { baseAttempts, hash } from './fake-data.js';

export interface SimTimestamp {
  epoch_ms: number;
  iso_date: string;
}

/** [assumed] Conviva's short names for how a session ended; the booleans are the documented fields. */
export type EndedStatus = 'NORMAL' | 'VSF' | 'EBVS' | 'VPF';

/** One ended session, in the API's JSON shape. */
export interface SimSession {
  conviva_session_id: string;
  timestamps: { start: SimTimestamp; end: SimTimestamp };
  status_info: {
    is_ended: true;
    ended_status: EndedStatus;
    is_video_start_failure: boolean;
    is_video_start_failure_business: boolean;
    is_video_start_failure_tech: boolean;
    is_exit_before_video_start: boolean;
    is_video_playback_failure: boolean;
    is_video_playback_failure_business: boolean;
    is_video_playback_failure_tech: boolean;
    /** Always empty here: the error shape is not published. */
    errors: unknown[];
  };
  lifetime_metrics: {
    average_peak_bitrate_bps: number;
    average_framerate_fps: number;
    rebuffering_ratio_percent: number;
    connection_induced_rebuffering_ratio_percent: number;
    rebuffering_time_ms: number;
    playing_time_ms: number;
    paused_time_ms: number;
    /** -1 when the video never started. */
    video_start_time_ms: number;
    video_restart_time_ms: number;
    bitrate_switches_count: number;
    average_percentage_complete: number;
  };
  /** length_ms is -1 for Live: a live stream has no length. */
  content_info: { asset: string; category: 'VoD' | 'Live'; length_ms: number };
  device_info: { name: string; os: string; os_family: string; browser: { name: string } };
  geo_info: { country: { code: string }; state: { code: string }; city: string; dma: string };
  network_info: { asn: { value: number }; cdn: string[]; isp: string };
  tags: { selected_dimensions: Record<string, string>; custom_tags: Record<string, string> };
  /** Personal data (Viewer Module only): the exporter must never export it. */
  viewer_id: string;
}

/** A bad query; ConvivaFake answers it 400 InvalidParameter like the rest of Metrics V3. */
export class SessionsQueryError extends Error {}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const MAX_WINDOW_MS = 3 * HOUR;
const HISTORY_MS = 31 * 24 * HOUR;
const MAX_LIMIT = 1500;
const DEFAULT_LIMIT = 50;
/** [assumed] A session reaches the API up to 3 minutes after it ends. */
const MAX_VISIBILITY_DELAY_MS = 180_000;

type Weighted<T> = ReadonlyArray<readonly [T, number]>;

interface Device { name: string; os: string; osFamily: string; browsers: string[]; player: string }

/** Device OS values match the Metrics V3 fake's device_os dimension. */
const DEVICES: Weighted<Device> = [
  [{ name: 'iPhone', os: 'iOS', osFamily: 'iOS', browsers: ['App'], player: 'AVPlayer' }, 0.22],
  [{ name: 'Android Phone', os: 'Android', osFamily: 'Android', browsers: ['App'], player: 'ExoPlayer' }, 0.18],
  [{ name: 'Roku', os: 'Roku', osFamily: 'Roku', browsers: ['App'], player: 'Roku Video Node' }, 0.14],
  [{ name: 'Apple TV', os: 'tvOS', osFamily: 'tvOS', browsers: ['App'], player: 'AVPlayer' }, 0.08],
  [{ name: 'PC', os: 'Windows', osFamily: 'Windows', browsers: ['Chrome', 'Edge', 'Firefox'], player: 'Shaka Player' }, 0.12],
  [{ name: 'Mac', os: 'macOS', osFamily: 'macOS', browsers: ['Safari', 'Chrome'], player: 'Shaka Player' }, 0.08],
  [{ name: 'Fire TV', os: 'Fire OS', osFamily: 'Android', browsers: ['App'], player: 'ExoPlayer' }, 0.1],
  [{ name: 'Samsung Smart TV', os: 'Tizen', osFamily: 'Tizen', browsers: ['App'], player: 'AVPlay' }, 0.08],
];

interface Country { code: string; isps: Array<[string, number]>; places: Array<[state: string, city: string, dma: string]> }

/** Cities with non-ASCII names on purpose: label values must survive escaping. DMA is a US notion. */
const COUNTRIES: Weighted<Country> = [
  [{ code: 'US', isps: [['Comcast', 7922], ['Charter', 20115], ['Verizon', 701], ['AT&T', 7018]], places: [['NY', 'New York', '501'], ['CA', 'Los Angeles', '803'], ['IL', 'Chicago', '602'], ['TX', 'Dallas', '623']] }, 0.4],
  [{ code: 'GB', isps: [['BT', 2856], ['Virgin Media', 5089], ['Sky', 5607]], places: [['ENG', 'London', 'Unknown'], ['ENG', 'Manchester', 'Unknown'], ['SCT', 'Glasgow', 'Unknown']] }, 0.12],
  [{ code: 'DE', isps: [['Deutsche Telekom', 3320], ['Vodafone', 3209]], places: [['BY', 'München', 'Unknown'], ['BE', 'Berlin', 'Unknown'], ['HH', 'Hamburg', 'Unknown']] }, 0.08],
  [{ code: 'FR', isps: [['Orange', 3215], ['Free', 12322]], places: [['IDF', 'Paris', 'Unknown'], ['ARA', 'Lyon', 'Unknown']] }, 0.06],
  [{ code: 'BR', isps: [['Claro', 28573], ['Vivo', 26599]], places: [['SP', 'São Paulo', 'Unknown'], ['RJ', 'Rio de Janeiro', 'Unknown']] }, 0.08],
  [{ code: 'IN', isps: [['Jio', 55836], ['Airtel', 9498]], places: [['MH', 'Mumbai', 'Unknown'], ['DL', 'Delhi', 'Unknown']] }, 0.08],
  [{ code: 'JP', isps: [['NTT', 4713], ['KDDI', 2516]], places: [['13', 'Tokyo', 'Unknown'], ['27', 'Osaka', 'Unknown']] }, 0.05],
  [{ code: 'CA', isps: [['Rogers', 812], ['Bell', 577]], places: [['ON', 'Toronto', 'Unknown'], ['QC', 'Montréal', 'Unknown']] }, 0.06],
  [{ code: 'NO', isps: [['Telenor', 2119], ['Telia', 12929]], places: [['03', 'Oslo', 'Unknown'], ['55', 'Tromsø', 'Unknown']] }, 0.03],
  [{ code: 'AU', isps: [['Telstra', 1221], ['Optus', 4804]], places: [['NSW', 'Sydney', 'Unknown'], ['VIC', 'Melbourne', 'Unknown']] }, 0.04],
];

const CDNS: Weighted<string> = [['Akamai', 0.35], ['Fastly', 0.25], ['CloudFront', 0.2], ['Edgio', 0.12], ['Level3', 0.08]];

/** The Metrics V3 fake's appVersion values, awkward ones included. */
const APP_VERSIONS: Weighted<string> = [['5.2.0', 0.45], ['5.1.3', 0.3], ['5.0.9', 0.15], ['beta "canary" \\ build\n7', 0.05], ['versión-ß', 0.05]];

const SUBSCRIPTIONS: Weighted<string> = [['premium', 0.3], ['standard', 0.45], ['ad-supported', 0.25]];

const FRAMERATES = [23.976, 25, 29.97, 30, 50, 59.94];
const ASSETS = 50;

function weightedPick<T>(items: Weighted<T>, u: number): T {
  let acc = 0;
  for (const [item, w] of items) {
    acc += w;
    if (u < acc) return item;
  }
  return items[items.length - 1]![0];
}

function hex8(u: number): string {
  return Math.floor(u * 0x1_0000_0000).toString(16).padStart(8, '0');
}

function timestamp(ms: number): SimTimestamp {
  return { epoch_ms: ms, iso_date: new Date(ms).toISOString().replace('.000Z', 'Z') };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** One session, from its key `${account}:${minute}:${i}`; it ends inside that minute. */
function session(seed: number, key: string, minute: number): SimSession {
  const n = (what: string) => hash(`${seed}|session|${key}|${what}`);
  const u = n('outcome');
  const ended_status: EndedStatus = u < 0.02 ? 'VSF' : u < 0.05 ? 'EBVS' : u < 0.06 ? 'VPF' : 'NORMAL';
  const business = n('failure-kind') < 0.25;
  const started = ended_status === 'NORMAL' || ended_status === 'VPF';

  const assetNo = Math.floor((ASSETS + 1) ** n('asset')); // 1..ASSETS, a few assets draw most views
  const live = hash(`${seed}|asset-live|${assetNo}`) < 0.25;
  const length_ms = live ? -1 : Math.round((20 + 130 * hash(`${seed}|asset-length|${assetNo}`)) * MINUTE);

  let lifetime: SimSession['lifetime_metrics'];
  let durationMs: number;
  if (started) {
    // Most starts take 1–2 s, a tail reaches 8 s: p50 about 1.2 s, p90 about 3.5 s (a healthy service)
    const u = n('vst');
    const video_start_time_ms = Math.round(300 + 1700 * u + 6000 * u ** 12);
    const played = Math.round(5000 * 1440 ** (n('playing') ** 0.7)); // 5 s .. 2 h, median about 7 minutes
    const playing_time_ms = live ? played : Math.min(played, length_ms);
    const failed = ended_status === 'VPF';
    const ratio = failed ? round3(1 + 4 * n('rebuffering')) : n('smooth') < 0.6 ? 0 : round3(5 * n('rebuffering') ** 2);
    const rebuffering_time_ms = Math.round((playing_time_ms * ratio) / (100 - ratio));
    const paused_time_ms = n('paused') < 0.7 ? 0 : Math.round(600_000 * n('pause-length') ** 2);
    lifetime = {
      average_peak_bitrate_bps: Math.round(800 + 7200 * n('bitrate')) * 1000,
      average_framerate_fps: round2(FRAMERATES[Math.floor(n('fps') * FRAMERATES.length)]! * (0.97 + 0.03 * n('fps-drop'))),
      rebuffering_ratio_percent: ratio,
      connection_induced_rebuffering_ratio_percent: round3(ratio * (0.3 + 0.6 * n('cirr'))),
      rebuffering_time_ms,
      playing_time_ms,
      paused_time_ms,
      video_start_time_ms,
      video_restart_time_ms: n('seeks') < 0.75 ? 0 : Math.round(200 + 2800 * n('restart')),
      bitrate_switches_count: Math.floor(20 * n('switches') ** 2),
      average_percentage_complete: live ? 0 : round2((100 * playing_time_ms) / length_ms),
    };
    durationMs = video_start_time_ms + playing_time_ms + rebuffering_time_ms + paused_time_ms;
  } else {
    lifetime = {
      average_peak_bitrate_bps: 0, average_framerate_fps: 0, rebuffering_ratio_percent: 0,
      connection_induced_rebuffering_ratio_percent: 0, rebuffering_time_ms: 0, playing_time_ms: 0, paused_time_ms: 0,
      video_start_time_ms: -1, video_restart_time_ms: 0, bitrate_switches_count: 0, average_percentage_complete: 0,
    };
    // A start failure waits for a timeout or an error; an exit is a viewer giving up.
    durationMs = ended_status === 'VSF' ? Math.round(2000 + 58_000 * n('wait')) : Math.round(1000 + 29_000 * n('wait'));
  }

  const end = minute + Math.floor(n('end') * MINUTE);
  const device = weightedPick(DEVICES, n('device'));
  const country = weightedPick(COUNTRIES, n('country'));
  const [state, city, dma] = country.places[Math.floor(n('place') * country.places.length)]!;
  const [isp, asn] = country.isps[Math.floor(n('isp') * country.isps.length)]!;
  const cdn = weightedPick(CDNS, n('cdn'));
  const otherCdn = weightedPick(CDNS, n('cdn-2'));
  return {
    // hash() has 32 bits of state, so ids over a month would collide; a digest does not.
    conviva_session_id: createHash('sha256').update(`${seed}|session-id|${key}`).digest('hex').slice(0, 16),
    timestamps: { start: timestamp(end - durationMs), end: timestamp(end) },
    status_info: {
      is_ended: true,
      ended_status,
      is_video_start_failure: ended_status === 'VSF',
      is_video_start_failure_business: ended_status === 'VSF' && business,
      is_video_start_failure_tech: ended_status === 'VSF' && !business,
      is_exit_before_video_start: ended_status === 'EBVS',
      is_video_playback_failure: ended_status === 'VPF',
      is_video_playback_failure_business: ended_status === 'VPF' && business,
      is_video_playback_failure_tech: ended_status === 'VPF' && !business,
      errors: [],
    },
    lifetime_metrics: lifetime,
    content_info: { asset: `asset-${assetNo}`, category: live ? 'Live' : 'VoD', length_ms },
    device_info: { name: device.name, os: device.os, os_family: device.osFamily, browser: { name: device.browsers[Math.floor(n('browser') * device.browsers.length)]! } },
    geo_info: { country: { code: country.code }, state: { code: state }, city, dma },
    // one session in ten switched CDN midway
    network_info: { asn: { value: asn }, cdn: started && otherCdn !== cdn && n('cdn-switch') < 0.1 ? [cdn, otherCdn] : [cdn], isp },
    tags: {
      selected_dimensions: { player_name: device.player, stream_protocol: n('protocol') < 0.65 ? 'HLS' : 'DASH' },
      custom_tags: { appVersion: weightedPick(APP_VERSIONS, n('app')), subscription: weightedPick(SUBSCRIPTIONS, n('subscription')) },
    },
    viewer_id: `viewer-${hex8(n('viewer'))}`,
  };
}

/** The API's order: by end time, then by session id. */
function byEndThenId(a: SimSession, b: SimSession): number {
  const d = a.timestamps.end.epoch_ms - b.timestamps.end.epoch_ms;
  if (d !== 0) return d;
  return a.conviva_session_id < b.conviva_session_id ? -1 : a.conviva_session_id > b.conviva_session_id ? 1 : 0;
}

/**
 * Every session of the account that ends in the minute starting at `minute` (epoch ms), visible yet
 * or not, in the API's order (end time, then id): about baseAttempts / 80 of them.
 */
export function sessionsEndingIn(seed: number, account: string, minute: number): SimSession[] {
  const count = Math.round((baseAttempts(seed, account, minute) / 80) * (0.9 + 0.2 * hash(`${seed}|sessions|${account}|${minute}`)));
  return Array.from({ length: count }, (_, i) => session(seed, `${account}:${minute}:${i}`, minute)).sort(byEndThenId);
}

/** When the API starts returning the session: 0..180 s after it ended, fixed per session. */
export function sessionVisibleAt(session: SimSession): number {
  return session.timestamps.end.epoch_ms + Math.floor(hash(`visible|${session.conviva_session_id}`) * (MAX_VISIBILITY_DELAY_MS + 1));
}

const STATUS_FILTERS = [
  'is_video_start_failure', 'is_video_start_failure_business', 'is_video_start_failure_tech', 'is_exit_before_video_start',
  'is_video_playback_failure', 'is_video_playback_failure_business', 'is_video_playback_failure_tech',
] as const;
type StatusFilter = (typeof STATUS_FILTERS)[number];

const WINDOW_PARAMS = new Set(['start_epoch_ms', 'end_epoch_ms', 'start_epoch', 'end_epoch', 'limit']);

/** A window bound in epoch ms, from the `_ms` form or the seconds form (never both). */
function bound(q: URLSearchParams, name: 'start' | 'end'): number {
  const ms = q.get(`${name}_epoch_ms`);
  const s = q.get(`${name}_epoch`);
  if (ms !== null && s !== null) throw new SessionsQueryError(`${name}_epoch_ms and ${name}_epoch: give one`);
  const raw = ms ?? s;
  if (raw === null) throw new SessionsQueryError(`${name}_epoch_ms (or ${name}_epoch) is required`);
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v)) throw new SessionsQueryError(`${ms !== null ? `${name}_epoch_ms` : `${name}_epoch`} must be a number`);
  return ms !== null ? v : v * 1000;
}

/** The filters of a query as one predicate; repeating a key ORs its values, as in Metrics V3. */
function parseFilters(q: URLSearchParams): (s: SimSession) => boolean {
  const tests: Array<(s: SimSession) => boolean> = [];
  for (const key of new Set(q.keys())) {
    if (WINDOW_PARAMS.has(key)) continue;
    const values = q.getAll(key);
    if (key === 'device_os') tests.push((s) => values.includes(s.device_info.os));
    else if (key.startsWith('tag_') && key.length > 4) {
      const tag = key.slice(4);
      tests.push((s) => {
        const v = s.tags.custom_tags[tag];
        return v !== undefined && values.includes(v);
      });
    } else if ((STATUS_FILTERS as readonly string[]).includes(key)) {
      if (values.length !== 1 || (values[0] !== 'true' && values[0] !== 'false')) throw new SessionsQueryError(`${key} must be true or false`);
      const want = values[0] === 'true';
      tests.push((s) => s.status_info[key as StatusFilter] === want);
    } else {
      // Conviva filters on any dimension; failing loudly beats pretending to filter.
      throw new SessionsQueryError(`the simulator does not filter on ${key} (device_os, tag_*, is_* only)`);
    }
  }
  return (s) => tests.every((t) => t(s));
}

export interface SessionsFakeOptions {
  seed: number;
  clock: Clock;
}

/** The sample-sessions endpoint of every simulated account. */
export class SessionsFake {
  constructor(private readonly o: SessionsFakeOptions) {}

  /**
   * The answer to GET /insights/3.0/sessions/content: visible sessions with start <= end_ms < end that
   * match the filters, the first `limit` by (end time, id). No marker: more sessions mean a narrower window.
   * Throws SessionsQueryError on a bad query.
   */
  content(q: URLSearchParams, account: string): { sessions: SimSession[] } {
    const now = this.o.clock.now();
    const start = bound(q, 'start');
    const end = bound(q, 'end');
    if (end <= start) throw new SessionsQueryError('end must be after start');
    if (end - start > MAX_WINDOW_MS) throw new SessionsQueryError('one request spans at most 3 hours');
    if (start < now - HISTORY_MS) throw new SessionsQueryError('the start must be within the last 31 days');
    const rawLimit = q.get('limit');
    const limit = rawLimit === null ? DEFAULT_LIMIT : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new SessionsQueryError(`limit must be an integer 1..${MAX_LIMIT}`);
    const matches = parseFilters(q);
    const sessions: SimSession[] = [];
    // Minutes starting after now hold nothing visible yet.
    const last = Math.min(end, now + 1);
    for (let minute = Math.floor(start / MINUTE) * MINUTE; minute < last && sessions.length < limit; minute += MINUTE) {
      for (const s of sessionsEndingIn(this.o.seed, account, minute)) {
        const e = s.timestamps.end.epoch_ms;
        if (e >= start && e < end && sessionVisibleAt(s) <= now && matches(s)) sessions.push(s);
      }
    }
    return { sessions: sessions.slice(0, limit) };
  }
}
