import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createEngineMetrics } from '../../src/engine/self-metrics.js';
import { HttpClient } from '../../src/http/client.js';
import { UpstreamError } from '../../src/http/errors.js';
import { createHttpMetrics } from '../../src/http/metrics.js';
import { Simulator } from '../../src/simulator/server.js';
import { fmt, report } from './figures.js';
import { depthOf } from './harness.js';

// Property: whatever bytes an upstream answers with (valid JSON, nearly valid, hostile), the HTTP
// layer every source reads through either returns exactly what JSON.parse makes of them, or throws
// an UpstreamError with a stable code: never another exception, never a body nested past its limit,
// every unreadable answer counted once in parse_errors, every request once in http_requests_total,
// and no error message carrying the request's credentials, however the body echoes them.

const ID = 'fault-client';
const SECRET = 's3cr3t-Value-42';
const BASIC = Buffer.from(`${ID}:${SECRET}`).toString('base64');
const LEAKS = [SECRET, BASIC, `Bearer ${SECRET}`, Buffer.from(SECRET).toString('base64')];

const deep = fc.tuple(fc.integer({ min: 1, max: 6000 }), fc.constantFrom('[', '{"a":'), fc.boolean()).map(([n, open, closed]) => {
  const close = open === '[' ? ']' : '}';
  return open.repeat(n) + '1' + (closed ? close.repeat(n) : '');
});
const hugeNumbers = fc.constantFrom('1e999', '-1e999', '1.7976931348623157e309', '-0', '123456789012345678901234567890', '0.' + '0'.repeat(400) + '1', 'NaN', 'Infinity');
const valid = fc.jsonValue().map((v) => JSON.stringify(v));
const nearlyValid = fc.tuple(valid, fc.nat(), fc.constantFrom('', ',', '}', ']', '"', '\\', '\u0000', 'x')).map(([t, at, insert]) => {
  const i = t.length === 0 ? 0 : at % t.length;
  return t.slice(0, i) + insert;
});
const echoes = fc.constantFrom(
  `{"error":"denied","request":{"headers":{"authorization":"Basic ${BASIC}"}}}`,
  `unauthorized for ${ID}:${SECRET}`,
  `{"message":"token Bearer ${SECRET} expired"}`,
  `<html><body>Proxy saw Authorization: Basic ${BASIC}</body></html>`,
  `${SECRET}`,
  `{"seen":"${Buffer.from(SECRET).toString('base64')}"}`,
);
const body = fc.oneof(
  { weight: 4, arbitrary: valid },
  { weight: 3, arbitrary: nearlyValid },
  { weight: 2, arbitrary: deep },
  { weight: 1, arbitrary: hugeNumbers.map((n) => `{"count": ${n}}`) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) }, // unicode, lone surrogates, control bytes
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'null', '\ufeff{}', '{"a":1}{"b":2}', '[1,]', "{'a':1}") },
  { weight: 1, arbitrary: echoes },
);
const status = fc.oneof({ weight: 8, arbitrary: fc.constant(200) }, { weight: 2, arbitrary: fc.constantFrom(201, 204, 400, 401, 403, 404, 413, 429, 500, 502) });


