import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import { shardOf } from '../../src/engine/shard.js';
import type { AnySource } from '../../src/engine/source.js';
import { Simulator } from '../../src/simulator/server.js';
import { conviva } from '../../src/sources/conviva/index.js';
import { ConvivaFake } from '../../src/sources/conviva/fake.js';
import { defaultDimensions } from '../../src/sources/conviva/fake-data.js';
import { intelepeer } from '../../src/sources/intelepeer/index.js';
import { invision } from '../../src/sources/invision/index.js';
import { InvisionFake } from '../../src/sources/invision/fake.js';
import type { ParsedSample } from '../helpers/exposition.js';
import { MINUTE, startStack, T0, type Stack } from '../helpers/stack.js';

// Two shards (0 of 2, 1 of 2) against one simulator, and one replica without sharding against a
// second simulator seeded the same, on clocks that move together: the two shards export exactly
// the data series the one replica exports, neither exports a series of the other, each polls only
// its own units, and their upstream requests add up to the one replica's.

const ACCOUNTS = ['prod', 'staging', 'eu', 'us'].map((name) => ({ name, clientId: `${name}-client`, clientSecret: `${name}-secret` }));

/**
 * Units and their shards (of 2): conviva prod, us -> 0, staging, eu -> 1; invision
 * df-hourly-sales -> 0, df-nightly-load, df-budget-sync and the Monitoring log -> 1; intelepeer
 * flow-exits -> 0, calls, dtmf-errors -> 1 (asserted below). The IntelePeer queries' first intervals
 * start at different times (initial_lookback), and their schedules tick on different minutes, so
 * the one replica's two query slots and the shards' one each are used in the same order.
 */
const CONFIG = `
engine: { staleness: 30m, shutdown_grace: 200ms }
sources:
  conviva:
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    request_timeout: 2s
    accounts:
${ACCOUNTS.map((a) => `      - { name: ${a.name}, client_id: ${a.clientId}, client_secret: ${a.clientSecret} }`).join('\n')}
    realtime:
      metrics: [attempts, plays, concurrent-plays, video-start-failures]
      group_by: [device-os]
    flows: { enabled: true, group_by: [platform] }
    sessions: { enabled: true, group_by: [device_os_family] }
  invision:
    base_url: https://invision.example.com/invision
    api_key: placeholder
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    dataflows:
      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m, expected_interval: 5m }
      - { id: df-nightly-load, name: nightly-load, schedule: "*/2 * * * *", timeout: 5m }
      - { id: df-budget-sync, name: budget-sync, schedule: "*/3 * * * *", timeout: 5m }
    monitoring: { enabled: true, api_key: placeholder }
  intelepeer:
    username: placeholder
    password: placeholder
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    sftp:
      host: 127.0.0.1
      username: placeholder
      password: placeholder
      host_key_fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
    queries:
      - { name: flow-exits, event: ApplicationExitEvent, schedule: "*/5 * * * *", lag: 1m, initial_lookback: 1h, group_by: [FlowName, ExitReason], histograms: [{ name: flow, start: StartTime, end: EndTime }] }
      - { name: calls, event: CallEvent, schedule: "1-59/5 * * * *", lag: 1m, initial_lookback: 45m, group_by: [Direction, Disposition] }
      - { name: dtmf-errors, event: DtmfEvent, schedule: "2-59/5 * * * *", lag: 1m, initial_lookback: 30m, group_by: [FlowName, ErrorReason], filters: { ErrorReason: { $ne: "" } } }
`;

/**
 * The sources, their fakes as the test needs them: Conviva with four accounts; InVision's
 * Monitoring rows never late (how late is drawn from the run's id, which counts every run the
 * simulator started, so it differs between a simulator two shards share and one of its own).
 */
const SIM_SOURCES: AnySource[] = [
  { ...conviva, fake: (o) => new ConvivaFake({ seed: o.seed, clock: o.clock, accounts: ACCOUNTS, dimensions: defaultDimensions(o.cardinality), lateRevisions: o.lateRevisions }) },
  { ...invision, fake: (o) => new InvisionFake({ seed: o.seed, clock: o.clock, lateRows: false }) },
  intelepeer,
];

