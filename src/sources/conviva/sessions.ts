import { createHash } from 'node:crypto';
import type { Counter } from 'prom-client';
import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import { EventLedger, type EventScope } from '../../engine/events.js';
import type { EngineMetrics } from '../../engine/self-metrics.js';
import { SESSION_BITRATE, SESSION_PLAYING_TIME, SESSION_REBUFFERING_RATIO, SESSION_VIDEO_START_TIME, SESSIONS_TOTAL, sessionFamilies } from './catalogue.js';
import { SESSIONS_API, SESSIONS_ENDPOINT, type ConvivaSessionsClient } from './client.js';
import type { SessionsConfig } from './config.js';
import { skipLogger } from './minutes.js';
import { parseSessions, type SessionInfo } from './schema.js';

// Conviva sample sessions: every minute, the sessions that ended since the last read, each counted
// once (the engine's event ledger), as histograms of their quality and a counter of outcomes.

export const SESSIONS_COLLECTOR = 'conviva_sessions';

const HOUR = 3_600_000;
/** One request spans at most 3 hours. */
const MAX_REQUEST_MS = 3 * HOUR;
/** The API lists sessions whose start is within the last 31 days. */
const REACH_MS = 31 * 24 * HOUR;
const TOTAL = 'total';

export type SessionsSource = Pick<ConvivaSessionsClient, 'account' | 'sessions'>;

export interface SessionsDeps {
  clients: readonly SessionsSource[];
  config: SessionsConfig;
  engine: Pick<EngineMetrics, 'parseErrors'>;
  /** Windows still full at min_window: some of their sessions were not listed. */
  truncated: Counter<'account'>;
  /** Time spans the API no longer listed when the exporter got to them (an outage past 31 days). */
  unread: Counter<'account'>;
}

/**
 * The outcome of a session, one of five, first match wins: a start failure, an exit before video
 * start, a playback failure (video started, then failed), played (video started), not started.
 */
export function sessionOutcome(s: SessionInfo): string {
  if (s.videoStartFailure) return 'video_start_failure';
  if (s.exitBeforeVideoStart) return 'exit_before_video_start';
  const started = s.videoStartTimeMs !== undefined && s.videoStartTimeMs >= 0;
  if (s.playbackFailure) return 'playback_failure';
  return started ? 'played' : 'not_started';
}

/** [from, to) cut into pieces of at most `max`, oldest first. */
function pieces(from: number, to: number, max: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let t = from; t < to; t += max) out.push([t, Math.min(to, t + max)]);
  return out;
}

export function createSessionsCollector(deps: SessionsDeps): Collector {
  const { config, engine } = deps;
  const ledger = new EventLedger(
    { lagMs: config.lag, overlapMs: config.overlap, reachMs: REACH_MS, initialMs: config.initial_lookback },
    sessionFamilies(),
  );
  const keyOf = (c: SessionsSource) => createHash('sha256').update(JSON.stringify([c.account.name, c.account.clientId])).digest('hex');
  for (const c of deps.clients) ledger.scope(keyOf(c));

  /** Counts one session into the total and each configured dimension. */
  function count(scope: EventScope, account: string, s: SessionInfo, ctx: RunContext): void {
    const outcome = sessionOutcome(s);
    const started = outcome === 'played' || outcome === 'playback_failure';
    const rows: Array<[string, string]> = [[TOTAL, TOTAL], ...config.group_by.map((d): [string, string] => [d, s.dimensions[d] ?? 'unknown'])];
    for (const [dimension, value] of rows) {
      const labels = [account, dimension, value];
      scope.count([...labels, outcome], SESSIONS_TOTAL, 1, ctx.guard, ctx.now);
      if (!started) continue;
      if (s.videoStartTimeMs !== undefined && s.videoStartTimeMs >= 0) scope.observe(labels, SESSION_VIDEO_START_TIME, s.videoStartTimeMs / 1000, ctx.guard, ctx.now);
      if (s.rebufferingRatioPercent !== undefined) scope.observe(labels, SESSION_REBUFFERING_RATIO, s.rebufferingRatioPercent / 100, ctx.guard, ctx.now);
      if (s.playingTimeMs !== undefined) scope.observe(labels, SESSION_PLAYING_TIME, s.playingTimeMs / 1000, ctx.guard, ctx.now);
      if (s.averagePeakBitrateBps !== undefined && s.averagePeakBitrateBps > 0) scope.observe(labels, SESSION_BITRATE, s.averagePeakBitrateBps / 8, ctx.guard, ctx.now);
    }
  }

  /**
   * The sessions of [from, to): one request, or, when the answer is full (the API has no
   * pagination), the two halves, down to min_window; a window that short still full is counted.
   */
  async function read(client: SessionsSource, from: number, to: number, ctx: RunContext, onSkip: (what: string) => void): Promise<SessionInfo[]> {
    const body = await client.sessions({ from, to, limit: config.limit, signal: ctx.signal, deadline: ctx.deadline });
    const list = parseSessions(body, SESSIONS_ENDPOINT, (what) => {
      engine.parseErrors.inc({ api: SESSIONS_API, endpoint: SESSIONS_ENDPOINT });
      onSkip(what);
    });
    if (list.length < config.limit) return list;
    if (to - from <= config.min_window) {
      deps.truncated.inc({ account: client.account.name });
      ctx.log.warn({ account: client.account.name, from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit: config.limit }, 'sessions window still full at min_window: some sessions of it are not counted');
      return list;
    }
    const mid = from + Math.ceil((to - from) / 2);
    return [...(await read(client, from, mid, ctx, onSkip)), ...(await read(client, mid, to, ctx, onSkip))];
  }

  /** Reads an account's window piece by piece, oldest first; each piece read in full moves the watermark. */
  async function collectAccount(client: SessionsSource, ctx: RunContext, onSkip: (what: string) => void): Promise<void> {
    const scope = ledger.scope(keyOf(client));
    const w = scope.plan(ctx.now);
    if (w.lostMs > 0) {
      deps.unread.inc({ account: client.account.name }, w.lostMs / 1000);
      ctx.log.warn({ account: client.account.name, seconds: w.lostMs / 1000 }, 'sessions older than the API still lists were not read');
    }
    for (const [from, to] of pieces(w.from, w.to, MAX_REQUEST_MS)) {
      const sessions = await read(client, from, to, ctx, onSkip);
      for (const s of sessions) {
        // Sessions listed outside the window asked for (an upstream that filters on another time) still count once.
        if (scope.take(s.id, s.end)) count(scope, client.account.name, s, ctx);
      }
      scope.commit(to, from);
    }
  }

  return {
    name: SESSIONS_COLLECTOR,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families: sessionFamilies(),
    maxSeriesPerFamily: config.max_series_per_metric,
    state: {
      version: EventLedger.STATE_VERSION,
      carry: () => ledger.carry(),
      adopt: (state) => ledger.adopt(state),
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      const onSkip = skipLogger(ctx);
      const outcomes = await Promise.allSettled(deps.clients.map((c) => collectAccount(c, ctx, onSkip)));
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const errors = outcomes.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      if (errors.length === outcomes.length) throw errors[0];
      ledger.emit(ctx.samples, ctx.guard, ctx.now);
      return errors.length > 0 ? { errors } : {};
    },
  };
}
