import { sessionsEndingIn, type SimSession } from '../../src/sources/conviva/sessions-fake.js';
import { flowMinuteValues } from '../../src/sources/conviva/flow-fake.js';
import { systemClock } from '../../src/engine/clock.js';
import { minuteValues, servedValues, type MinuteValues } from '../../src/sources/conviva/fake-data.js';
import type { ConvivaFake, RequestFilter } from '../../src/sources/conviva/fake.js';
import type { Simulator } from '../../src/simulator/server.js';

/** The real-time counters the counter-law and storm oracles check, with the simulator's key for each. */
export const REALTIME_COUNTERS = [
  ['conviva_attempts_total', 'attempts'],
  ['conviva_plays_total', 'plays'],
  ['conviva_video_start_failures_total', 'video_start_failures'],
  ['conviva_ended_plays_total', 'ended_plays'],
] as const;

/** The simulator's Conviva fake. */
export const convivaFake = (sim: Simulator) => sim.fake<ConvivaFake>('conviva');

export const FILTERS: Record<string, RequestFilter> = {
  all: { dimensions: new Map() },
  ios: { dimensions: new Map([['device_os', ['iOS']]]) },
  sports: { filterId: '1234', dimensions: new Map() },
};

const GROUPS: Record<string, string | undefined> = { total: undefined, device_os: 'device-os', tag_appVersion: 'dimension-tag/appVersion' };

export interface LabelSet {
  account: string;
  filter: string;
  dimension: string;
  value: string;
}

/** Every label set the simulator serves for the given account, filters and dimension labels. */
export function labelSets(sim: Simulator, account: string, filters: string[], dimensions: string[]): LabelSet[] {
  const out: LabelSet[] = [];
  for (const filter of filters) {
    for (const dimension of dimensions) {
      const group = GROUPS[dimension] ? convivaFake(sim).dimension(GROUPS[dimension]!) : undefined;
      for (const r of convivaFake(sim).rows(account, FILTERS[filter]!, group)) out.push({ account, filter, dimension, value: r.value ?? 'total' });
    }
  }
  return out;
}

/** The value the simulator serves now for one label set and minute. */
export function settledValue(sim: Simulator, ls: LabelSet, ts: number, key: keyof MinuteValues): number {
  const group = GROUPS[ls.dimension] ? convivaFake(sim).dimension(GROUPS[ls.dimension]!) : undefined;
  const row = convivaFake(sim).rows(ls.account, FILTERS[ls.filter]!, group).find((r) => (r.value ?? 'total') === ls.value);
  if (!row) throw new Error(`no row for ${JSON.stringify(ls)}`);
  // As the simulator serves it now: a minute revised late may still be short of its final value.
  return servedValues(row.scope, ts, (sim.options.clock ?? systemClock).now())[key];
}

/** The final value of one label set and minute, once every late revision is in. */
export function finalValue(sim: Simulator, ls: LabelSet, ts: number, key: keyof MinuteValues): number {
  const group = GROUPS[ls.dimension] ? convivaFake(sim).dimension(GROUPS[ls.dimension]!) : undefined;
  const row = convivaFake(sim).rows(ls.account, FILTERS[ls.filter]!, group).find((r) => (r.value ?? 'total') === ls.value);
  if (!row) throw new Error(`no row for ${JSON.stringify(ls)}`);
  return minuteValues(row.scope, ts)[key];
}

/** Sum over the minutes [from, to] (bucket starts, inclusive) of the values the simulator serves now. */
export function settledSum(sim: Simulator, ls: LabelSet, from: number, to: number, key: keyof MinuteValues): number {
  let sum = 0;
  for (let ts = from; ts <= to; ts += 60_000) sum += settledValue(sim, ls, ts, key);
  return sum;
}

/** The DPI Flow fake of the simulator. */
export const flowFake = (sim: Simulator) => convivaFake(sim).flows;

export type FlowCountKey = 'init' | 'complete' | 'success' | 'error';

/** Sum of the settled counts the simulator serves for one flow row over the minutes [from, to] (bucket starts, inclusive). */
export function flowSettledSum(sim: Simulator, seed: number, account: string, modelId: string, dimension: string | undefined, value: string | undefined, from: number, to: number, key: FlowCountKey): number {
  const row = flowFake(sim).rows(account, modelId, dimension).find((r) => r.value === value);
  if (!row) throw new Error(`no flow row ${modelId} ${dimension}=${value}`);
  let sum = 0;
  for (let ts = from; ts <= to; ts += 60_000) sum += flowMinuteValues(seed, account, modelId, row.rowKey, row.weight, ts)[key];
  return sum;
}

/** The settled values of one flow row and minute. */
export function flowSettled(sim: Simulator, seed: number, account: string, modelId: string, dimension: string | undefined, value: string | undefined, ts: number) {
  const row = flowFake(sim).rows(account, modelId, dimension).find((r) => r.value === value);
  if (!row) throw new Error(`no flow row ${modelId} ${dimension}=${value}`);
  return flowMinuteValues(seed, account, modelId, row.rowKey, row.weight, ts);
}

/**
 * The sessions the simulator serves that ended in [from, to), in the order it serves them: the
 * oracle of the sessions collector (a session is listed at most 3 minutes after it ends).
 */
export function sessionsEnded(seed: number, account: string, from: number, to: number): SimSession[] {
  const out: SimSession[] = [];
  for (let m = Math.floor(from / 60_000) * 60_000; m < to; m += 60_000) {
    for (const s of sessionsEndingIn(seed, account, m)) if (s.timestamps.end.epoch_ms >= from && s.timestamps.end.epoch_ms < to) out.push(s);
  }
  return out;
}

/** The outcome docs/metrics.md documents, computed from the raw session (first match wins). */
export function documentedOutcome(s: SimSession): string {
  const st = s.status_info;
  if (st.is_video_start_failure || st.is_video_start_failure_business || st.is_video_start_failure_tech) return 'video_start_failure';
  if (st.is_exit_before_video_start) return 'exit_before_video_start';
  if (st.is_video_playback_failure || st.is_video_playback_failure_business || st.is_video_playback_failure_tech) return 'playback_failure';
  return s.lifetime_metrics.video_start_time_ms >= 0 ? 'played' : 'not_started';
}
