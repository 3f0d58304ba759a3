// npm run bench: /metrics throughput and latency at 10k and 100k series, publish (render + gzip)
// time, and a real collector run against the simulator. Writes docs/performance.md.
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { App } from '../app.js';
import { parseConfig } from '../config/load.js';
import { ManualClock } from '../engine/clock.js';
import { renderSampleSet } from '../engine/render.js';
import { SampleSet } from '../engine/samples.js';
import { createSelfMetrics } from '../engine/self-metrics.js';
import { SnapshotStore } from '../engine/snapshot.js';
import { createServer } from '../server/server.js';
import { Simulator } from '../simulator/server.js';
import { METRICS } from '../sources/conviva/catalogue.js';

const LOAD_SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** N series spread over the real-time families, with label values shaped like Conviva's. */
function syntheticSet(n: number): SampleSet {
  const families = METRICS.flatMap((m) => m.gauges.map((g) => g.family));
  const set = new SampleSet();
  const perFamily = Math.ceil(n / families.length);
  let made = 0;
  for (const f of families) {
    for (let i = 0; i < perFamily && made < n; i++, made++) {
      set.add(f, ['prod', `filter-${i % 5}`, 'asn', `AS${100000 + i}`], 1000 + ((i * 7919) % 100000) / 7);
    }
  }
  return set;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  bytesPerResponse: number;
}

/** Runs the load generator as a child process; async, so this process keeps serving meanwhile. */
async function load(url: string, gzip: boolean): Promise<LoadResult> {
  const { stdout } = await promisify(execFile)(process.execPath, [fileURLToPath(new URL('./load.js', import.meta.url)), url, String(CONCURRENCY), String(LOAD_SECONDS), gzip ? 'gzip' : 'plain'], { encoding: 'utf8' });
  return JSON.parse(stdout) as LoadResult;
}

async function serverFor(store: SnapshotStore): Promise<{ url: string; server: Server }> {
  const metrics = createSelfMetrics('bench');
  const app = createServer({ store, registry: metrics.registry, status: () => [], ready: () => true, version: 'bench' });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`, server };
}

interface Row {
  series: number;
  publishMs: number;
  renderMs: number;
  textBytes: number;
  gzipBytes: number;
  plain: LoadResult;
  gzip: LoadResult;
  rssMiB: number;
}

async function benchSeries(n: number): Promise<Row> {
  const set = syntheticSet(n);
  const store = new SnapshotStore();
  const times: number[] = [];
  const renders: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const text = renderSampleSet(set);
    renders.push(performance.now() - t0);
    await store.publish('bench', text);
    times.push(performance.now() - t0);
  }
  const { url, server } = await serverFor(store);
  const plain = await load(url, false);
  const gzip = await load(url, true);
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  return {
    series: n,
    publishMs: median(times),
    renderMs: median(renders),
    textBytes: store.current().text.length,
    gzipBytes: store.current().gzip.length,
    plain,
    gzip,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
  };
}

/** A real collector run against the simulator: 2 accounts x 3 filters x (total + 4 dimensions), 500-value dimensions. */
async function benchCollector(): Promise<{ series: number; runMs: number; requests: number }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 23, 20, 0, 30));
  const sim = new Simulator({ clock, dimensionCardinality: 500 });
  await sim.listen();
  const config = parseConfig(
    `
sources:
  conviva:
    base_url: ${sim.convivaUrl}
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
      - { name: demo-eu, client_id: demo-eu-client, client_secret: demo-eu-secret }
    realtime:
      group_by: [device-os, asn, city, asset]
      group_limit: 500
      filters: [{ name: all }, { name: ios, dimensions: { device_os: [iOS] } }, { name: sports, filter_id: 1234 }]
      max_series_per_metric: 100000
`,
    {},
    root,
  );
  const app = new App({ config, log: pino({ level: 'silent' }), clock });
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    clock.advance(60_000);
    const t0 = performance.now();
    const r = await app.runner.run('conviva_realtime');
    if (r !== 'success') throw new Error(`collector run ${r}`);
    runs.push(performance.now() - t0);
  }
  const series = app.runner.status()[0]!.series;
  const requests = sim.requests.length;
  await app.stop();
  await sim.close();
  return { series, runMs: median(runs), requests: requests / 3 };
}

const fmt = (x: number, d = 1) => x.toFixed(d);
const rows: Row[] = [];
for (const n of [10_000, 100_000]) {
  rows.push(await benchSeries(n));
  console.error(JSON.stringify(rows.at(-1)));
}
const collector = await benchCollector();
console.error(JSON.stringify(collector));

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
const md = `# Performance

Written by \`npm run bench\` (src/bench/metrics-bench.ts); do not edit by hand. Targets arrive in a
later issue; these are measurements.

Measured ${new Date().toISOString().slice(0, 10)} at commit ${git} on ${os.cpus().length} × ${cpu}, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB,
Node ${process.version}. The load generator is a separate process on the same machine (loopback),
${CONCURRENCY} connections for ${LOAD_SECONDS} s per row, so it competes with the exporter for the 2 cores.

## /metrics

The data part of \`/metrics\` is rendered and gzipped once per publish; a scrape concatenates those
buffers with the live self-metrics (a few kB, rendered per scrape).

| series | publish: render (on the event loop) / render + gzip (gzip on the thread pool) | exposition size | gzip size | plain: req/s | plain: p50 / p99 | gzip: req/s | gzip: p50 / p99 | RSS after |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows
  .map(
    (r) =>
      `| ${r.series.toLocaleString('en')} | ${fmt(r.renderMs)} / ${fmt(r.publishMs)} ms | ${fmt(r.textBytes / 2 ** 20, 2)} MiB | ${fmt(r.gzipBytes / 2 ** 20, 2)} MiB | ${fmt(r.plain.rps, 0)} | ${fmt(r.plain.p50)} / ${fmt(r.plain.p99)} ms | ${fmt(r.gzip.rps, 0)} | ${fmt(r.gzip.p50)} / ${fmt(r.gzip.p99)} ms | ${fmt(r.rssMiB, 0)} MiB |`,
  )
  .join('\n')}

Errors during load: ${rows.map((r) => r.plain.errors + r.gzip.errors).reduce((a, b) => a + b, 0)}.

## A real collector run

Conviva real-time collector against the simulator on loopback: 2 accounts × 3 filters × (total + 4
dimensions, up to 500 values each), 10 metrics, one request per scope. Median of 3 runs, each
catching up one minute; the time includes HTTP, parsing, counters, render and gzip.

| series published | requests per run | run time |
|---:|---:|---:|
| ${collector.series.toLocaleString('en')} | ${collector.requests} | ${fmt(collector.runMs)} ms |
`;
writeFileSync(`${root}docs/performance.md`, md);
console.error('wrote docs/performance.md');
