import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import { Simulator } from '../../src/simulator/server.js';
import { labelName } from '../../src/sources/intelepeer/config.js';
import type { IntelePeerFake } from '../../src/sources/intelepeer/fake.js';
import { intelepeer } from '../../src/sources/intelepeer/index.js';
import { value, type ParsedSample } from '../helpers/exposition.js';
import { requireSshd, startSshd, type Sshd } from '../helpers/sshd.js';
import { MINUTE, startStack, type Stack } from '../helpers/stack.js';

// 48 quarter-hour intervals of three queries (12 simulated hours) against the simulator and
// Debian's sshd, with every fault the collector must survive: restarts (one of them a crash that
// loses the state written by a run that counted), 429s from slots taken elsewhere, truncated and
// garbled result files, canceled queries, status reads failing, the SFTP server down, the token
// revoked. At the end every intelepeer_events_total equals the events the simulator holds for the
// intervals counted (the rows it wrote into the result files), exactly.

const C = 'intelepeer_queries';
const START = Date.UTC(2026, 10, 23, 8, 0, 30);
const QUARTER = 15 * MINUTE;
const QUERIES = [
  { name: 'exits', event: 'ApplicationExitEvent', groupBy: ['FlowName', 'ExitReason'] },
  { name: 'dtmf', event: 'DtmfEvent', groupBy: ['FlowName', 'ErrorReason'] },
  { name: 'calls', event: 'CallEvent', groupBy: ['Direction', 'Disposition'] },
];

let stack: Stack | undefined;
let sshd: Sshd | undefined;
let dir: string | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  await sshd?.close();
  sshd = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const configText = (d: string) => `
engine: { staleness: 30m, shutdown_grace: 200ms, state_file: ${join(d, 'state.json')} }
sources:
  intelepeer:
    username: placeholder
    password: placeholder
    retries: 1
    retry_base_delay: 5ms
    retry_max_delay: 10ms
    request_timeout: 2s
    connect_timeout: 2s
    max_download_attempts: 2
    sftp:
      host: 127.0.0.1
      username: placeholder
      password: placeholder
      host_key_fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
      connect_timeout: 3s
    queries:
${QUERIES.map((q) => `      - { name: ${q.name}, event: ${q.event}, schedule: "*/15 * * * *", lag: 15m, initial_lookback: 15m, group_by: [${q.groupBy.join(', ')}] }`).join('\n')}
`;

function tally(samples: ParsedSample[], query: string, groupBy: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== 'intelepeer_events_total' || s.labels.query !== query) continue;
    const k = JSON.stringify(groupBy.map((f) => s.labels[labelName(f)] ?? ''));
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

