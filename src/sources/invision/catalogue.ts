import { defineFamily, type FamilyDef } from '../../engine/family.js';

// Every family the InVision source can emit. Names are written out, not generated. Labels: the
// data flow's configured id and name, never a run id (one series per run would grow without bound).

export const FLOW_LABELS = ['flow_id', 'flow'] as const;
const START = 'POST api/pub/v1/dataflows/{dataflowId}/start';
const STATUS = 'GET api/pub/v1/dataflows/{dataflowId}/runs/{runId}/status';
const FOLLOWED = 'Runs the exporter started or was handed over, followed by polling their status';

function family(name: string, type: 'gauge' | 'counter', unit: string, source: string, help: string, extra: string[] = []): FamilyDef {
  return defineFamily({ name, type, unit, source, labelNames: [...FLOW_LABELS, ...extra], help });
}

/** The latest run's status as a state set: exactly one status is 1. */
export const RUN_STATUS = family('invision_dataflow_run_status', 'gauge', 'state', STATUS,
  `Status of the data flow's latest run, as a state set: 1 for its status (pending, running, succeeded, failed; stuck: still pending or running past the flow's timeout; lost: InVision answered 404 for it for unknown_run_after, no longer followed), 0 for the others. ${FOLLOWED}.`, ['status']);
export const RUN_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'stuck', 'lost'] as const;
export const RUNS_TOTAL = family('invision_dataflow_runs_total', 'counter', 'count', STATUS,
  `Runs that ended, by result (succeeded, failed), each counted once when first seen ended. ${FOLLOWED}.`, ['result']);
export const RUN_DURATION = defineFamily({
  name: 'invision_dataflow_run_duration_seconds',
  type: 'histogram',
  unit: 'seconds',
  source: STATUS,
  labelNames: FLOW_LABELS,
  // From seconds to a long night: batch loads run for minutes to hours.
  buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 57600],
  help: `Duration of ended runs, from the start the exporter made (or its first sighting of a handed-over run) to the first poll that saw the run ended (so up to one poll interval long). ${FOLLOWED}.`,
});
export const LAST_DURATION = family('invision_dataflow_last_run_duration_seconds', 'gauge', 'seconds', STATUS, 'Duration of the latest ended run (as invision_dataflow_run_duration_seconds).');
export const LAST_SUCCESS = family('invision_dataflow_last_success_timestamp_seconds', 'gauge', 'seconds', STATUS, 'When the exporter first saw the latest successful run ended (Unix time).');
export const LAST_START = family('invision_dataflow_last_run_start_timestamp_seconds', 'gauge', 'seconds', START, 'When the latest run started: the start the exporter made, or its first sighting of a handed-over run (Unix time).');
export const RUNS_LOST = family('invision_dataflow_runs_lost_total', 'counter', 'count', STATUS,
  'Runs given up without an end: their status read answered 404 (InVision does not know the run) without a break for unknown_run_after. Not in runs_total; the flow\'s scheduled starts go on.');
export const IN_PROGRESS = family('invision_dataflow_runs_in_progress', 'gauge', 'count', STATUS, `Runs of the data flow still pending or running. ${FOLLOWED}.`);
export const STUCK = family('invision_dataflow_runs_stuck', 'gauge', 'count', STATUS, "Runs still pending or running past the flow's timeout (still followed: one that ends later is counted then).");
export const STARTS_TOTAL = family('invision_dataflow_starts_total', 'counter', 'count', START, 'Runs the exporter started on the flow\'s schedule (InVision answered with a run id).');
export const STARTS_SKIPPED = family('invision_dataflow_starts_skipped_total', 'counter', 'count', START, 'Scheduled starts skipped because the previous run was still in flight (allow_overlap off).');
export const START_FAILURES = family('invision_dataflow_start_failures_total', 'counter', 'count', START,
  'Scheduled starts that did not give a run id, by reason: status (InVision answered an error), timeout (no answer: a run may have started; not repeated), network (never reached InVision), unknown (the exporter stopped between recording a start and its answer; not repeated).', ['reason']);
export const START_FAILURE_REASONS = ['status', 'timeout', 'network', 'unknown'] as const;
export const EXPECTED_INTERVAL = family('invision_dataflow_expected_interval_seconds', 'gauge', 'seconds', 'config', 'A success of the data flow is expected at least this often (configured expected_interval; only flows that have one).');

export const MONITORING_EVENTS = defineFamily({
  name: 'invision_monitoring_log_events_total',
  type: 'counter',
  unit: 'count',
  source: 'GET api/v1/monitoring',
  labelNames: ['event_type', 'level'],
  help: 'Rows of the InVision Monitoring log, by event type and level, each row counted once.',
});

export function dataflowFamilies(): FamilyDef[] {
  return [RUN_STATUS, RUNS_TOTAL, RUNS_LOST, RUN_DURATION, LAST_DURATION, LAST_SUCCESS, LAST_START, IN_PROGRESS, STUCK, STARTS_TOTAL, STARTS_SKIPPED, START_FAILURES, EXPECTED_INTERVAL];
}
