import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { MINUTE, startStack, type Stack } from '../helpers/stack.js';
import { parseExposition, value } from '../helpers/exposition.js';
import { attrs, startOtlpReceiver, type OtlpMetric, type OtlpReceiver, type Received } from '../helpers/otlp-receiver.js';

// The OTLP push against a receiver that decodes with the official OTLP .proto files: every series
// /metrics serves (data, the engine's and the process's metrics) arrives with the same value,
// type and attributes, over http/protobuf and over gRPC.

const config = (endpoint: string, protocol: string, extra = '') => `
engine: { staleness: 2h, shutdown_grace: 2s }
otlp:
  endpoint: ${endpoint}
  protocol: ${protocol}
  interval: 1h
  timeout: 2s
  max_points_per_request: 200
  headers:
    - { name: Authorization, value: "Bearer otlp-test-token" }
  resource_attributes: { deployment.environment: test }
${extra}
sources:
  conviva:
    request_timeout: 2s
    retries: 1
    retry_base_delay: 10ms
    retry_max_delay: 40ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
    realtime:
      metrics: [attempts, plays, concurrent-plays, rebuffering-ratio, video-start-failures]
      group_by: [device-os]
    flows: { enabled: true, group_by: [platform] }
    sessions: { enabled: true, timeout: 20s, limit: 50, group_by: [device_os_family] }
  invision:
    base_url: http://placeholder/invision
    api_key: demo-invision-key
    dataflows:
      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *", timeout: 5m }
`;

let stack: Stack | undefined;
let receiver: OtlpReceiver | undefined;
afterEach(async () => {
  await stack?.close();
  await receiver?.close();
  stack = undefined;
  receiver = undefined;
});

/** The TYPE of every family in exposition text. */
function types(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

const fmt = (v: number) => (Number.isNaN(v) ? 'NaN' : String(v));
/**
 * Read from V8 each time the engine's registry renders (once for /metrics, once for the push): the
 * same series must arrive, but its value is of another instant. Every other value must be equal.
 */
const MEASURED_AT_RENDER = new Set(['conviva_exporter_engine_heap_size_bytes', 'conviva_exporter_engine_heap_used_bytes']);
function line(name: string, labels: Record<string, string>, v: number): string {
  const l = Object.entries(labels)
    .filter(([, x]) => x !== '') // Prometheus: an empty label value is no label
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, x]) => `${k}=${JSON.stringify(x)}`)
    .join(',');
  return `${name}{${l}} ${MEASURED_AT_RENDER.has(name) ? '(measured)' : fmt(v)}`;
}

/**
 * The pushed metrics written back as exposition samples (a histogram's per-bucket counts summed
 * into cumulative _bucket samples), after checking each metric's OTLP type against the family's
 * Prometheus TYPE.
 */
function asSamples(metrics: OtlpMetric[], typeOf: Map<string, string>): string[] {
  const out: string[] = [];
  for (const m of metrics) {
    const t = typeOf.get(m.name);
    if (m.sum) {
      expect(t, m.name).toBe('counter');
      expect(m.sum.isMonotonic, m.name).toBe(true);
      expect(m.sum.aggregationTemporality, m.name).toBe('AGGREGATION_TEMPORALITY_CUMULATIVE');
      for (const p of m.sum.dataPoints) out.push(line(m.name, attrs(p.attributes), p.asDouble!));
    } else if (m.gauge) {
      expect(['gauge', 'untyped'], m.name).toContain(t);
      for (const p of m.gauge.dataPoints) out.push(line(m.name, attrs(p.attributes), p.asDouble!));
    } else if (m.histogram) {
      expect(t, m.name).toBe('histogram');
      expect(m.histogram.aggregationTemporality, m.name).toBe('AGGREGATION_TEMPORALITY_CUMULATIVE');
      for (const p of m.histogram.dataPoints) {
        const a = attrs(p.attributes);
        expect(p.bucketCounts.length, m.name).toBe(p.explicitBounds.length + 1);
        let cumulative = 0;
        p.bucketCounts.forEach((c, i) => {
          cumulative += Number(c);
          const le = i < p.explicitBounds.length ? fmt(p.explicitBounds[i]!) : '+Inf';
          out.push(line(`${m.name}_bucket`, { ...a, le }, cumulative));
        });
        expect(cumulative, m.name).toBe(Number(p.count));
        out.push(line(`${m.name}_sum`, a, p.sum!));
        out.push(line(`${m.name}_count`, a, Number(p.count)));
      }
    } else {
      throw new Error(`${m.name}: neither sum, gauge nor histogram`);
    }
  }
  return out.sort();
}