describe('HTTP layer, property-based', () => {
  it('reads 10,000 generated answers: the parsed JSON or a coded UpstreamError, counted, with no credential in any message', async () => {
    const sim = new Simulator({ seed: 1 });
    const url = await sim.listen('127.0.0.1', 0);
    const registry = new Registry();
    const metrics = createHttpMetrics(registry);
    const parseErrors = createEngineMetrics(registry, 't').parseErrors;
    const http = new HttpClient({
      api: 'fault_api', baseUrl: url, connectTimeoutMs: 2000, headersTimeoutMs: 5000, bodyTimeoutMs: 5000,
      maxRetries: 0, retryBaseDelayMs: 1, retryMaxDelayMs: 1, concurrency: 1, metrics, parseErrors, log: pino({ level: 'silent' }),
    });
    const count = async (c: { get(): Promise<{ values: Array<{ value: number }> }> }) => (await c.get()).values.reduce((a, v) => a + v.value, 0);
    const stats = { bodies: 0, parsed: 0, refused: new Map<string, number>(), messagesScanned: 0, maxDepthServed: 0 };
    let expectedParseErrors = 0;
    await fc.assert(
      fc.asyncProperty(body, status, async (text, code) => {
        stats.bodies++;
        sim.faults.set([{ kind: 'body', status: code, body: text }]);
        let result: unknown;
        let error: unknown;
        try {
          result = (await http.json({ path: '/insights/3.0/x', endpoint: 'x', headers: { authorization: `Basic ${BASIC}` }, signal: new AbortController().signal, deadline: Date.now() + 10_000 })).body;
        } catch (e) {
          error = e;
        }
        // What the bytes are, judged independently of the client.
        const sent = code === 204 ? '' : Buffer.from(text, 'utf8').toString('utf8'); // a 204 carries no body
        let reference: { ok: true; value: unknown } | { ok: false } = { ok: false };
        try {
          reference = { ok: true, value: sent.length === 0 ? null : JSON.parse(sent) };
        } catch {
          /* not JSON */
        }
        const ok2xx = code >= 200 && code < 300;
        if (error === undefined) {
          stats.parsed++;
          expect(ok2xx).toBe(true);
          expect(reference.ok).toBe(true);
          expect(result).toEqual((reference as { value: unknown }).value);
          expect(depthOf(result)).toBeLessThanOrEqual(64);
          stats.maxDepthServed = Math.max(stats.maxDepthServed, depthOf(result));
          return;
        }
        expect(error).toBeInstanceOf(UpstreamError);
        const e = error as UpstreamError;
        stats.refused.set(e.code, (stats.refused.get(e.code) ?? 0) + 1);
        if (ok2xx) {
          expect(e.code).toBe('UPSTREAM_MALFORMED');
          expectedParseErrors++;
          // refused only when it is not JSON, or nested past the limit
          if (reference.ok) expect(depthOf(reference.value)).toBeGreaterThan(64);
        } else {
          expect(e.status).toBe(code);
          expect(e.code).toBe(code === 429 ? 'UPSTREAM_THROTTLED' : code === 401 || code === 403 ? 'UPSTREAM_AUTH' : 'UPSTREAM_STATUS');
        }
        stats.messagesScanned++;
        for (const leak of LEAKS) expect(e.message, 'an error message carries a credential').not.toContain(leak);
      }),
      { numRuns: 10_000, seed: 20261130 },
    );
    expect(await count(metrics.requests)).toBe(stats.bodies);
    expect(await count(parseErrors)).toBe(expectedParseErrors);
    await http.close();
    await sim.close();
    expect(stats.bodies).toBeGreaterThanOrEqual(10_000);
    report('http-bodies', {
      order: 3,
      title: 'Property-based: the HTTP layer (every source\'s JSON answers)',
      about: `\`test/faults/http-bodies.test.ts\`: fast-check generates answers (valid JSON, JSON cut short or
with a stray byte, arrays and objects nested up to 6,000 deep, numbers past float range, unicode,
lone surrogates and control bytes, bodies echoing the request's credentials raw, as Basic and
as Bearer) with 2xx, 4xx and 5xx statuses, served through the simulator over HTTP to the real
client. Each answer must come back as exactly what \`JSON.parse\` makes of it (nested at most 64
deep), or as an \`UpstreamError\` with the right code, counted once in \`parse_errors\` and once in
\`http_requests_total\`, with no credential in its message.`,
      rows: [
        ['answers tried', fmt(stats.bodies)],
        ['read as JSON (deepest read)', `${fmt(stats.parsed)} (${stats.maxDepthServed})`],
        ...[...stats.refused].sort().map(([k, v]): [string, string] => [`refused as ${k}`, fmt(v)]),
        ['error messages scanned for the credential (raw, Basic, Bearer) / found', `${fmt(stats.messagesScanned)} / 0`],
        ['other exceptions, miscounts', '0'],
      ],
    });
  });
});
