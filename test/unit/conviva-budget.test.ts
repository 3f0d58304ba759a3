import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { RequestBudget, WindowBudget } from '../../src/engine/limits.js';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import { HttpClient } from '../../src/http/client.js';
import { createHttpMetrics } from '../../src/http/metrics.js';
import { ConvivaClient, ConvivaFlowClient, filterCost } from '../../src/sources/conviva/client.js';

describe('filterCost', () => {
  it('counts one per filter key: filter_id, each dimension, each tag; at least 1', () => {
    expect(filterCost({})).toBe(1);
    expect(filterCost({ dimensions: {}, tags: {} })).toBe(1);
    expect(filterCost({ filterId: '1234' })).toBe(1);
    expect(filterCost({ dimensions: { device_os: ['iOS'] } })).toBe(1);
    expect(filterCost({ dimensions: { device_os: ['iOS'], isp: ['A'] }, tags: { appVersion: ['5.1'] } })).toBe(3);
    expect(filterCost({ dimensions: { a: ['1'], b: ['1'], c: ['1'], d: ['1'] }, tags: { e: ['1'] } })).toBe(5);
  });

  it('counts the OR\'ed values of one key once, and a key without values not at all', () => {
    expect(filterCost({ dimensions: { device_os: ['iOS', 'Android', 'tvOS'] } })).toBe(1);
    expect(filterCost({ dimensions: { device_os: ['iOS', 'Android'], isp: [] }, tags: { appVersion: ['1', '2'] } })).toBe(2);
  });
});

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

describe('Conviva clients and the budgets', () => {
  async function setup() {
    let hits = 0;
    server = createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"time_series":[]}');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const registry = new Registry();
    const http = new HttpClient({
      api: 'conviva_realtime', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connectTimeoutMs: 500, headersTimeoutMs: 500,
      bodyTimeoutMs: 500, maxRetries: 0, retryBaseDelayMs: 1, retryMaxDelayMs: 5, concurrency: 2, metrics: createHttpMetrics(registry),
      log: pino({ level: 'silent' }), parseErrors: createEngineMetrics(registry, 't').parseErrors,
    });
    const account = { name: 'prod', clientId: 'id', clientSecret: 'secret' };
    const budget = new RequestBudget('conviva_realtime', 'prod', 10, Date.now);
    const ip = new WindowBudget('conviva_ip', 'all', 3, 300_000, Date.now);
    return { http, account, budget, ip, hits: () => hits };
  }

  it('a real-time request costs the account its filter\'s keys, and the IP one request', async () => {
    const { http, account, budget, ip, hits } = await setup();
    const client = new ConvivaClient(http, account, budget, ip);
    const q = { metrics: ['attempts'], minutes: 2, signal: new AbortController().signal, deadline: Date.now() + 5_000 };
    await client.realtime({ ...q, filter: { dimensions: { device_os: ['iOS', 'Android'], isp: ['A'] }, tags: { appVersion: ['5'] } } });
    await client.realtime({ ...q, filter: {} });
    expect(hits()).toBe(2);
    // 3 + 1 of the 10 units spent: 6 left; 2 of the 3 requests per IP spent.
    expect(await budget.take('e', Date.now(), undefined, 6)).toBe(0);
    await expect(budget.take('e', Date.now())).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_realtime', account: 'prod' });
    expect(await ip.take('e', Date.now())).toBe(0);
    await expect(ip.take('e', Date.now())).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_ip' });
    await http.close();
  });

  it('DPI Flow requests cost 1, and share the per-IP budget with Metrics V3 real time', async () => {
    const { http, account, budget, ip, hits } = await setup();
    const flow = new ConvivaFlowClient(http, account, budget, ip);
    const rt = new ConvivaClient(http, account, new RequestBudget('conviva_realtime', 'other', 500, Date.now), ip);
    const deadline = Date.now() + 5_000;
    const signal = new AbortController().signal;
    await flow.models(signal, deadline);
    await flow.realtime({ modelId: 'fm_login_01', minutes: 2, signal, deadline });
    await rt.realtime({ metrics: ['attempts'], minutes: 2, filter: {}, signal, deadline });
    expect(hits()).toBe(3);
    expect(await budget.take('e', Date.now(), undefined, 8)).toBe(0); // 2 of 10 spent by the two flow calls
    await expect(budget.take('e', Date.now())).rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED' });
    // The IP's 3 requests are spent, the third by the other account: its next is refused unsent, though its own budget has room.
    await expect(rt.realtime({ metrics: ['attempts'], minutes: 2, filter: {}, signal, deadline: Date.now() + 1_000 }))
      .rejects.toMatchObject({ code: 'BUDGET_EXHAUSTED', api: 'conviva_ip', account: 'all' });
    expect(hits()).toBe(3);
    await http.close();
  });
});