/** Exposition samples as lines, with Prometheus' le formatting kept as written. */
function expected(text: string): string[] {
  return parseExposition(text)
    .map((s) => line(s.name, s.labels, s.value))
    .sort();
}

function onlyScope(r: Received) {
  expect(r.request.resourceMetrics).toHaveLength(1);
  const rm = r.request.resourceMetrics[0]!;
  expect(rm.scopeMetrics).toHaveLength(1);
  return { resource: attrs(rm.resource.attributes), metrics: rm.scopeMetrics[0]!.metrics };
}

const pointsOf = (metrics: OtlpMetric[]) => metrics.reduce((n, m) => n + (m.sum ?? m.gauge ?? m.histogram)!.dataPoints.length, 0);

/**
 * Pushes now and returns what the receiver got for this push: the requests (each at most
 * `max_points_per_request` = 200 points, all with the same resource) joined into one list.
 */
async function pushAndCollect(s: Stack, r: OtlpReceiver): Promise<{ resource: Record<string, string>; metrics: OtlpMetric[]; requests: number; headers: Record<string, string> }> {
  const before = r.received.length;
  expect(await s.app.pushOtlp()).toBe(true);
  const got = r.received.slice(before).map((x) => ({ ...onlyScope(x), headers: x.headers }));
  expect(got.length).toBeGreaterThan(0);
  for (const g of got) {
    expect(g.resource).toEqual(got[0]!.resource);
    expect(pointsOf(g.metrics)).toBeLessThanOrEqual(200);
  }
  return { resource: got[0]!.resource, metrics: got.flatMap((g) => g.metrics), requests: got.length, headers: got[0]!.headers };
}

async function runAll(s: Stack): Promise<void> {
  for (const name of s.app.runner.collectorNames) expect(await s.app.runner.run(name), name).toBe('success');
}

