import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { Registry } from 'prom-client';
import { createBudgetMetrics, RequestBudget, WindowBudget } from '../../src/engine/limits.js';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import { createHttpMetrics } from '../../src/http/metrics.js';
import { HttpClient, jsonDepth, parseRetryAfter } from '../../src/http/client.js';
import { UpstreamError } from '../../src/http/errors.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A loopback server answering each request with the next status of `statuses` (the last one repeats). */
async function serve(statuses: number[], headers: Record<string, string> = {}): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  server = createServer((req, res) => {
    const status = statuses[Math.min(hits, statuses.length - 1)]!;
    hits++;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ ok: status < 300 }));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

function client(baseUrl: string, over: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}) {
  const registry = new Registry();
  const metrics = createHttpMetrics(registry);
  return {
    metrics,
    http: new HttpClient({
      api: 'test', baseUrl, connectTimeoutMs: 500, headersTimeoutMs: 500, bodyTimeoutMs: 500,
      maxRetries: 3, retryBaseDelayMs: 1, retryMaxDelayMs: 5, concurrency: 2, metrics, log: pino({ level: 'silent' }),
      parseErrors: createEngineMetrics(registry, 't').parseErrors,
      ...over,
    }),
  };
}

const opts = (deadlineIn = 10_000) => ({ path: '/x', endpoint: 'x', signal: new AbortController().signal, deadline: Date.now() + deadlineIn });

describe('HttpClient', () => {
  it('retries 5xx up to the limit, then throws UPSTREAM_STATUS with the status', async () => {
    const s = await serve([503]);
    const { http, metrics } = client(s.url);
    const err = await http.json(opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'UPSTREAM_STATUS', status: 503, api: 'test', endpoint: 'x' });
    expect(s.hits()).toBe(4);
    expect((await metrics.retries.get()).values[0]!.value).toBe(3);
    await http.close();
  });

  it('does not retry a 4xx other than 429', async () => {
    const s = await serve([400, 200]);
    const { http } = client(s.url);
    await expect(http.json(opts())).rejects.toMatchObject({ code: 'UPSTREAM_STATUS', status: 400 });
    expect(s.hits()).toBe(1);
    await http.close();
  });

  it('never retries a non-idempotent POST', async () => {
    const s = await serve([503, 200]);
    const { http } = client(s.url);
    await expect(http.json({ ...opts(), method: 'POST', body: '{}' })).rejects.toMatchObject({ status: 503 });
    expect(s.hits()).toBe(1);
    await http.close();
  });

  it('gives up rather than sleep past the deadline for a Retry-After', async () => {
    const s = await serve([429, 200], { 'retry-after': '30' });
    const { http, metrics } = client(s.url);
    await expect(http.json(opts(2_000))).rejects.toMatchObject({ code: 'UPSTREAM_THROTTLED', status: 429 });
    expect(s.hits()).toBe(1);
    expect((await metrics.throttled.get()).values[0]!.value).toBe(1);
    await http.close();
  });

  it('retries a refused connection as a network error', async () => {
    const s = await serve([200]);
    const url = s.url;
    server!.close();
    server = undefined;
    const { http } = client(url, { maxRetries: 1 });
    await expect(http.json(opts())).rejects.toMatchObject({ code: 'UPSTREAM_NETWORK' });
    await http.close();
  });

  it('counts a request the run deadline aborted, with code "error", and times it', async () => {
    // A server that takes the request and never answers.
    server = createServer(() => {});
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { http, metrics } = client(url, { headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000 });
    const ac = new AbortController();
    const p = http.json({ ...opts(60_000), signal: ac.signal });
    setTimeout(() => ac.abort(new Error('deadline')), 100);
    await expect(p).rejects.toThrow('deadline');
    expect((await metrics.requests.get()).values).toEqual([{ labels: { api: 'test', endpoint: 'x', code: 'error' }, value: 1 }]);
    const count = (await metrics.duration.get()).values.find((v) => v.metricName === 'conviva_exporter_http_request_duration_seconds_count');
    expect(count?.value).toBe(1);
    server.closeAllConnections();
    await http.close();
  });

  it('refuses a body nested deeper than 64 levels before parsing it, as UPSTREAM_MALFORMED counted in parse_errors', async () => {
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('['.repeat(5_000_000) + ']'.repeat(5_000_000));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const registry = new Registry();
    const parseErrors = createEngineMetrics(registry, 't').parseErrors;
    const { http } = client(url, { maxRetries: 0, parseErrors });
    const before = process.memoryUsage().heapUsed;
    await expect(http.json(opts())).rejects.toMatchObject({ code: 'UPSTREAM_MALFORMED' });
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(200 * 2 ** 20); // JSON.parse would take gigabytes
    expect((await parseErrors.get()).values).toEqual([{ labels: { api: 'test', endpoint: 'x' }, value: 1 }]);
    await http.close();
  });

  it('an error body that echoes the credentials does not put them in the error (log, landing page)', async () => {
    const basic = `Basic ${Buffer.from('client-id-1:very-secret-2').toString('base64')}`;
    server = createServer((req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'bad request', echo: req.headers.authorization, decoded: 'client-id-1:very-secret-2', proxy: 'Bearer abc.def-ghi', encoded: Buffer.from('very-secret-2').toString('base64') }));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { http } = client(url, { maxRetries: 0 });
    const err = (await http.json({ ...opts(), headers: { authorization: basic } }).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('answered 400');
    expect(err.message).toContain('bad request');
    for (const secret of [basic, basic.slice(6), 'very-secret-2', 'client-id-1', 'abc.def-ghi', Buffer.from('very-secret-2').toString('base64').replace(/=+$/, '')]) {
      expect(err.message).not.toContain(secret);
    }
    await http.close();
  });

  it('takes from every budget on every attempt: the account budget by cost, the per-IP one by request', async () => {
    const s = await serve([503, 200]);
    const { http } = client(s.url);
    const account = new RequestBudget('conviva_realtime', 'acct', 10, Date.now);
    const ip = new WindowBudget('conviva_ip', 'all', 3, 300_000, Date.now);
    expect((await http.json({ ...opts(), budget: [account, ip], cost: 4 })).body).toEqual({ ok: true });
    expect(s.hits()).toBe(2);
    // Two attempts at cost 4 left 2 of the account's 10 units, and 1 of the 3 requests per IP.
    expect(await account.take('e', Date.now(), undefined, 2)).toBe(0);
    await expect(account.take('e', Date.now())).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_realtime' });
    expect(await ip.take('e', Date.now())).toBe(0);
    await expect(ip.take('e', Date.now())).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_ip', account: 'all' });
    await http.close();
  });

  it('sends nothing when the per-IP budget has no room before the deadline, whatever the account budget has', async () => {
    const s = await serve([200]);
    const { http } = client(s.url);
    const ip = new WindowBudget('conviva_ip', 'all', 1, 300_000, Date.now);
    await ip.take('e', Date.now());
    await expect(http.json({ ...opts(), budget: [new RequestBudget('conviva_realtime', 'acct', 500, Date.now), ip] }))
      .rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_ip', account: 'all', endpoint: 'x' });
    expect(s.hits()).toBe(0);
    await http.close();
  });

  it('names the first budget\'s account when credentials are refused', async () => {
    const s = await serve([401]);
    const { http } = client(s.url);
    const budget = [new RequestBudget('conviva_realtime', 'acct-1', 500, Date.now), new WindowBudget('conviva_ip', 'all', 10, 300_000, Date.now)];
    await expect(http.json({ ...opts(), budget })).rejects.toMatchObject({ code: 'UPSTREAM_AUTH', account: 'acct-1', message: expect.stringContaining('for account acct-1: credentials refused') });
    await http.close();
  });

  it('stops at once when the run is aborted', async () => {
    const s = await serve([503]);
    const { http } = client(s.url, { retryBaseDelayMs: 10_000, retryMaxDelayMs: 10_000 });
    const ac = new AbortController();
    const p = http.json({ ...opts(60_000), signal: ac.signal });
    setTimeout(() => ac.abort(new Error('deadline')), 50);
    await expect(p).rejects.toThrow('deadline');
    await http.close();
  });
});

