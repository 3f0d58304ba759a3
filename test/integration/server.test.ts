import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseExposition, value } from '../helpers/exposition.js';
import { MINUTE, startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

describe('HTTP server', () => {
  it('serves /metrics (plain and gzip), health, readiness and the landing page; keeps serving through a fault storm', async () => {
    stack = await startStack();
    stack.sim.faults.set([{ kind: 'status', status: 500 }]); // storm from the first run on
    const url = await stack.app.start({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => setTimeout(r, 200)); // let the first (failing) run end
    expect((await get(`${url}/-/healthy`)).status).toBe(200);
    const notReady = await get(`${url}/-/ready`);
    expect(notReady.status).toBe(503);
    expect(notReady.body.toString()).toContain('conviva_realtime');

    for (let i = 0; i < 3; i++) {
      stack.clock.advance(MINUTE);
      await stack.app.runner.run('conviva_realtime');
      const m = await get(`${url}/metrics`);
      expect(m.status).toBe(200);
      expect(value(parseExposition(m.body.toString()), 'conviva_exporter_collector_up', { collector: 'conviva_realtime' })).toBe(0);
    }
    const landing = await get(`${url}/`);
    expect(landing.body.toString()).toContain('UPSTREAM_STATUS');

    stack.sim.faults.clear();
    stack.clock.advance(MINUTE);
    expect(await stack.app.runner.run('conviva_realtime')).toBe('success');
    expect((await get(`${url}/-/ready`)).status).toBe(200);

    const plain = await get(`${url}/metrics`);
    expect(plain.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(plain.headers['content-encoding']).toBeUndefined();
    const samples = parseExposition(plain.body.toString());
    expect(value(samples, 'conviva_exporter_collector_up', { collector: 'conviva_realtime' })).toBe(1);
    expect(samples.some((s) => s.name === 'conviva_attempts')).toBe(true);

    const gz = await get(`${url}/metrics`, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    const unzipped = gunzipSync(gz.body).toString();
    // same data part; the live self-metrics may differ between two scrapes
    const dataOf = (t: string) => t.split('\n').filter((l) => /^conviva_(?!exporter_)/.test(l)).join('\n');
    expect(dataOf(unzipped)).toBe(dataOf(plain.body.toString()));
    expect(dataOf(unzipped).length).toBeGreaterThan(1000);
    // no sample carries a timestamp: every sample line ends in `} value` or `name value`
    expect(plain.body.toString().split('\n').filter((l) => l && !l.startsWith('#') && !/(\}|^[a-z0-9_:]+) \S+$/i.test(l))).toEqual([]);

    const page = (await get(`${url}/`)).body.toString();
    expect(page).toContain('<a href="/metrics">');
    expect(page).toContain('conviva_realtime');
    expect((await get(`${url}/nope`)).status).toBe(404);
    // read-only routes: other methods are 405 with Allow
    for (const path of ['/metrics', '/-/healthy', '/-/ready', '/']) {
      const res = await request(`${url}${path}`, { method: 'POST', body: 'x' });
      await res.body.dump();
      expect(res.statusCode, `POST ${path}`).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
    }
    const head = await request(`${url}/metrics`, { method: 'HEAD' });
    await head.body.dump();
    expect(head.statusCode).toBe(200);
  });
});