describe.each(['http/protobuf', 'grpc'] as const)('OTLP push over %s', (protocol) => {
  it('pushes every series /metrics serves, with the same value, type and attributes; counters keep their start time', async () => {
    receiver = await startOtlpReceiver(protocol);
    stack = await startStack({ configText: config(receiver.url, protocol) });
    stack.clock.advance(10 * MINUTE);
    await runAll(stack);
    const text = await stack.app.text();
    const first = await pushAndCollect(stack, receiver);
    // Hundreds of points, in full requests of 200 (max_points_per_request) and one with the rest.
    expect(first.requests).toBeGreaterThan(1);
    expect(first.requests).toBe(Math.ceil(pointsOf(first.metrics) / 200));
    expect(receiver.received.every((r) => r.headers.authorization === 'Bearer otlp-test-token')).toBe(true);

    // The resource and the credentials header.
    expect(first.resource).toMatchObject({ 'service.name': 'conviva-exporter', 'service.instance.id': hostname(), 'deployment.environment': 'test' });

    // Every sample, both ways: data (counters, gauges, the sessions histograms), engine and process metrics.
    const typeOf = types(text);
    const got = asSamples(first.metrics, typeOf);
    const want = expected(text);
    expect(got).toEqual(want);
    const names = new Set(first.metrics.map((m) => m.name));
    for (const n of ['conviva_plays_total', 'conviva_session_video_start_time_seconds', 'invision_dataflow_runs_total', 'conviva_exporter_collector_up', 'process_cpu_user_seconds_total', 'nodejs_heap_size_total_bytes']) {
      expect(names, n).toContain(n);
    }
    expect(first.metrics.some((m) => m.histogram && m.name.startsWith('conviva_session'))).toBe(true);
    expect(first.metrics.find((m) => m.name === 'conviva_plays_total')?.unit).toBe('');
    expect(first.metrics.find((m) => m.name === 'conviva_session_video_start_time_seconds')?.unit).toBe('s');

    // A later push: counters keep their start time, their end time moves on.
    const startOf = (metrics: OtlpMetric[]) => {
      const m = new Map<string, string>();
      for (const x of metrics) for (const p of x.sum?.dataPoints ?? []) m.set(`${x.name}${JSON.stringify(attrs(p.attributes))}`, `${p.startTimeUnixNano}/${p.timeUnixNano}`);
      return m;
    };
    const before = startOf(first.metrics);
    stack.clock.advance(MINUTE);
    await runAll(stack);
    const text2 = await stack.app.text();
    const second = await pushAndCollect(stack, receiver);
    expect(asSamples(second.metrics, types(text2))).toEqual(expected(text2));
    const after = startOf(second.metrics);
    let kept = 0;
    for (const [k, v] of before) {
      const w = after.get(k);
      if (!w) continue;
      expect(w.split('/')[0], k).toBe(v.split('/')[0]);
      expect(BigInt(w.split('/')[1]!), k).toBe(BigInt(v.split('/')[1]!) + 60_000_000_000n);
      kept++;
    }
    expect(kept).toBeGreaterThan(50);
    // The push is counted: /metrics now shows two successes.
    expect(value(parseExposition(await stack.app.text()), 'conviva_exporter_otlp_exports_total', { result: 'success' })).toBe(2);
  });

  it('a receiver that fails is counted and logged once; the next accepted push carries everything', async () => {
    receiver = await startOtlpReceiver(protocol);
    stack = await startStack({ configText: config(receiver.url, protocol) });
    stack.clock.advance(10 * MINUTE);
    await runAll(stack);
    receiver.failNext(1000);
    for (let i = 0; i < 3; i++) expect(await stack.app.pushOtlp()).toBe(false);
    const samples = parseExposition(await stack.app.text());
    expect(value(samples, 'conviva_exporter_otlp_exports_total', { result: 'failure' })).toBe(3);
    expect(value(samples, 'conviva_exporter_otlp_exports_total', { result: 'success' })).toBe(0);
    expect(value(samples, 'conviva_exporter_otlp_last_success_timestamp_seconds')).toBe(0);
    expect(stack.logs.filter((l) => l.msg.startsWith('OTLP push failed'))).toHaveLength(1);
    // The collectors go on meanwhile.
    stack.clock.advance(MINUTE);
    await runAll(stack);
    receiver.failNext(0);
    const text = await stack.app.text();
    const r = await pushAndCollect(stack, receiver);
    expect(stack.logs.filter((l) => l.msg === 'OTLP push succeeded again')).toHaveLength(1);
    expect(asSamples(r.metrics, types(text))).toEqual(expected(text));
    expect(value(parseExposition(await stack.app.text()), 'conviva_exporter_otlp_last_success_timestamp_seconds')).toBe(stack.clock.now() / 1000);
    // No secret in any log line.
    expect(JSON.stringify(stack.logs)).not.toContain('otlp-test-token');
  });
});

it('a counter that starts again gets a new start time (after the previous push)', async () => {
  const { StartTimes } = await import('../../src/otlp/convert.js');
  const s = new StartTimes();
  expect(s.start('a', 5, 1000)).toBe(1000);
  s.commit(1000);
  expect(s.start('a', 7, 2000)).toBe(1000);
  s.commit(2000);
  expect(s.start('a', 2, 3000)).toBe(2000); // went down: reset after the push at 2000
  s.commit(3000);
  expect(s.start('a', 3, 4000)).toBe(2000);
  s.commit(4000);
  s.commit(5000); // absent from a push: forgotten
  expect(s.start('a', 9, 6000)).toBe(6000);
});

