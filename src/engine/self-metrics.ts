import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The exporter's own metrics all start with this prefix, whatever source they describe (the
 * product is conviva-exporter; renaming a family after dashboards and alerts exist breaks them).
 */
export const SELF_PREFIX = 'conviva_exporter_';

/** The engine's health metrics, for every collector of every source, in the given registry. */
export function createEngineMetrics(registry: Registry, version: string) {
  const p = SELF_PREFIX;
  const reg = [registry];
  const buildInfo = new Gauge({
    name: `${p}build_info`,
    help: 'Build information of the exporter; always 1.',
    labelNames: ['version', 'nodejs_version'],
    registers: reg,
  });
  buildInfo.set({ version, nodejs_version: process.version }, 1);
  return {
    registry,
    collectorUp: new Gauge({
      name: `${p}collector_up`,
      help: 'Whether the last run of the collector succeeded in full (1) or failed in full or in part (0).',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorDuration: new Gauge({
      name: `${p}collector_duration_seconds`,
      help: 'Duration of the last run of the collector.',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorLastSuccess: new Gauge({
      name: `${p}collector_last_success_timestamp_seconds`,
      help: 'Unix time the collector last completed a run successfully in full.',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorRuns: new Counter({
      name: `${p}collector_runs_total`,
      help: 'Collector runs by result (success or failure).',
      labelNames: ['collector', 'result'],
      registers: reg,
    }),
    collectorSkipped: new Counter({
      name: `${p}collector_skipped_total`,
      help: 'Scheduled collector runs skipped: the previous run was still in progress, or the scheduler missed the tick (event loop blocked).',
      labelNames: ['collector'],
      registers: reg,
    }),
    collectorSeries: new Gauge({
      name: `${p}collector_series`,
      help: 'Series the collector currently publishes on /metrics (0 once withdrawn as stale).',
      labelNames: ['collector'],
      registers: reg,
    }),
    dataNewest: new Gauge({
      name: `${p}data_newest_timestamp_seconds`,
      help: 'Upstream time of the newest data the collector has published (for time-bucketed sources, the start of the newest settled bucket).',
      labelNames: ['collector'],
      registers: reg,
    }),
    watermarkAhead: new Gauge({
      name: `${p}watermark_ahead_seconds`,
      help: "How far the collector's newest counted bucket is ahead of its newest settled bucket by the exporter's clock (clock stepped back, or state from a host with a wrong clock); its counters wait until the clock passes it. 0 normally.",
      labelNames: ['collector'],
      registers: reg,
    }),
    revisedDown: new Counter({
      name: `${p}downward_revisions_total`,
      help: 'How much upstream revisions lowered buckets a counter had already counted, per collector and counter family; not subtracted (a counter never goes down), so the counter is ahead of the upstream by this much.',
      labelNames: ['collector', 'family'],
      registers: reg,
    }),
    // The audit of ledger counters against an upstream's final record (see docs/metrics.md).
    auditCounted: new Counter({
      name: `${p}audit_counted_total`,
      help: "What the collector's counters added for the audited minutes and scopes, per counter family: compare with audit_reference_total.",
      labelNames: ['collector', 'family'],
      registers: reg,
    }),
    auditReference: new Counter({
      name: `${p}audit_reference_total`,
      help: "The upstream's final record (historical API) for the same minutes and scopes as audit_counted_total, per counter family.",
      labelNames: ['collector', 'family'],
      registers: reg,
    }),
    auditDivergence: new Gauge({
      name: `${p}audit_divergence_ratio`,
      help: '(counted - reference) / reference of the newest audited batch, per counter family: negative when the counters undercount.',
      labelNames: ['collector', 'family'],
      registers: reg,
    }),
    auditMinutes: new Counter({
      name: `${p}audit_buckets_total`,
      help: 'One-minute buckets whose counted values were compared with the upstream final record, summed over the audited scopes.',
      labelNames: ['collector'],
      registers: reg,
    }),
    seriesDropped: new Counter({
      name: `${p}series_dropped_total`,
      help: 'Series refused by the per-family cardinality guard (max_series_per_metric), counted per run.',
      labelNames: ['family'],
      registers: reg,
    }),
    // Every source parses upstream answers (JSON bodies, CSV rows), so this family is shared.
    parseErrors: new Counter({
      name: `${p}parse_errors_total`,
      help: 'Upstream answers, rows or values the exporter could not read and skipped.',
      labelNames: ['api', 'endpoint'],
      registers: reg,
    }),
    // prom-client's nodejs_heap_* describe the serving thread; the collectors' memory is here.
    engineHeapUsed: new Gauge({
      name: `${p}engine_heap_used_bytes`,
      help: "V8 heap in use on the engine's thread (collectors, their state, their answers in flight); nodejs_heap_* describe the serving thread.",
      registers: reg,
      collect() {
        this.set(getHeapStatistics().used_heap_size);
      },
    }),
    engineHeapSize: new Gauge({
      name: `${p}engine_heap_size_bytes`,
      help: "V8 heap reserved on the engine's thread.",
      registers: reg,
      collect() {
        this.set(getHeapStatistics().total_heap_size);
      },
    }),
    stateWrites: new Counter({
      name: `${p}state_writes_total`,
      help: 'Writes of the state file (engine.state_file) by result (success or failure).',
      labelNames: ['result'],
      registers: reg,
    }),
    // Sharding across replicas (docs/scaling.md): every replica of a sharded deployment says which
    // shard it is and how many there are, so an alert catches two with the same ordinal, a missing
    // one, or replicas that disagree on the total (kube-state-metrics exports the same pair).
    shardOrdinal: new Gauge({
      name: `${p}shard_ordinal`,
      help: 'This replica\'s shard (--shard; 0 without sharding): it polls the units of upstream work whose key hashes to it.',
      registers: reg,
    }),
    totalShards: new Gauge({
      name: `${p}total_shards`,
      help: 'Number of shards the units of upstream work are spread over (--total-shards; 1 without sharding); every replica of a deployment must say the same.',
      registers: reg,
    }),
    configHash: new Gauge({
      name: `${p}config_hash`,
      help: 'The first 48 bits of the SHA-256 of the config file in force (before ${VAR} expansion), as a number: the replicas of a sharded deployment must show the same.',
      registers: reg,
    }),
    shardUnits: new Gauge({
      name: `${p}shard_units`,
      help: 'Units of upstream work (accounts, data flows, queries: docs/scaling.md) of the source this replica polls; summed over the replicas, the number configured.',
      labelNames: ['source'],
      registers: reg,
    }),
  };
}

export type EngineMetrics = ReturnType<typeof createEngineMetrics>;
