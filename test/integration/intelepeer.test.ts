import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import { Simulator } from '../../src/simulator/server.js';
import { intelepeer } from '../../src/sources/intelepeer/index.js';
import type { IntelePeerFake } from '../../src/sources/intelepeer/fake.js';
import { labelName } from '../../src/sources/intelepeer/config.js';
import { value, type ParsedSample } from '../helpers/exposition.js';
import { requireSshd, startSshd, type Sshd } from '../helpers/sshd.js';
import { MINUTE, startStack, type Stack } from '../helpers/stack.js';

// The IntelePeer collector against the simulator's Insights API, its results read over SFTP from
// Debian's real sshd (started here, its chroot the simulator's files folder), on a manual clock.

const C = 'intelepeer_queries';
/** 2026-11-23 20:00:30 UTC. */
const START = Date.UTC(2026, 10, 23, 20, 0, 30);
const fake = (sim: Simulator) => sim.fake<IntelePeerFake>('intelepeer');

let stack: Stack | undefined;
let sshd: Sshd | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  await sshd?.close();
  sshd = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'intelepeer-'));
  dirs.push(d);
  return d;
}

const config = (dir: string, queries: string, extra = '') => `
engine: { staleness: 30m, shutdown_grace: 200ms, state_file: ${join(dir, 'state.json')} }
sources:
  intelepeer:
    username: placeholder
    password: placeholder
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    request_timeout: 2s
    connect_timeout: 2s
    timeout: 50s
${extra}
    sftp:
      host: 127.0.0.1
      username: placeholder
      password: placeholder
      host_key_fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
      connect_timeout: 5s
    queries:
${queries}
`;

const EXITS = `      - { name: exits, event: ApplicationExitEvent, schedule: "*/15 * * * *", lag: 15m, initial_lookback: 1h, group_by: [FlowName, ExitReason], histograms: [{ name: flow, start: StartTime, end: EndTime }] }`;

/** A simulator writing into a real sshd's chroot, and an exporter on it. */
async function boot(text: string, on?: { sim: Simulator; clock: ManualClock }): Promise<Stack> {
  if (!on) {
    sshd = await startSshd();
    const clock = new ManualClock(START);
    const sim = new Simulator({ clock, seed: 11, sources: [intelepeer], filesDir: sshd.root, sftp: { host: sshd.host, port: sshd.port, username: sshd.username, fingerprint: sshd.fingerprint, privateKeyPath: sshd.privateKeyPath } });
    await sim.listen('127.0.0.1', 0);
    on = { sim, clock };
  }
  return startStack({ configText: text, on, collector: C });
}

