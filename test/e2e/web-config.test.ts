import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startExporter, waitFor } from '../helpers/process.js';
import { prometheusApi } from '../helpers/prometheus-api.js';
import { makeTestPki } from '../helpers/tls.js';

// The exporter (demo mode) behind --web.config.file, scraped by Debian's prometheus over TLS with
// basic_auth and tls_config.ca_file: one job with the right password, one with a wrong one.
const work = mkdtempSync(join(tmpdir(), 'e2e-web-'));
const PASSWORD = 'e2e-scrape-password';
const procs: ChildProcess[] = [];
let exporterUrl = '';
let promUrl = '';
const { api, query } = prometheusApi(() => promUrl);





beforeAll(async () => {
  expect(spawnSync('prometheus', ['--version']).status, 'Debian package prometheus must be installed').toBe(0);
  const pki = makeTestPki(mkdtempSync(join(work, 'pki-')));
  copyFileSync(pki.serverCert, join(work, 'server.crt'));
  copyFileSync(pki.serverKey, join(work, 'server.key'));
  writeFileSync(join(work, 'web.yml'), `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: ${bcrypt.hashSync(PASSWORD, 6)}\n`);
  const exporter = await startExporter(['--demo', '--web.listen-address', '127.0.0.1:0', '--web.config.file', join(work, 'web.yml')]);
  procs.push(exporter.proc);
  exporterUrl = exporter.url;

  const job = (name: string, password: string) => ({
    job_name: name,
    scheme: 'https',
    tls_config: { ca_file: pki.caCert },
    basic_auth: { username: 'prometheus', password },
    static_configs: [{ targets: [new URL(exporterUrl).host] }],
  });
  const prom = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [job('tls-right-password', PASSWORD), job('tls-wrong-password', 'not-the-password')],
  };
  writeFileSync(join(work, 'prometheus.yml'), stringify(prom));
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  procs.push(spawn('prometheus', [`--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: 'ignore' }));
  await waitFor('prometheus ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined), 30_000);
});

afterAll(async () => {
  await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r).kill('SIGTERM')))));
  rmSync(work, { recursive: true, force: true });
});

describe("Debian's Prometheus scraping the exporter over TLS with basic auth", () => {
  it('the right password: up is 1 and the data series arrive', async () => {
    expect(exporterUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await waitFor('up 1 with the right password', async () => ((await query('up{job="tls-right-password"}'))[0]?.value[1] === '1' ? true : undefined), 20_000);
    const data = await waitFor('conviva data series', async () => {
      const r = await query('count({job="tls-right-password", __name__=~"conviva_.+", __name__!~"conviva_exporter_.+"})');
      return Number(r[0]?.value[1] ?? 0) > 0 ? r : undefined;
    }, 20_000);
    expect(Number(data[0]!.value[1])).toBeGreaterThan(10);
  });

  it('a wrong password: up is 0, the target says 401, and the exporter counts the refusals', async () => {
    await waitFor('up 0 with a wrong password', async () => ((await query('up{job="tls-wrong-password"}'))[0]?.value[1] === '0' ? true : undefined), 20_000);
    const targets = await api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>('targets?state=active');
    const wrong = targets.activeTargets.find((t) => t.labels.job === 'tls-wrong-password')!;
    expect(wrong.health).toBe('down');
    expect(wrong.lastError).toContain('401');
    await waitFor('auth failures counted', async () => (Number((await query('conviva_exporter_http_auth_failures_total{job="tls-right-password"}'))[0]?.value[1] ?? 0) > 0 ? true : undefined), 20_000);
  });
});