describe('IntelePeer: 48 intervals with restarts, 429s and corrupt files', () => {
  it('every intelepeer_events_total equals the events the simulator wrote for its intervals, exactly', async (ctx) => {
    requireSshd(ctx);
    dir = mkdtempSync(join(tmpdir(), 'intelepeer-48-'));
    const d = dir;
    sshd = await startSshd();
    const clock = new ManualClock(START);
    const sim = new Simulator({ clock, seed: 48, sources: [intelepeer], filesDir: sshd.root, sftp: { host: sshd.host, port: sshd.port, username: sshd.username, fingerprint: sshd.fingerprint, privateKeyPath: sshd.privateKeyPath } });
    await sim.listen('127.0.0.1', 0);
    const fake = sim.fake<IntelePeerFake>('intelepeer');
    const boot = async () => {
      stack = await startStack({ configText: configText(d), on: { sim, clock }, collector: C });
      return stack;
    };
    let s = await boot();
    // The first run (5 minutes in) cuts the first interval: initial_lookback before its minute minus the lag.
    const firstFrom = Math.floor((START + 5 * MINUTE) / MINUTE) * MINUTE - 15 * MINUTE - 15 * MINUTE;
    const auth = async () => {
      const r = await fetch(`${sim.url}/intelepeer/_rest/v4/authenticate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'demo-intelepeer', password: 'demo-intelepeer-password' }) });
      return ((await r.json()) as { token: string }).token;
    };
    /** Someone else's query, taking one of the customer's two slots for its pending time. */
    const foreign = async () => {
      const token = await auth();
      await fetch(`${sim.url}/intelepeer/_rest/v4/dwh/Q`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ timestamp: { $gte: '2026-11-20T00:00:00Z', $lt: '2026-11-20T01:00:00Z' }, data: { MsgEvent: { fields: ['Channel'] } } }),
      });
    };
    const seen = { runs: 0, failures: 0, restarts: 0, crashes: 0 };
    // Runs every 5 minutes for 12 hours: three runs a quarter hour, each interval cut at its tick.
    const steps = (12 * 60) / 5;
    for (let i = 1; i <= steps; i++) {
      clock.advance(5 * MINUTE);
      // The faults, spread over the 12 hours.
      if (i % 29 === 3) fake.corruptNext(1);
      if (i % 31 === 7) fake.garbleNext(1);
      if (i % 23 === 5) fake.cancelNext(1);
      if (i % 19 === 11) {
        await foreign();
        await foreign();
      }
      if (i % 37 === 13) fake.expireTokens();
      if (i % 41 === 17) sim.faults.set([{ kind: 'status', status: 503, match: '/status' }]);
      if (i % 43 === 19) await sshd.stop();
      const result = (await s.run()).result;
      seen.runs++;
      if (result !== 'success') seen.failures++;
      sim.faults.clear();
      if (i % 43 === 19) await sshd.restart();
      if (i % 47 === 23) {
        // A restart: the state file carries every job and counter.
        await s.app.stop();
        s = await boot();
        seen.restarts++;
      }
      if (i % 53 === 29) {
        // A crash right before a run's last state write: the state file as it was before the run,
        // after the run counted intervals and submitted queries (their results are read again,
        // their intervals submitted again: the half-done run must not count twice).
        await s.app.stop();
        copyFileSync(join(d, 'state.json'), join(d, 'before.json'));
        s = await boot();
        clock.advance(5 * MINUTE);
        await s.run();
        await s.app.stop();
        copyFileSync(join(d, 'before.json'), join(d, 'state.json'));
        s = await boot();
        seen.crashes++;
      }
    }
    // Quiet at the end: every interval cut is counted.
    for (let i = 0; i < 10; i++) {
      clock.advance(MINUTE);
      await s.run();
    }
    const samples = await s.samples();
    const lastTick = Math.floor(clock.now() / QUARTER) * QUARTER;
    const wanted = new Map<string, number>();
    for (const q of QUERIES) {
      const until = value(samples, 'intelepeer_query_counted_until_timestamp_seconds', { query: q.name }) * 1000;
      expect(until, `${q.name}: everything cut is counted`).toBe(lastTick - 15 * MINUTE);
      for (const phase of ['queued', 'running', 'downloading']) expect(value(samples, 'intelepeer_query_jobs', { query: q.name, phase })).toBe(0);
      const expected = new Map<string, number>();
      for (const e of fake.events(q.event, firstFrom, until)) {
        const k = JSON.stringify(q.groupBy.map((f) => e[f] ?? ''));
        expected.set(k, (expected.get(k) ?? 0) + 1);
      }
      expect(tally(samples, q.name, q.groupBy), q.name).toEqual(expected);
      wanted.set(q.name, [...expected.values()].reduce((a, b) => a + b, 0));
    }
    // 48 quarter-hours (and the first) for each query, every fault met at least once.
    expect((lastTick - 15 * MINUTE - firstFrom) / QUARTER).toBeGreaterThanOrEqual(48);
    const sum = (name: string, match: Record<string, string>) => samples.filter((x) => x.name === name && Object.entries(match).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
    expect(sum('intelepeer_query_failures_total', { reason: 'throttled' })).toBeGreaterThan(0);
    expect(sum('intelepeer_query_failures_total', { reason: 'corrupt' })).toBeGreaterThan(0);
    expect(sum('intelepeer_query_intervals_retried_total', { reason: 'canceled' })).toBeGreaterThan(0);
    expect(sum('intelepeer_sftp_errors_total', {})).toBeGreaterThan(0);
    expect(seen.restarts).toBeGreaterThan(0);
    expect(seen.crashes).toBeGreaterThan(0);
    expect(fake.authentications()).toBeGreaterThan(seen.restarts + 1);
    console.info(`intelepeer-48: ${seen.runs} runs (${seen.failures} partly failed), ${seen.restarts + seen.crashes} restarts (${seen.crashes} after a lost state write), events counted ${JSON.stringify(Object.fromEntries(wanted))}, queries submitted ${fake.queries().length}`);
  }, 240_000);
});
