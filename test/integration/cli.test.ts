import { spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseExposition, value } from '../helpers/exposition.js';
import { MAIN as main, ROOT as root, startExporter, waitFor } from '../helpers/process.js';
import { requirePromtool } from '../helpers/promtool.js';

// These run the built CLI (npm test builds first), as an operator would.
const fixtures = join(root, 'test/fixtures/config');

function run(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000 });
}

let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill('SIGKILL');
  child = undefined;
});

describe('CLI', () => {
  it('--check-config exits 2 and names the key path of each problem', () => {
    const r = run(['--config', join(fixtures, 'bad-missing-secret.yml'), '--check-config']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('bad-missing-secret.yml: sources.conviva.accounts[0].client_secret: required (or client_secret_file)');
  });

  it('a bad config stops start-up with exit 2', () => {
    const r = run(['--config', join(fixtures, 'bad-values.yml')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('sources.conviva.realtime.group_limit: Too big: expected number to be <=500');
  });

  it('--check-config exits 0 on a valid file', () => {
    const r = run(['--config', join(fixtures, 'ok-minimal.yml'), '--check-config']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('configuration is valid');
  });

  it('--check-config prints a warning with the arithmetic when a minute cannot fit in the request budget, and exits 0', () => {
    const r = run(['--config', join(fixtures, 'warn-budget.yml'), '--check-config']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('configuration is valid (1 warning)');
    expect(r.stderr).toContain(
      'warn-budget.yml: warning: sources.conviva.realtime_requests_per_minute: a minute needs 18 requests per account (real time: 3 filters × (1 + 3 group_by) × 1 metric chunks = 12; DPI Flow: 2 models named in include × (1 + 2 group_by) = up to 6)',
    );
    expect(r.stderr).toContain('more than the budget of 15: runs will end early with BUDGET_EXHAUSTED');
  });

  it('a config file that cannot be read is named once, with the reason', () => {
    const r = spawnSync(process.execPath, [main, '--config', 'nope.yml'], { encoding: 'utf8', timeout: 60_000, cwd: mkdtempSync(join(tmpdir(), 'ce-')) });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('nope.yml: cannot read file: no such file or directory (ENOENT)');
  });

  it('--once piped into a reader that stops early (| head) exits quietly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ce-'));
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${main}" --demo --once 2>"${dir}/err" | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout.trim()).toBe('0');
    const err = readFileSync(join(dir, 'err'), 'utf8');
    expect(err).not.toContain('EPIPE');
    expect(err).not.toMatch(/^\s+at /m);
  });

  it('a port already taken stops start-up with one clear line, no stack trace', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as AddressInfo).port;
    try {
      const r = spawnSync(process.execPath, [main, '--demo', '--web.listen-address', `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(1);
      const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const fatal = lines.filter((l) => l.level === 60);
      expect(fatal).toHaveLength(1);
      expect(fatal[0]).toMatchObject({ msg: `cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`, code: 'EADDRINUSE' });
      expect(r.stderr).not.toMatch(/\s+at /);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('a YAML bomb or a YAML error on an inline secret exits 2 with the reason, never the secret', () => {
    for (const f of ['bad-yaml-bomb.yml', 'bad-yaml-unresolved-alias.yml', 'bad-yaml-secret-in-error.yml']) {
      const r = run(['--config', join(fixtures, f), '--check-config']);
      expect(r.status, f).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^[^\\n]*${f}: yaml: `));
      expect(r.stderr).not.toContain('s3cr3t');
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });

  it('--shard and --total-shards: a bad value or one without the other exits 2 with the reason and usage', () => {
    for (const [args, message] of [
      [['--shard', '2', '--total-shards', '2'], '--shard: expected a whole number from 0 to 1 (--total-shards 2), got "2"'],
      [['--shard', '1'], '--shard and --total-shards go together: give both, or neither (no sharding)'],
      [['--total-shards', '0', '--shard', '0'], '--total-shards: expected a whole number from 1 to 1000, got "0"'],
      [['--shard', 'x', '--total-shards', '3'], '--shard: expected a whole number from 0 to 2 (--total-shards 3), got "x"'],
    ] as const) {
      const r = run(['--demo', '--check-config', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(message);
      expect(r.stderr).toContain('Usage:');
    }
  });

  it('--check-config with --total-shards prints what each shard polls', () => {
    const r = run(['--demo', '--check-config', '--shard', '0', '--total-shards', '2']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('demo.yml: shard 0 of 2 polls conviva/demo, invision/dataflow/df-hourly-sales, invision/dataflow/df-legacy-export, intelepeer/flow-exits (limits: conviva.ip_requests_per_5_minutes 1500 of 3000, intelepeer.max_running_queries 1 of 2)');
    expect(r.stdout).toContain('demo.yml: shard 1 of 2 polls conviva/demo-eu, invision/dataflow/df-nightly-load, invision/dataflow/df-budget-sync, invision/monitoring, intelepeer/dtmf-errors, intelepeer/calls, intelepeer/messages (limits: conviva.ip_requests_per_5_minutes 1500 of 3000, intelepeer.max_running_queries 1 of 2)');
    expect(r.stdout).toContain('configuration is valid');
  });

  it('a shard polls only its units, on the engine thread, and keeps its shard across a SIGHUP reload', async () => {
    const ex = await startExporter(['--demo', '--shard', '1', '--total-shards', '2', '--web.listen-address', '127.0.0.1:0']);
    child = ex.proc;
    const metric = (t: string, line: string) => t.split('\n').find((l) => l.startsWith(line));
    const text = await waitFor('conviva metrics', async () => {
      const t = await (await fetch(`${ex.url}/metrics`)).text();
      return t.includes('conviva_attempts{') ? t : undefined;
    });
    const accounts = (t: string) => new Set(parseExposition(t).filter((s) => s.name === 'conviva_attempts').map((s) => s.labels.account));
    expect(accounts(text)).toEqual(new Set(['demo-eu'])); // conviva/demo hashes to shard 0
    expect(metric(text, 'conviva_exporter_shard_ordinal ')).toBe('conviva_exporter_shard_ordinal 1');
    expect(metric(text, 'conviva_exporter_total_shards ')).toBe('conviva_exporter_total_shards 2');
    expect(metric(text, 'conviva_exporter_shard_units{source="conviva"}')).toBe('conviva_exporter_shard_units{source="conviva"} 1');
    child.kill('SIGHUP');
    await waitFor('reload', async () => ex.logs.find((l) => l.msg === 'configuration reloaded'));
    const units = ex.logs.filter((l) => l.msg === 'sharding: the units of upstream work this replica polls').map((l) => l.units);
    expect(units).toHaveLength(2);
    expect(units[1]).toEqual(units[0]);
    expect(units[0]).toContain('conviva/demo-eu');
    await new Promise((r) => setTimeout(r, 1500)); // the self-metrics are rendered once a second
    const after = await (await fetch(`${ex.url}/metrics`)).text();
    expect(metric(after, 'conviva_exporter_total_shards ')).toBe('conviva_exporter_total_shards 2');
    expect(metric(after, 'conviva_exporter_shard_units{source="conviva"}')).toBe('conviva_exporter_shard_units{source="conviva"} 1');
    expect(accounts(after)).toEqual(new Set(['demo-eu']));
    child.kill('SIGTERM');
    expect(await ex.exited).toBe(0);
  });

  it('unknown flags exit 2 with usage', () => {
    const r = run(['--bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('Usage:');
  });

  it('--demo --once prints exposition with simulator numbers, exit 0, and promtool accepts it', (ctx) => {
    const r = run(['--demo', '--once']);
    expect(r.status).toBe(0);
    const samples = parseExposition(r.stdout);
    expect(value(samples, 'conviva_exporter_collector_up', { collector: 'conviva_realtime' })).toBe(1);
    expect(value(samples, 'conviva_attempts', { account: 'demo', filter: 'all', dimension: 'total', value: 'total' })).toBeGreaterThan(0);
    requirePromtool(ctx); // fails in CI without promtool, skipped elsewhere
    const check = spawnSync('promtool', ['check', 'metrics'], { input: r.stdout, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('--once exits 1 when a collector fails, and still prints the health series', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ce-'));
    const cfg = join(dir, 'c.yml');
    writeFileSync(cfg, `sources:\n  conviva:\n    base_url: http://127.0.0.1:9\n    retries: 0\n    accounts: [{ name: a, client_id: b, client_secret: c }]\n    realtime: { timeout: 5s }\n`);
    const r = run(['--config', cfg, '--once']);
    expect(r.status).toBe(1);
    expect(value(parseExposition(r.stdout), 'conviva_exporter_collector_up', { collector: 'conviva_realtime' })).toBe(0);
    expect(r.stderr).toContain('collector run failed');
    expect(r.stderr).not.toContain('"c"'); // the secret is nowhere in the logs
  });

  it('serves from the main thread while the engine runs on a thread of its own, at a lower priority', async () => {
    const ex = await startExporter(['--demo', '--web.listen-address', '127.0.0.1:0']);
    child = ex.proc;
    await waitFor('a first publish', async () => ((await fetch(`${ex.url}/-/ready`)).status === 200 ? true : undefined));
    // /proc/<pid>/task/<tid>/stat: field 19 is the nice value of each thread of the process
    const pid = ex.proc.pid!;
    const nice = (tid: string) => Number(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[16]);
    const tids = readdirSync(`/proc/${pid}/task`);
    expect(nice(String(pid))).toBe(0); // the serving (main) thread
    expect(tids.filter((t) => nice(t) === 10).length).toBeGreaterThanOrEqual(1); // the engine thread (and threads it started)
  });

  it('--demo serves conviva_* metrics, reloads on SIGHUP (keeping the old config on a bad file) and exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ce-'));
    const cfg = join(dir, 'demo.yml');
    copyFileSync(join(root, 'config/demo.yml'), cfg);
    const ex = await startExporter(['--demo', '--config', cfg, '--web.listen-address', '127.0.0.1:0']);
    child = ex.proc;
    const text = await waitFor('conviva metrics', async () => {
      const t = await (await fetch(`${ex.url}/metrics`)).text();
      return t.includes('conviva_attempts{') ? t : undefined;
    });
    expect(value(parseExposition(text), 'conviva_exporter_collector_up', { collector: 'conviva_realtime' })).toBe(1);
    // Ready once every collector (the other sources' too) has published a first run.
    await waitFor('ready', async () => ((await fetch(`${ex.url}/-/ready`)).status === 200 ? true : undefined));

    writeFileSync(cfg, 'sources: { conviva: { accounts: [] } }\n');
    child!.kill('SIGHUP');
    const failed = await waitFor('reload failure', async () => ex.logs.find((l) => l.msg === 'configuration reload failed: keeping the running configuration'));
    expect(failed.problems).toEqual(['sources.conviva.accounts: needs at least one account']);
    expect((await fetch(`${ex.url}/metrics`)).status).toBe(200);

    writeFileSync(cfg, 'sources:\n  conviva:\n    accounts: [{ name: demo, client_id: demo-client, client_secret: demo-secret }]\n');
    child!.kill('SIGHUP');
    await waitFor('reload', async () => ex.logs.find((l) => l.msg === 'configuration reloaded'));
    await waitFor('new pipeline published', async () => {
      const t = await (await fetch(`${ex.url}/metrics`)).text();
      const data = t.split('\n').filter((l) => l.startsWith('conviva_attempts{'));
      return data.length > 0 && !data.some((l) => l.includes('account="demo-eu"')) ? true : undefined;
    });

    // the removed account's budget series went with it
    expect(await (await fetch(`${ex.url}/metrics`)).text()).not.toContain('account="demo-eu"');
    child!.kill('SIGTERM');
    expect(await ex.exited).toBe(0);
    expect(ex.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(JSON.stringify(ex.logs)).not.toContain('demo-secret');
  });
});