describe('OTLP push from the CLI (engine on its worker thread)', () => {
  it('pushes on its interval with the process metrics of the serving thread, backs off on failures, and pushes once more on SIGTERM', async () => {
    const { mkdtempSync, readFileSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { ROOT, startExporter, waitFor } = await import('../helpers/process.js');
    receiver = await startOtlpReceiver('http/protobuf');
    const dir = mkdtempSync(join(tmpdir(), 'otlp-cli-'));
    const file = join(dir, 'config.yml');
    const demo = readFileSync(join(ROOT, 'config/demo.yml'), 'utf8');
    writeFileSync(file, `${demo}\notlp:\n  endpoint: ${receiver.url}\n  interval: 1s\n  timeout: 500ms\n`);
    const exp = await startExporter(['--demo', '--config', file, '--web.listen-address', '127.0.0.1:0']);
    try {
      const r = receiver;
      const has = (name: string) => r.received.some((x) => onlyScope(x).metrics.some((m) => m.name === name && (m.sum ?? m.gauge ?? m.histogram)!.dataPoints.length > 0));
      await waitFor('data, engine and process series pushed', async () => (has('conviva_plays_total') && has('conviva_exporter_collector_up') && has('process_cpu_user_seconds_total') ? true : undefined), 30_000);
      // The receiver fails for a while: pushes are counted as failures and logged once, then succeed again.
      const before = r.received.length;
      r.failNext(3);
      await waitFor('pushes succeeding again', async () => (r.received.length > before + 1 ? true : undefined), 30_000);
      const metrics = parseExposition(await (await fetch(`${exp.url}/metrics`)).text());
      expect(value(metrics, 'conviva_exporter_otlp_exports_total', { result: 'failure' })).toBeGreaterThanOrEqual(1);
      expect(exp.logs.filter((l) => String(l.msg).startsWith('OTLP push failed'))).toHaveLength(1);
      expect(exp.logs.some((l) => l.msg === 'OTLP push succeeded again')).toBe(true);
      // SIGTERM: one last push with the final numbers.
      const atStop = r.received.length;
      exp.proc.kill('SIGTERM');
      expect(await exp.exited).toBe(0);
      expect(r.received.length).toBeGreaterThan(atStop);
    } finally {
      exp.proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

it('a push is cut into requests of at most max_points_per_request points, every point once, in order', async () => {
  const { batches } = await import('../../src/otlp/pusher.js');
  const { DataPointType, AggregationTemporality } = await import('@opentelemetry/sdk-metrics');
  const metric = (name: string, n: number) => ({
    descriptor: { name, description: '', unit: '', valueType: 1 },
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.GAUGE,
    dataPoints: Array.from({ length: n }, (_, i) => ({ startTime: [0, 0] as [number, number], endTime: [0, 0] as [number, number], attributes: { i: String(i) }, value: i })),
  });
  const input = [metric('a', 5), metric('b', 3), metric('c', 7)];
  const out = batches(input as never, 4);
  expect(out.map((b) => b.reduce((n, m) => n + m.dataPoints.length, 0))).toEqual([4, 4, 4, 3]);
  const flat = out.flatMap((b) => b.flatMap((m) => m.dataPoints.map((p) => `${m.descriptor.name}${String(p.attributes.i)}`)));
  expect(flat).toEqual(input.flatMap((m) => m.dataPoints.map((p) => `${m.descriptor.name}${String(p.attributes.i)}`)));
  expect(batches(input as never, 100)).toHaveLength(1);
  expect(batches([], 100)).toEqual([]);
});

it('a reload turns the push on (the OpenTelemetry exporter loads then) and off again (its series go)', async () => {
  const { parseConfig } = await import('../../src/config/load.js');
  const { useSimulator } = await import('../helpers/stack.js');
  receiver = await startOtlpReceiver('http/protobuf');
  const withOtlp = config(receiver.url, 'http/protobuf');
  const without = withOtlp.replace(/^otlp:[\s\S]*?(?=^sources:)/m, '');
  stack = await startStack({ configText: without });
  stack.clock.advance(10 * MINUTE);
  await runAll(stack);
  expect(await stack.app.pushOtlp()).toBe(false);
  expect((await stack.app.text()).includes('conviva_exporter_otlp_')).toBe(false);
  const reloaded = (text: string) => {
    const c = parseConfig(text, {}, process.cwd());
    useSimulator(c, stack!.sim.endpoints);
    return stack!.app.reload(c);
  };
  await reloaded(withOtlp);
  await runAll(stack);
  const text = await stack.app.text();
  const pushed = await pushAndCollect(stack, receiver);
  expect(asSamples(pushed.metrics, types(text))).toEqual(expected(text));
  await reloaded(without);
  expect(await stack.app.pushOtlp()).toBe(false);
  expect((await stack.app.text()).includes('conviva_exporter_otlp_')).toBe(false);
});
