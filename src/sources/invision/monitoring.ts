import type { Collector, RunContext, RunOutcome } from '../../engine/collector.js';
import type { Clock } from '../../engine/clock.js';
import { EventLedger, type EventScope } from '../../engine/events.js';
import type { EngineMetrics } from '../../engine/self-metrics.js';
import { MONITORING_EVENTS } from './catalogue.js';
import { MONITORING_API, MONITORING_ENDPOINT, parseMonitoringRows, type MonitoringClient } from './client.js';
import type { InvisionConfig } from './config.js';

// The InVision Monitoring log: every run, the rows written since the last read, each counted once
// by rowid (the engine's event ledger) into invision_monitoring_log_events_total{event_type, level}.

export const MONITORING_COLLECTOR = 'invision_monitoring';

const SECOND = 1000;
const HOUR = 3_600_000;
/**
 * Windows end at now, to the second (the API's resolution): no lag. A row listed late (its
 * timestamp earlier than when it appears) is caught by the next reads, which start `overlap`
 * before the watermark; a lag would only delay every count.
 */
const LAG_MS = 0;
/** One request spans at most an hour: an answer stays well under the HTTP client's body cap. */
const MAX_REQUEST_MS = HOUR;
/** At most this many hours are read per run; a longer gap (an outage) is caught up over the next runs. */
const MAX_PIECES_PER_RUN = 12;
/** How far back the log is assumed to list rows (the simulator purges after a week; InVision's retention is configurable). */
const REACH_MS = 7 * 24 * HOUR;
/** The one ledger scope: one InVision site per exporter. */
const SCOPE = 'monitoring';

export interface MonitoringDeps {
  client: Pick<MonitoringClient, 'monitoring'>;
  config: InvisionConfig['monitoring'];
  /** The InVision block's cardinality guard per family. */
  maxSeriesPerMetric: number;
  engine: Pick<EngineMetrics, 'parseErrors'>;
  /** To stop starting requests once half the run's time is spent (catching up after an outage). */
  clock: Clock;
}

/** [from, to) cut into pieces of at most `max`, oldest first. */
function pieces(from: number, to: number, max: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let t = from; t < to; t += max) out.push([t, Math.min(to, t + max)]);
  return out;
}

/** The (event type, level) filters of one window's requests: one request per listed pair, a missing list meaning no filter. */
function filters(c: InvisionConfig['monitoring']): Array<{ logEventType?: string; logLevel?: string }> {
  const types: Array<string | undefined> = c.event_types.length > 0 ? [...new Set(c.event_types)] : [undefined];
  const levels: Array<string | undefined> = c.levels.length > 0 ? [...new Set(c.levels)] : [undefined];
  return types.flatMap((logEventType) => levels.map((logLevel) => ({ logEventType, logLevel })));
}

/** Counts the rows of the InVision Monitoring log by event type and level, each row once (across overlapping reads and restarts). */
export function createMonitoringCollector(deps: MonitoringDeps): Collector {
  const { config, client, engine } = deps;
  const ledger = new EventLedger({ lagMs: LAG_MS, overlapMs: config.overlap, reachMs: REACH_MS, initialMs: config.initial_lookback }, [MONITORING_EVENTS]);
  ledger.scope(SCOPE);
  const wanted = filters(config);
  const types = new Set(config.event_types);
  const levels = new Set<string>(config.levels);
  const errorLabels = { api: MONITORING_API, endpoint: MONITORING_ENDPOINT };

  /** The rows of [from, to): every filter's request, all answered, or the first error thrown (nothing of the window counted). */
  async function read(from: number, to: number, ctx: RunContext): Promise<unknown[]> {
    const answers = await Promise.allSettled(wanted.map((f) => client.monitoring({ from, to, ...f }, ctx.signal, ctx.deadline)));
    const failed = answers.find((a) => a.status === 'rejected');
    if (failed) throw failed.reason;
    return answers.map((a) => (a as PromiseFulfilledResult<unknown>).value);
  }

  /** Counts a window's rows, each once; an unreadable row is counted as a parse error (once, when it has a rowid and a time). */
  function count(scope: EventScope, bodies: unknown[], ctx: RunContext, skips: { n: number; what?: string }): void {
    const onSkip = (what: string, id?: string, time?: number) => {
      // The overlap lists a row again at every run: one that has an id and a time is reported once.
      if (id !== undefined && time !== undefined && !scope.take(`unreadable\u0000${id}`, time)) return;
      engine.parseErrors.inc(errorLabels);
      skips.n++;
      skips.what ??= what;
    };
    for (const body of bodies) {
      for (const row of parseMonitoringRows(body, onSkip)) {
        // Filters are sent, and applied again: an upstream that ignores one still counts only what was asked for.
        if (types.size > 0 && !types.has(row.event)) continue;
        if (levels.size > 0 && !levels.has(row.level)) continue;
        if (scope.take(row.id, row.time)) scope.count([row.event, row.level], MONITORING_EVENTS, 1, ctx.guard, ctx.now);
      }
    }
  }

  return {
    name: MONITORING_COLLECTOR,
    schedule: config.schedule,
    timeoutMs: config.timeout,
    families: [MONITORING_EVENTS],
    maxSeriesPerFamily: deps.maxSeriesPerMetric,
    state: {
      version: EventLedger.STATE_VERSION,
      carry: () => ledger.carry(),
      adopt: (state) => ledger.adopt(state),
    },
    async collect(ctx: RunContext): Promise<RunOutcome> {
      const scope = ledger.scope(SCOPE);
      // Both lists given: every pair asked for is served from the start, at 0 until a row comes.
      for (const t of types) for (const l of levels) scope.count([t, l], MONITORING_EVENTS, 0, ctx.guard, ctx.now);
      const w = scope.plan(Math.floor(ctx.now / SECOND) * SECOND);
      if (w.lostMs > 0) ctx.log.warn({ seconds: w.lostMs / 1000 }, 'monitoring rows older than the log is assumed to keep were not read');
      const skips: { n: number; what?: string } = { n: 0 };
      let done = 0;
      let error: unknown;
      const todo = pieces(w.from, w.to, MAX_REQUEST_MS);
      for (const [from, to] of todo) {
        if (done >= MAX_PIECES_PER_RUN || (done > 0 && deps.clock.now() - ctx.now > (ctx.deadline - ctx.now) / 2)) {
          ctx.log.info({ readUpTo: new Date(from).toISOString(), hoursLeft: Math.ceil((w.to - from) / HOUR) }, 'monitoring log behind: the rest is read at the next runs');
          break;
        }
        try {
          count(scope, await read(from, to, ctx), ctx, skips);
        } catch (e) {
          error = e;
          break;
        }
        scope.commit(to, from);
        done++;
      }
      if (skips.n > 0) ctx.log.warn({ ...errorLabels, skipped: skips.n, what: skips.what }, 'skipped unreadable monitoring rows');
      if (ctx.signal.aborted) throw ctx.signal.reason;
      // Nothing read: the run failed. Some windows read, then an error: what was read is served (and kept), the run still failed.
      if (error !== undefined && done === 0 && todo.length > 0) throw error;
      ledger.emit(ctx.samples, ctx.guard, ctx.now);
      return { ...(scope.watermark === undefined ? {} : { newestDataTimestamp: scope.watermark }), ...(error === undefined ? {} : { errors: [error] }) };
    },
  };
}
