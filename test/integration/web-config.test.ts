import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createLogger } from '../../src/logger.js';
import { Simulator } from '../../src/simulator/server.js';
import { BASE_CONFIG } from '../conviva/stack.js';
import { parseExposition, value } from '../helpers/exposition.js';
import { MAIN, waitFor } from '../helpers/process.js';
import { T0, useSimulator, type LogLine } from '../helpers/stack.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';

// The exporter (App, inline engine, the simulator) behind --web.config.file, spoken to over real
// TLS with certificates openssl makes for the test.
const PASSWORD = 'scrape-me-please';
const NEW_PASSWORD = 'rotated-password';
const HASH = bcrypt.hashSync(PASSWORD, 4);
const NEW_HASH = bcrypt.hashSync(NEW_PASSWORD, 4);
const auth = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const root = mkdtempSync(join(tmpdir(), 'webtls-'));
let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki(mkdtempSync(join(root, 'pki-')));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Running {
  app: App;
  sim: Simulator;
  url: string;
  file: string;
  logs: LogLine[];
}
let running: Running | undefined;
afterEach(async () => {
  await running?.app.stop();
  await running?.sim.close();
  running = undefined;
});

/** The exporter with `webConfig` (written beside copies of the PKI files), one collector run done. */
async function start(webConfig: string): Promise<Running> {
  const dir = mkdtempSync(join(root, 'run-'));
  for (const f of ['ca.crt', 'server.crt', 'server.key']) copyFileSync(join(pki.dir, f), join(dir, f));
  const file = join(dir, 'web.yml');
  writeFileSync(file, webConfig);
  const clock = new ManualClock(T0);
  const sim = new Simulator({ clock, seed: 7 });
  await sim.listen('127.0.0.1', 0);
  const config = parseConfig(BASE_CONFIG, {}, process.cwd());
  useSimulator(config, sim.endpoints);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const app = await App.create({ config, log: createLogger('info', sink), clock, webConfigFile: file });
  const url = await app.serve({ host: '127.0.0.1', port: 0 });
  expect(await app.runner.run('conviva_realtime')).toBe('success');
  running = { app, sim, url, file, logs };
  return running;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request on a new connection, trusting the test CA (plus what `tls` adds: client cert, versions). */
function get(url: string, opts: { authorization?: string; tls?: RequestOptions } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: pki.read(pki.caCert), agent: false, headers: opts.authorization ? { authorization: opts.authorization } : {}, ...opts.tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

const TLS = 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n';

describe('--web.config.file: TLS and basic auth on the real exporter', () => {
  it('serves /metrics over TLS to the right password only; /-/healthy open; plain HTTP refused; a new password applies without restart', async () => {
    const r = await start(`${TLS}http_server_config:\n  headers: { X-Content-Type-Options: nosniff }\nbasic_auth_users:\n  prometheus: ${HASH}\n`);
    expect(r.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const ok = await get(`${r.url}/metrics`, { authorization: auth('prometheus', PASSWORD) });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
    const samples = parseExposition(ok.body);
    expect(value(samples, 'conviva_exporter_collector_up', { collector: 'conviva_realtime' })).toBe(1);
    expect(samples.some((s) => s.name === 'conviva_attempts')).toBe(true);

    for (const [what, authorization] of [['wrong password', auth('prometheus', 'nope')], ['unknown user', auth('grafana', PASSWORD)], ['no credentials', undefined]] as const) {
      const refused = await get(`${r.url}/metrics`, { authorization });
      expect(refused.status, what).toBe(401);
      expect(refused.headers['www-authenticate'], what).toBe('Basic');
      expect(refused.body, what).not.toContain('conviva_');
    }
    expect((await get(`${r.url}/`)).status).toBe(401);
    const healthy = await get(`${r.url}/-/healthy`);
    expect(healthy.status).toBe(200);
    expect(healthy.headers['x-content-type-options']).toBe('nosniff');

    // plain HTTP to the TLS port gets no answer
    const plain = new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${r.url.replace('https:', 'http:')}/-/healthy`, (res) => resolve(res.statusCode ?? 0));
      req.setTimeout(5000, () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
    await expect(plain).rejects.toThrow();

    const text = await r.app.text();
    expect(value(parseExposition(text), 'conviva_exporter_http_auth_failures_total')).toBe(4);

    // the file changes on disk: the new password is in force within about a second, the old one is not
    writeFileSync(r.file, `${TLS}basic_auth_users:\n  prometheus: ${NEW_HASH}\n`);
    await waitFor('new password accepted', async () => ((await get(`${r.url}/metrics`, { authorization: auth('prometheus', NEW_PASSWORD) })).status === 200 ? true : undefined), 10_000);
    expect((await get(`${r.url}/metrics`, { authorization: auth('prometheus', PASSWORD) })).status).toBe(401);
    expect(r.logs.filter((l) => l.msg === 'web configuration reloaded')).toHaveLength(1);
    expect(value(parseExposition(await r.app.text()), 'conviva_exporter_web_config_reloads_total', { result: 'success' })).toBe(1);
    expect(JSON.stringify(r.logs)).not.toContain(PASSWORD);
  });

  it('RequireAndVerifyClientCert: no client certificate or one from another CA is refused, the CA\'s is accepted; a reload changes the policy', async () => {
    const r = await start(`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n`);
    await expect(get(`${r.url}/metrics`)).rejects.toThrow();
    await expect(get(`${r.url}/metrics`, { tls: { cert: pki.read(pki.otherClientCert), key: pki.read(pki.otherClientKey) } })).rejects.toThrow();
    const ok = await get(`${r.url}/metrics`, { tls: { cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) } });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('conviva_exporter_collector_up{collector="conviva_realtime"} 1');

    // client_allowed_sans: the CA's certificate is refused when its SANs are not listed
    writeFileSync(r.file, `${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [someone-else.example]\n`);
    await waitFor('SAN list in force', async () => {
      try {
        await get(`${r.url}/metrics`, { tls: { cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) } });
        return undefined;
      } catch {
        return true;
      }
    }, 10_000);

    // back to no client certificates: a client without one gets in
    writeFileSync(r.file, TLS);
    await waitFor('NoClientCert in force', async () => ((await get(`${r.url}/metrics`).catch(() => undefined))?.status === 200 ? true : undefined), 10_000);
  });

  it('min_version TLS13 refuses a TLS 1.2 client and serves a TLS 1.3 one', async () => {
    const r = await start(`${TLS}  min_version: TLS13\n`);
    await expect(get(`${r.url}/-/healthy`, { tls: { maxVersion: 'TLSv1.2' } })).rejects.toThrow(/protocol version|alert/i);
    expect((await get(`${r.url}/-/healthy`, { tls: { minVersion: 'TLSv1.3' } })).status).toBe(200);
  });
});

describe('--web.config.file on the command line', () => {
  it('a bad file stops start-up with exit 2, every problem printed with the file name', () => {
    const dir = mkdtempSync(join(root, 'cli-'));
    const file = join(dir, 'web.yml');
    writeFileSync(file, 'tls_server_config:\n  cert_file: server.crt\n  min_version: TLS9\nbasic_auth_users:\n  alice: hunter2\n');
    const r = spawnSync(process.execPath, [MAIN, '--demo', '--web.listen-address', '127.0.0.1:0', '--web.config.file', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `${file}: tls_server_config.min_version: unknown TLS version "TLS9"; expected TLS10, TLS11, TLS12 or TLS13`,
      `${file}: basic_auth_users.alice: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04 to 31, and 60 characters in all)`,
    ]);
  });

  it('--check-config does not read --web.config.file', () => {
    const r = spawnSync(process.execPath, [MAIN, '--demo', '--check-config', '--web.config.file', join(tmpdir(), 'no-such-web.yml')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
  });
});