/** What the simulator holds for [from, to): events by the group_by fields, as label sets. */
function expected(sim: Simulator, event: string, groupBy: string[], from: number, to: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of fake(sim).events(event, from, to)) {
    const k = JSON.stringify(Object.fromEntries(groupBy.map((f) => [labelName(f), e[f] ?? ''])));
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

/** intelepeer_events_total of one query, as label sets of its group_by labels. */
function counted(samples: ParsedSample[], query: string, groupBy: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== 'intelepeer_events_total' || s.labels.query !== query) continue;
    const k = JSON.stringify(Object.fromEntries(groupBy.map((f) => [labelName(f), s.labels[labelName(f)] ?? ''])));
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

const q = (query: string, extra: Record<string, string> = {}) => ({ query, ...extra });
const minuteOf = (t: number) => Math.floor(t / MINUTE) * MINUTE;

describe('IntelePeer queries against the simulator and a real sshd', () => {
  it('a job\'s whole life: cut, submitted (guid on disk), followed, its .csv.gz read over SFTP and counted once, quotes, commas and newlines included', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    stack = await boot(config(dir, EXITS));
    const s = stack;
    let { result, samples } = await s.run();
    expect(result).toBe('success');
    // The first interval: the hour before now minus the lag, submitted at once; its guid on disk.
    const end = minuteOf(START) - 15 * MINUTE;
    const from = end - 60 * MINUTE;
    const [query] = fake(s.sim).queries();
    expect(query).toMatchObject({ schema: 'ApplicationExitEvent', from, to: end });
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { collectors: Record<string, { state: { jobs: Array<{ guid?: string }> } }> };
    expect(state.collectors[C]!.state.jobs.map((j) => j.guid)).toEqual([query!.guid]);
    expect(value(samples, 'intelepeer_query_jobs', q('exits', { phase: 'running' }))).toBe(1);
    // Pending for 20 s: the next run finds it Completed, reads its files and counts them.
    s.clock.advance(30_000);
    ({ result, samples } = await s.run());
    expect(result).toBe('success');
    const want = expected(s.sim, 'ApplicationExitEvent', ['FlowName', 'ExitReason'], from, end);
    expect([...want.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(100);
    expect(counted(samples, 'exits', ['FlowName', 'ExitReason'])).toEqual(want);
    // The flow name with a comma, a quote and a newline came through the CSV whole.
    expect(samples.some((x) => x.name === 'intelepeer_events_total' && /,/.test(x.labels.flow_name ?? '') && /"/.test(x.labels.flow_name ?? '') && /\n/.test(x.labels.flow_name ?? ''))).toBe(true);
    const total = [...want.values()].reduce((a, b) => a + b, 0);
    const observed = samples.filter((x) => x.name === 'intelepeer_event_duration_seconds_count' && x.labels.query === 'exits').reduce((a, x) => a + x.value, 0);
    expect(observed).toBe(total);
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('exits', { result: 'data' }))).toBe(1);
    expect(value(samples, 'intelepeer_query_counted_until_timestamp_seconds', q('exits'))).toBe(end / 1000);
    expect(value(samples, 'intelepeer_query_result_rows_total', q('exits'))).toBe(total);
    expect(value(samples, 'intelepeer_query_result_bytes_total', q('exits'))).toBeGreaterThan(0);
    expect(value(samples, 'intelepeer_sftp_up', {})).toBe(1);
    for (const phase of ['queued', 'running', 'downloading']) expect(value(samples, 'intelepeer_query_jobs', q('exits', { phase }))).toBe(0);
    // Nothing more until the next quarter hour: then [end, tick - 15m), counted, the total growing by exactly its events.
    const tick = minuteOf(START) + 15 * MINUTE - (minuteOf(START) % (15 * MINUTE));
    s.clock.set(tick + 5_000);
    await s.run();
    s.clock.advance(30_000);
    ({ samples } = await s.run());
    const all = expected(s.sim, 'ApplicationExitEvent', ['FlowName', 'ExitReason'], from, tick - 15 * MINUTE);
    expect(counted(samples, 'exits', ['FlowName', 'ExitReason'])).toEqual(all);
    expect(fake(s.sim).queries()).toHaveLength(2);
    expect(s.logs.filter((l) => JSON.stringify(l).includes('placeholder'))).toEqual([]);
  });

  it('a Failed query (no data) is an interval with zero events, not an error', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    stack = await boot(config(dir, `      - { name: none, event: DtmfEvent, filters: { FlowId: { $eq: no-such-flow } }, group_by: [ErrorReason] }`));
    const s = stack;
    await s.run();
    s.clock.advance(30_000);
    const { result, samples } = await s.run();
    expect(result).toBe('success');
    expect(fake(s.sim).queries()[0]!.status).toBe('Failed');
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('none', { result: 'no_data' }))).toBe(1);
    expect(samples.filter((x) => x.name === 'intelepeer_events_total')).toEqual([]);
    expect(value(samples, 'intelepeer_query_failures_total', q('none', { reason: 'status' }))).toBe(0);
  });

  it('three queries due: two run, the third waits its turn; a 429 from a slot taken elsewhere backs off and is counted; every interval counted once', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    const queries = ['ApplicationExitEvent', 'DtmfEvent', 'CallEvent'].map((e, i) => `      - { name: q${i}, event: ${e}, schedule: "*/15 * * * *", group_by: [FlowName] }`).join('\n');
    stack = await boot(config(dir, queries));
    const s = stack;
    let { samples } = await s.run();
    const phases = (phase: string) => ['q0', 'q1', 'q2'].reduce((n, name) => n + value(samples, 'intelepeer_query_jobs', q(name, { phase })), 0);
    expect(phases('running')).toBe(2);
    expect(phases('queued')).toBe(1);
    expect(fake(s.sim).queries()).toHaveLength(2);
    // Someone else's query takes a slot as ours end: our third submit is refused with 429.
    s.clock.advance(30_000);
    const res = await fetch(`${s.sim.url}/intelepeer/_rest/v4/authenticate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'demo-intelepeer', password: 'demo-intelepeer-password' }) });
    const { token } = (await res.json()) as { token: string };
    const other = (from: string) => fetch(`${s.sim.url}/intelepeer/_rest/v4/dwh/Q`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ timestamp: { $gte: from, $lt: '2026-11-23T19:00:00Z' }, data: { MsgEvent: { fields: ['Channel'] } } }),
    });
    // The two of ours are done by now (Completed), so these two take both slots.
    expect((await other('2026-11-23T18:00:00Z')).status).toBe(201);
    expect((await other('2026-11-23T18:30:00Z')).status).toBe(201);
    ({ samples } = await s.run());
    expect(['q0', 'q1', 'q2'].reduce((n, name) => n + value(samples, 'intelepeer_query_failures_total', q(name, { reason: 'throttled' })), 0)).toBe(1);
    expect(phases('queued')).toBe(1);
    // Backed off 30 s; by then the other queries are done: submitted, followed, counted.
    for (let i = 0; i < 4; i++) {
      s.clock.advance(30_000);
      ({ samples } = await s.run());
    }
    expect(phases('queued') + phases('running') + phases('downloading')).toBe(0);
    const end = minuteOf(START) - 15 * MINUTE;
    ['ApplicationExitEvent', 'DtmfEvent', 'CallEvent'].forEach((e, i) => {
      expect(counted(samples, `q${i}`, ['FlowName'])).toEqual(expected(s.sim, e, ['FlowName'], end - 60 * MINUTE, end));
    });
  });

  it('a restart with a job in flight and one completed meanwhile counts each interval exactly once', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    const queries = [
      '      - { name: a, event: CallEvent, schedule: "* * * * *", lag: 2m, initial_lookback: 10m, group_by: [Direction] }',
      '      - { name: b, event: MsgEvent, schedule: "*/2 * * * *", lag: 2m, initial_lookback: 10m, group_by: [Channel] }',
    ].join('\n');
    stack = await boot(config(dir, queries));
    let s = stack;
    const { sim, clock } = s;
    clock.set(minuteOf(START) + 50_000); // 20:00:50
    await s.run(); // both first intervals submitted (Pending 20 s)
    // 20:01:10: both counted; a's next interval submitted, Pending for 3 minutes.
    clock.advance(20_000);
    fake(sim).setPendingMs(180_000);
    await s.run();
    // 20:02:10: a's query runs on; b's next interval submitted, Pending for 20 s.
    clock.advance(MINUTE);
    fake(sim).setPendingMs(20_000);
    await s.run();
    const status = (schema: string) => fake(sim).queries().filter((x) => x.schema === schema).at(-1)!.status;
    expect(status('CallEvent')).toBe('Pending');
    // Down for 40 s: b's query completes meanwhile; a's is still in flight at the restart.
    await s.app.stop();
    clock.advance(40_000);
    expect(status('MsgEvent')).toBe('Completed');
    expect(status('CallEvent')).toBe('Pending');
    stack = await boot(config(dir, queries), { sim, clock });
    s = stack;
    let { samples } = await s.run();
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('b', { result: 'data' }))).toBe(2);
    // a's query from before the restart, and its next interval, which waited for b's slot.
    expect(value(samples, 'intelepeer_query_jobs', q('a', { phase: 'running' }))).toBe(2);
    for (let i = 0; i < 8; i++) {
      clock.advance(30_000);
      ({ samples } = await s.run());
    }
    // Every interval cut so far, counted once: each query's counters equal the events from its
    // first interval's start to where its counting stands.
    for (const [name, event, field] of [['a', 'CallEvent', 'Direction'], ['b', 'MsgEvent', 'Channel']] as const) {
      const until = value(samples, 'intelepeer_query_counted_until_timestamp_seconds', q(name)) * 1000;
      expect(until).toBeGreaterThan(minuteOf(START) + 2 * MINUTE);
      expect(counted(samples, name, [field])).toEqual(expected(sim, event, [field], minuteOf(START) - 12 * MINUTE, until));
    }
    // No interval submitted twice: each schema's queries cover disjoint intervals.
    const intervals = fake(sim).queries().map((x) => [x.schema, x.from, x.to] as const).sort((x, y) => x[0].localeCompare(y[0]) || x[1] - y[1]);
    for (let i = 1; i < intervals.length; i++) if (intervals[i]![0] === intervals[i - 1]![0]) expect(intervals[i]![1]).toBeGreaterThanOrEqual(intervals[i - 1]![2]);
  });

  it('a truncated .csv.gz and one with a broken row: counted as corrupt, logged once, read again and then submitted again; nothing counted twice', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    stack = await boot(config(dir, EXITS, '    max_download_attempts: 2'));
    const s = stack;
    fake(s.sim).corruptNext(1);
    await s.run();
    s.clock.advance(30_000);
    const first = await s.run();
    let samples = first.samples;
    expect(first.result).toBe('failure');
    expect(value(samples, 'intelepeer_query_failures_total', q('exits', { reason: 'corrupt' }))).toBe(1);
    expect(samples.filter((x) => x.name === 'intelepeer_events_total')).toEqual([]);
    expect(value(samples, 'intelepeer_query_jobs', q('exits', { phase: 'downloading' }))).toBe(1);
    // The same file again (still cut short): the second failure submits the interval again.
    s.clock.advance(30_000);
    ({ samples } = await s.run());
    expect(value(samples, 'intelepeer_query_failures_total', q('exits', { reason: 'corrupt' }))).toBe(2);
    expect(value(samples, 'intelepeer_query_intervals_retried_total', q('exits', { reason: 'corrupt' }))).toBe(1);
    expect(fake(s.sim).queries()).toHaveLength(2);
    // Its new result has a row of the wrong width: corrupt again; then a good one.
    fake(s.sim).garbleNext(1);
    for (let i = 0; i < 6; i++) {
      s.clock.advance(30_000);
      ({ samples } = await s.run());
    }
    const end = minuteOf(START) - 15 * MINUTE;
    expect(counted(samples, 'exits', ['FlowName', 'ExitReason'])).toEqual(expected(s.sim, 'ApplicationExitEvent', ['FlowName', 'ExitReason'], end - 60 * MINUTE, end));
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('exits', { result: 'data' }))).toBe(1);
    expect(value(samples, 'intelepeer_query_failures_total', q('exits', { reason: 'corrupt' }))).toBe(4);
    expect(s.logs.filter((l) => l.level >= 40 && String(l.msg).startsWith('result file of the query could not be read'))).toHaveLength(1);
  });

  it('a wrong SFTP host key is refused with a clear error, nothing read; with the right key the results are counted', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    stack = await boot(config(dir, EXITS));
    let s = stack;
    const { sim, clock } = s;
    await s.app.stop();
    const wrong = sshd!.otherFingerprint;
    stack = await startStack({ configText: config(dir, EXITS), on: { sim, clock }, collector: C, mutate: (c) => {
      (c.sources.intelepeer as { sftp: { hostKeyFingerprint: string } }).sftp.hostKeyFingerprint = wrong;
    } });
    s = stack;
    await s.run();
    clock.advance(30_000);
    const { result, samples: refused } = await s.run();
    let samples = refused;
    expect(result).toBe('failure');
    expect(value(samples, 'intelepeer_sftp_up', {})).toBe(0);
    expect(value(samples, 'intelepeer_sftp_errors_total', { reason: 'host_key' })).toBe(1);
    expect(samples.filter((x) => x.name === 'intelepeer_events_total')).toEqual([]);
    const line = s.logs.find((l) => l.msg?.startsWith('SFTP failed'));
    expect(JSON.stringify(line)).toContain(wrong);
    expect(JSON.stringify(line)).toContain(sshd!.fingerprint);
    expect(sshd!.log()).not.toMatch(/Accepted publickey/);
    await s.app.stop();
    stack = await boot(config(dir, EXITS), { sim, clock });
    s = stack;
    clock.advance(30_000);
    ({ samples } = await s.run());
    expect(value(samples, 'intelepeer_sftp_up', {})).toBe(1);
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('exits', { result: 'data' }))).toBe(1);
  });

  it('a query IntelePeer refuses as written (400) waits alone, doubling; the other queries go on; a changed query starts its counters again, the others keep theirs', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    const good = '      - { name: calls, event: CallEvent, schedule: "* * * * *", lag: 2m, initial_lookback: 10m, group_by: [Direction] }';
    const bad = '      - { name: broken, event: DtmfEvent, schedule: "* * * * *", lag: 2m, initial_lookback: 10m, group_by: [NoSuchField] }';
    stack = await boot(config(dir, [bad, good].join('\n')));
    let s = stack;
    const { sim, clock } = s;
    let { samples } = await s.run();
    expect(value(samples, 'intelepeer_query_failures_total', q('broken', { reason: 'rejected' }))).toBe(1);
    expect(value(samples, 'intelepeer_query_jobs', q('calls', { phase: 'running' }))).toBe(1);
    for (let i = 0; i < 6; i++) {
      clock.advance(30_000);
      ({ samples } = await s.run());
    }
    // 3 minutes: refused at 0, 30 s and 1m30 (30 s, then 60 s of wait); calls counted all along.
    expect(value(samples, 'intelepeer_query_failures_total', q('broken', { reason: 'rejected' }))).toBe(3);
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('calls', { result: 'data' }))).toBeGreaterThanOrEqual(3);
    expect(s.logs.filter((l) => l.level >= 40 && l.msg === 'IntelePeer refused the query as written: check its event, fields and filters')).toHaveLength(1);
    const calls = counted(samples, 'calls', ['Direction']);
    expect(calls.size).toBeGreaterThan(0);
    // The broken query fixed (another group_by): its counts start again; calls keeps its own.
    await s.app.stop();
    const fixed = '      - { name: broken, event: DtmfEvent, schedule: "* * * * *", lag: 2m, initial_lookback: 10m, group_by: [ErrorReason] }';
    stack = await boot(config(dir, [fixed, good].join('\n')), { sim, clock });
    s = stack;
    ({ samples } = await s.run());
    expect(counted(samples, 'calls', ['Direction'])).toEqual(calls);
    expect(value(samples, 'intelepeer_query_failures_total', q('broken', { reason: 'rejected' }))).toBe(3);
    // calls grouped by another field: its old counts would mean something else under the new
    // labels, so they are not taken over (a counter reset); its intervals go on from where they stood.
    await s.app.stop();
    const regrouped = '      - { name: calls, event: CallEvent, schedule: "* * * * *", lag: 2m, initial_lookback: 10m, group_by: [Disposition] }';
    stack = await boot(config(dir, [fixed, regrouped].join('\n')), { sim, clock });
    s = stack;
    ({ samples } = await s.run());
    expect(samples.filter((x) => x.name === 'intelepeer_events_total' && x.labels.query === 'calls')).toEqual([]);
    const until = value(samples, 'intelepeer_query_counted_until_timestamp_seconds', q('calls'));
    clock.advance(MINUTE);
    await s.run();
    clock.advance(30_000);
    ({ samples } = await s.run());
    const after = value(samples, 'intelepeer_query_counted_until_timestamp_seconds', q('calls')) * 1000;
    expect(counted(samples, 'calls', ['Disposition'])).toEqual(expected(sim, 'CallEvent', ['Disposition'], until * 1000, after));
  });

  it('a query IntelePeer never finishes is given up after query_timeout and its interval submitted again; a finished query naming no readable file is asked again', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    stack = await boot(config(dir, EXITS, '    query_timeout: 2m'));
    const s = stack;
    fake(s.sim).setPendingMs(3 * 3600_000);
    await s.run();
    fake(s.sim).setPendingMs(20_000);
    s.clock.advance(MINUTE);
    let { samples } = await s.run();
    expect(value(samples, 'intelepeer_query_jobs', q('exits', { phase: 'running' }))).toBe(1);
    s.clock.advance(MINUTE); // two minutes Pending: given up, submitted again at once
    ({ samples } = await s.run());
    expect(value(samples, 'intelepeer_query_failures_total', q('exits', { reason: 'timeout' }))).toBe(1);
    expect(value(samples, 'intelepeer_query_intervals_retried_total', q('exits', { reason: 'timeout' }))).toBe(1);
    const queries = fake(s.sim).queries();
    expect(queries).toHaveLength(2);
    expect([queries[1]!.from, queries[1]!.to]).toEqual([queries[0]!.from, queries[0]!.to]);
    // The new query finishes, but its answer names a file outside the login's home: refused,
    // counted as corrupt (and a parse error), asked again at the next run, then counted.
    const guid = queries[1]!.guid;
    s.clock.advance(30_000);
    s.sim.faults.set([
      { kind: 'body', status: 200, body: JSON.stringify({ status: 'Completed', guid }), match: guid, remaining: 1 },
      { kind: 'body', status: 200, body: JSON.stringify({ status: "Process finished. Download: [u'../../etc/passwd']", guid }), match: guid, remaining: 1 },
    ]);
    let result: string;
    ({ samples, result } = await s.run());
    expect(result).toBe('failure');
    expect(value(samples, 'intelepeer_query_failures_total', q('exits', { reason: 'corrupt' }))).toBe(1);
    expect(value(samples, 'conviva_exporter_parse_errors_total', { api: 'intelepeer', endpoint: 'dwh/Q/{guid}' })).toBe(1);
    s.sim.faults.clear();
    s.clock.advance(30_000);
    ({ samples, result } = await s.run());
    expect(result).toBe('success');
    const end = minuteOf(START) - 15 * MINUTE;
    expect(counted(samples, 'exits', ['FlowName', 'ExitReason'])).toEqual(expected(s.sim, 'ApplicationExitEvent', ['FlowName', 'ExitReason'], end - 60 * MINUTE, end));
    expect(value(samples, 'intelepeer_query_intervals_counted_total', q('exits', { result: 'data' }))).toBe(1);
  });

  it('the token is reused, and renewed once when the API answers 401', async (ctx) => {
    requireSshd(ctx);
    const dir = tempDir();
    stack = await boot(config(dir, EXITS));
    const s = stack;
    await s.run();
    s.clock.advance(30_000);
    await s.run();
    expect(fake(s.sim).authentications()).toBe(1);
    fake(s.sim).expireTokens();
    s.clock.set(minuteOf(START) + 15 * MINUTE - (minuteOf(START) % (15 * MINUTE)) + 5_000);
    const { result } = await s.run();
    expect(result).toBe('success');
    expect(fake(s.sim).authentications()).toBe(2);
    expect(fake(s.sim).queries()).toHaveLength(2);
  });
});