/** Series that describe the replica itself, not a unit: each replica has its own. */
const PER_REPLICA = /^(conviva_exporter_|process_|nodejs_|intelepeer_sftp_)/;

/** The unit a data series belongs to, as the engine keys it. */
function unitOf(s: ParsedSample): string {
  if (s.name.startsWith('conviva_')) return `conviva/${s.labels.account}`;
  if (s.name.startsWith('invision_monitoring_')) return 'invision/monitoring';
  if (s.name.startsWith('invision_dataflow_')) return `invision/dataflow/${s.labels.flow_id}`;
  if (s.name.startsWith('intelepeer_')) return `intelepeer/${s.labels.query}`;
  throw new Error(`no unit for ${s.name}`);
}

/** A series as Prometheus stores it: an empty label is no label (IntelePeer leaves other queries' group_by labels empty). */
function seriesKey(s: ParsedSample): string {
  const labels = Object.entries(s.labels).filter(([, v]) => v !== '').sort(([a], [b]) => a.localeCompare(b));
  return `${s.name}{${labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
}

function dataSeries(samples: ParsedSample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (PER_REPLICA.test(s.name)) continue;
    const k = seriesKey(s);
    expect(out.has(k), `${k} twice`).toBe(false);
    out.set(k, s.value);
  }
  return out;
}

/** An upstream request with the ids the simulator made up (run ids, query guids) taken out. */
function requestKey(r: { method: string; path: string; query: string; status: number }): string {
  const path = r.path
    .replace(/(\/dataflows\/[^/]+\/runs\/)[^/]+/, '$1{runId}')
    .replace(/(\/dwh\/Q\/)[^/]+/, '$1{guid}');
  return `${r.method} ${path}?${r.query} ${r.status}`;
}

function tally(keys: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const k of keys) out.set(k, (out.get(k) ?? 0) + 1);
  return out;
}

/** conviva_exporter_http_requests_total by api, endpoint and code. */
function httpRequests(samples: ParsedSample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== 'conviva_exporter_http_requests_total' || s.value === 0) continue;
    const k = `${s.labels.api} ${s.labels.endpoint} ${s.labels.code}`;
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

function sumMaps(...ms: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of ms) for (const [k, v] of m) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

const sorted = (m: Map<string, number>) => [...m].sort(([a], [b]) => a.localeCompare(b));

async function newSimulator(clock: ManualClock): Promise<Simulator> {
  const sim = new Simulator({ clock, seed: 13, sources: SIM_SOURCES, sftp: 'embedded' });
  await sim.listen('127.0.0.1', 0);
  return sim;
}

const stacks: Stack[] = [];
const sims: Simulator[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of stacks.splice(0)) await s.app.stop();
  for (const s of sims.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function exporter(sim: Simulator, clock: ManualClock, shard: { ordinal: number; total: number }): Promise<Stack> {
  const s = await startStack({ configText: CONFIG, on: { sim, clock }, mutate: (c) => (c.shard = shard) });
  stacks.push(s);
  return s;
}

describe('sharding across replicas', () => {
  it('two shards export exactly the series one replica exports, neither overlapping the other, for the same upstream requests', async () => {
    const sharedClock = new ManualClock(T0);
    const aloneClock = new ManualClock(T0);
    const shared = await newSimulator(sharedClock);
    const alone = await newSimulator(aloneClock);
    sims.push(shared, alone);
    const shards = [await exporter(shared, sharedClock, { ordinal: 0, total: 2 }), await exporter(shared, sharedClock, { ordinal: 1, total: 2 })];
    const single = await exporter(alone, aloneClock, { ordinal: 0, total: 1 });

    // Every collector of every source is built on both shards but invision_monitoring (one unit, shard 1's).
    const names = (s: Stack) => [...s.app.runner.collectorNames].sort();
    expect(names(single)).toEqual(['conviva_flow', 'conviva_flow_models', 'conviva_realtime', 'conviva_sessions', 'intelepeer_queries', 'invision_dataflows', 'invision_monitoring']);
    expect(names(shards[0]!)).toEqual(names(single).filter((n) => n !== 'invision_monitoring'));
    expect(names(shards[1]!)).toEqual(names(single));

    // 20 minutes, a run of every collector each minute (the shards one after the other).
    for (let minute = 0; minute < 20; minute++) {
      for (const s of [...shards, single]) {
        const results = await Promise.all(s.app.runner.collectorNames.map(async (n) => [n, await s.app.runner.run(n)] as const));
        expect(results.filter(([, r]) => r !== 'success'), `minute ${minute}`).toEqual([]);
      }
      sharedClock.advance(MINUTE);
      aloneClock.advance(MINUTE);
    }

    const [a, b, one] = await Promise.all([...shards, single].map((s) => s.samples()));
    const [da, db, d1] = [dataSeries(a!), dataSeries(b!), dataSeries(one!)];
    expect(d1.size).toBeGreaterThan(500);

    // Each shard polls at least one unit of each source, and only its own.
    for (const [ordinal, d] of [da, db].entries()) {
      const units = new Set([...d.keys()].map((k) => unitOf((ordinal === 0 ? a : b)!.find((s) => seriesKey(s) === k)!)));
      for (const u of units) expect(shardOf(u, 2), u).toBe(ordinal);
      for (const source of ['conviva', 'invision', 'intelepeer']) expect([...units].some((u) => u.startsWith(`${source}/`)), `shard ${ordinal}: ${source}`).toBe(true);
    }
    expect(new Set([...d1.keys()].map((k) => unitOf(one!.find((s) => seriesKey(s) === k)!)))).toEqual(new Set([
      'conviva/prod', 'conviva/staging', 'conviva/eu', 'conviva/us',
      'invision/dataflow/df-hourly-sales', 'invision/dataflow/df-nightly-load', 'invision/dataflow/df-budget-sync', 'invision/monitoring',
      'intelepeer/flow-exits', 'intelepeer/calls', 'intelepeer/dtmf-errors',
    ]));
    const units = (samples: ParsedSample[]) => samples.filter((s) => s.name === 'conviva_exporter_shard_units').map((s) => [s.labels.source, s.value]);
    expect(units(a!)).toEqual([['conviva', 2], ['invision', 1], ['intelepeer', 1]]);
    expect(units(b!)).toEqual([['conviva', 2], ['invision', 3], ['intelepeer', 2]]);
    expect(units(one!)).toEqual([['conviva', 4], ['invision', 4], ['intelepeer', 3]]);
    for (const [samples, ordinal, total] of [[a!, 0, 2], [b!, 1, 2], [one!, 0, 1]] as const) {
      expect(samples.find((s) => s.name === 'conviva_exporter_shard_ordinal')!.value).toBe(ordinal);
      expect(samples.find((s) => s.name === 'conviva_exporter_total_shards')!.value).toBe(total);
    }
    // The same config file everywhere: the same config hash (ConvivaExporterShardConfigsDiffer stays silent).
    const hashOf = (samples: ParsedSample[]) => samples.find((s) => s.name === 'conviva_exporter_config_hash')!.value;
    expect(hashOf(a!)).toBe(hashOf(one!));
    expect(hashOf(b!)).toBe(hashOf(one!));
    expect(hashOf(a!)).toBeGreaterThan(0);

    // Disjoint, and together exactly the one replica's series, with the same values.
    expect([...da.keys()].filter((k) => db.has(k))).toEqual([]);
    expect(sorted(new Map([...da, ...db]))).toEqual(sorted(d1));

    // The same upstream requests: counted by the simulators, and by the exporters' own counters.
    // The one exception: each replica gets its own IntelePeer token (one POST a day per replica).
    const AUTH = /\/intelepeer\/_rest\/v4\/authenticate/;
    const sharedRequests = tally(shared.requests.map(requestKey));
    const aloneRequests = tally(alone.requests.map(requestKey));
    expect(shared.requests.length).toBeLessThan(10_000); // the simulator's log is bounded
    expect(alone.requests.length).toBeGreaterThan(200);
    expect(sorted(new Map([...sharedRequests].filter(([k]) => !AUTH.test(k))))).toEqual(sorted(new Map([...aloneRequests].filter(([k]) => !AUTH.test(k)))));
    expect([...sharedRequests].filter(([k]) => AUTH.test(k)).map(([, n]) => n)).toEqual([2]);
    expect([...aloneRequests].filter(([k]) => AUTH.test(k)).map(([, n]) => n)).toEqual([1]);
    const together = sumMaps(httpRequests(a!), httpRequests(b!));
    const byOne = httpRequests(one!);
    expect(together.get('intelepeer_auth _rest/v4/authenticate 200')).toBe(2);
    expect(byOne.get('intelepeer_auth _rest/v4/authenticate 200')).toBe(1);
    together.delete('intelepeer_auth _rest/v4/authenticate 200');
    byOne.delete('intelepeer_auth _rest/v4/authenticate 200');
    expect(sorted(together)).toEqual(sorted(byOne));
    // Every API was used (Conviva's historical one by the counter audit, 20 minutes in).
    expect(new Set([...byOne.keys()].map((k) => k.split(' ')[0]))).toEqual(new Set([
      'conviva_realtime', 'conviva_flow', 'conviva_sessions', 'conviva_historical', 'invision', 'invision_monitoring', 'intelepeer',
    ]));

    // Both shards are ready although shard 0 runs no Monitoring collector; the landing page lists what each runs.
    for (const [i, s] of shards.entries()) {
      const url = await s.app.serve({ host: '127.0.0.1', port: 0 });
      const ready = await fetch(`${url}/-/ready`);
      expect(ready.status, `shard ${i}`).toBe(200);
      const page = await (await fetch(`${url}/`)).text();
      expect(page.includes('invision_monitoring')).toBe(i === 1);
      expect(page).toContain('conviva_realtime');
      expect(page).toContain(`Shard ${i} of 2`);
    }
  }, 120_000);

  it('a hand-over folder shared by the shards: each takes the files of its own flows and leaves the others\'', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shards-'));
    dirs.push(dir);
    const handover = join(dir, 'handover');
    mkdirSync(handover);
    const clock = new ManualClock(T0);
    const sim = await newSimulator(clock);
    sims.push(sim);
    // handover_dir in the invision block (the only one with an api_key).
    const text = CONFIG.replace('    api_key: placeholder\n    retries: 1', `    api_key: placeholder\n    handover_dir: ${handover}\n    retries: 1`);
    expect(text).toContain('handover_dir');
    const shards = [0, 1].map((ordinal) => startStack({ configText: text, on: { sim, clock }, mutate: (c) => (c.shard = { ordinal, total: 2 }), collector: 'invision_dataflows' }));
    const [s0, s1] = await Promise.all(shards);
    stacks.push(s0!, s1!);
    const fake = sim.fake<InvisionFake>('invision');
    const mine = fake.startRun('df-hourly-sales'); // shard 0's flow
    const theirs = fake.startRun('df-nightly-load'); // shard 1's flow
    writeFileSync(join(handover, 'a.json'), JSON.stringify({ dataflow_id: 'df-hourly-sales', run_id: mine.runId }));
    writeFileSync(join(handover, 'b.json'), JSON.stringify({ dataflow_id: 'df-nightly-load', run_id: theirs.runId }));
    // A flow in no config: the shard its id hashes to logs and removes the file; the other leaves it.
    const unknownOwner = shardOf('invision/dataflow/df-elsewhere', 2);
    writeFileSync(join(handover, 'c.json'), JSON.stringify({ dataflow_id: 'df-elsewhere', run_id: 'r-1' }));

    const other = 1 - unknownOwner;
    await s0!.run();
    expect(existsSync(join(handover, 'a.json'))).toBe(false);
    expect(existsSync(join(handover, 'b.json'))).toBe(true);
    expect(existsSync(join(handover, 'c.json'))).toBe(unknownOwner !== 0);
    await s1!.run();
    expect(existsSync(join(handover, 'b.json'))).toBe(false);
    expect(existsSync(join(handover, 'c.json'))).toBe(false);
    const followed = (s: Stack) => s.logs.filter((l) => l.msg === 'following a handed-over data flow run').map((l) => l.flowId);
    expect(followed(s0!)).toEqual(['df-hourly-sales']);
    expect(followed(s1!)).toEqual(['df-nightly-load']);
    const ignored = (s: Stack) => s.logs.filter((l) => l.msg === 'handed-over run of a data flow not in the configuration: ignored').map((l) => l.flowId);
    expect(ignored([s0, s1][unknownOwner]!)).toEqual(['df-elsewhere']);
    expect(ignored([s0, s1][other]!)).toEqual([]);
  });
});