describe('RequestBudget', () => {
  it('spends its per-minute allowance, then waits, then refuses past the deadline', async () => {
    let now = 0;
    const metrics = createBudgetMetrics(new Registry());
    const b = new RequestBudget('api', 'acct', 60, () => now, metrics); // one a second
    for (let i = 0; i < 60; i++) expect(await b.take('e', 10_000)).toBe(0);
    await expect(b.take('e', 500)).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'api', account: 'acct' });
    expect((await metrics.exhausted.get()).values).toEqual([{ labels: { api: 'api', account: 'acct' }, value: 1 }]);
    now += 2_000; // two seconds refill two requests
    expect(await b.take('e', 10_000)).toBe(0);
    expect(await b.take('e', 10_000)).toBe(0);
    const waited = await b.take('e', 10_000);
    expect(waited).toBe(1000);
  });

  it('is not drained by a clock stepped backwards (an hour back must not cost an hour of requests)', async () => {
    let now = 3_600_000;
    const b = new RequestBudget('api', 'acct', 60, () => now);
    expect(await b.take('e', now + 10_000)).toBe(0);
    now -= 3_600_000; // NTP steps the clock back an hour
    expect(await b.take('e', now + 10_000)).toBe(0);
    now += 1_000; // and time goes on from there: the refill counts from the step, not from before it
    for (let i = 0; i < 58; i++) expect(await b.take('e', now + 10_000)).toBe(0);
  });
});

describe('jsonDepth', () => {
  it('counts object and array nesting, not brackets inside strings, and stops past the limit', () => {
    expect(jsonDepth('{"a":[1,{"b":2}]}', 64)).toBe(3);
    expect(jsonDepth('{"a":"[[[{{{\\"[[["}', 64)).toBe(1);
    expect(jsonDepth('1', 64)).toBe(0);
    expect(jsonDepth('['.repeat(1000), 64)).toBe(65);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('7', 0)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });
});

describe('TLS', () => {
  it('verifies certificates always, and trusts an extra CA from ca_file', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const https = await import('node:https');
    const dir = mkdtempSync(join(tmpdir(), 'tls-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const tlsServer = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', () => r()));
    const url = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
    try {
      const untrusted = client(url, { maxRetries: 0 });
      await expect(untrusted.http.json(opts())).rejects.toMatchObject({ code: 'UPSTREAM_NETWORK' });
      await untrusted.http.close();
      const trusted = client(url, { maxRetries: 0, caFile: join(dir, 'cert.pem') });
      expect((await trusted.http.json(opts())).body).toEqual({ ok: true });
      await trusted.http.close();
    } finally {
      tlsServer.closeAllConnections();
      await new Promise<void>((r) => tlsServer.close(() => r()));
    }
  });
});
