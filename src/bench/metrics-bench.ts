// npm run bench: the exporter (the built CLI, real collector polling the simulator, ~100k series),
// Debian's Go pushgateway holding the same series, and a bare pre-rendered gzip Buffer, each pinned
// to core 0 and measured in turn with the load pinned to core 1: wrk throughput, one scraper's
// latency across publishes, RSS, and the exporter's event-loop delay. Writes docs/performance.md.
//
// Knobs (environment): BENCH_SECONDS (wrk duration, 10), BENCH_CONNECTIONS (4), BENCH_SCRAPE_SECONDS
// (40), BENCH_SCRAPE_INTERVAL_MS (100), BENCH_CARDINALITY (275),
// BENCH_PLAIN (1; 0 skips the plain wrk runs), BENCH_READY_TIMEOUT_SECONDS (120),
// BENCH_PUSHGATEWAY (binary; default prometheus-pushgateway), BENCH_OUT (default docs/performance.md),
// BENCH_JSON (also write the raw results there), BENCH_REPORT_FROM (no measuring: render the doc
// from such a JSON file).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { countDataSeries, countSeries, countSeriesNamed, dataOnly, sampleValues } from './exposition.js';
import { detectPinning, foreignCpu, freePort, killAllNow, pinSelf, readRss, requireTools, runToEnd, startChild, stopAll, type Child, type Pinning } from './procs.js';
import { renderReport, targetSummary, type BenchResult, type ExporterFigures, type LatencyStats, type OtlpFigures, type ServerKey, type ServerResult } from './report.js';
import type { ScrapeOutput, ScrapeSample } from './scraper.js';
import { runWrk, wrkErrors, type WrkResult } from './wrk.js';

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number, got "${process.env[name]}"`);
  return v;
};
const WRK_SECONDS = num('BENCH_SECONDS', 10);
const WRK_CONNECTIONS = num('BENCH_CONNECTIONS', 4);
const WRK_THREADS = 1;
const WRK_TIMEOUT_SECONDS = 10;
/** Throughput of the exporter against the bare Buffer: this many alternating rounds of ROUND_SECONDS. */
const ROUNDS = num('BENCH_ROUNDS', 5);
const ROUND_SECONDS = num('BENCH_ROUND_SECONDS', 6);
const SCRAPE_SECONDS = num('BENCH_SCRAPE_SECONDS', 40);
const SCRAPE_INTERVAL_MS = num('BENCH_SCRAPE_INTERVAL_MS', 100);
const BACK_TO_BACK_SECONDS = num('BENCH_BACK_TO_BACK_SECONDS', 35);
const CARDINALITY = num('BENCH_CARDINALITY', 275);
const PLAIN = process.env.BENCH_PLAIN !== '0';
const READY_TIMEOUT_MS = num('BENCH_READY_TIMEOUT_SECONDS', 120) * 1000;
/** As in config/bench.yml. */
const SCHEDULE = '*/15 * * * * *';
/** The exporter has published once collector_series passes this. */
const PUBLISHED_SERIES = 50_000;

const root = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(root, 'dist/main.js');
const SCRAPER = fileURLToPath(new URL('./scraper.js', import.meta.url));
const BUFFER_SERVER = fileURLToPath(new URL('./buffer-server.js', import.meta.url));
const OTLP_SINK = fileURLToPath(new URL('./otlp-sink.js', import.meta.url));
/** BENCH_OTLP=0 skips the OTLP phase; its push interval (s). */
const OTLP = process.env.BENCH_OTLP !== '0';
const OTLP_INTERVAL_S = 15;
const IDLE_LOOP = fileURLToPath(new URL('./idle-loop.js', import.meta.url));
const IDLE_LOOP_SECONDS = 5;
const OUT = process.env.BENCH_OUT ? path.resolve(process.env.BENCH_OUT) : path.join(root, 'docs/performance.md');
const NODE = process.execPath;
/** The exporter's config: the sources and collectors to load are named there, not here. */
const BENCH_CONFIG = path.join(root, 'config/bench.yml');

const log = (msg: string) => console.error(`[bench] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Env {
  pin: Pinning;
  taskset: string | undefined;
  wrk: string;
  pushgateway: string;
  tmp: string;
}

async function get(url: string, gzip: boolean): Promise<{ status: number; encoding: string | undefined; body: Buffer }> {
  const res = await request(url, { headers: gzip ? { 'accept-encoding': 'gzip' } : {} });
  const body = Buffer.from(await res.body.arrayBuffer());
  const enc = res.headers['content-encoding'];
  return { status: res.statusCode, encoding: Array.isArray(enc) ? enc[0] : enc, body };
}

const decoded = (r: { encoding: string | undefined; body: Buffer }) => (r.encoding === 'gzip' ? gunzipSync(r.body) : r.body);

/** Polls `probe` until it returns a value, the child dies, or the time is up. */
async function poll<T>(what: string, child: Child, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!child.running) throw new Error(`${child.name} exited while waiting for ${what}\n${child.tail()}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(500);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${last})` : ''}\n${child.tail()}`);
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function scrape(env: Env, url: string, self: boolean, seconds = SCRAPE_SECONDS, intervalMs = SCRAPE_INTERVAL_MS): Promise<{ stats: LatencyStats; samples: ScrapeSample[] }> {
  const cmd = [NODE, SCRAPER, '--url', url, '--seconds', String(seconds), '--interval-ms', String(intervalMs), ...(self ? ['--self'] : [])];
  const out = JSON.parse(await runToEnd('scraper', cmd, env.pin.enabled ? env.pin.load : undefined, env.taskset, (seconds + 120) * 1000)) as ScrapeOutput;
  const ok = out.samples.filter((s) => s.status === 200);
  const lat = ok.map((s) => s.ms).sort((a, b) => a - b);
  if (!lat.length) throw new Error(`the scraper got no answer from ${url}: ${out.errors.slice(0, 5).join('; ')}`);
  return { stats: { requests: out.samples.length, p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat.at(-1)!, errors: out.errors }, samples: ok };
}

/**
 * The paced scraper against `child`, with its resident size sampled every 500 ms meanwhile:
 * it moves with every publish (a burst, then a collection), so one reading would say little.
 */
async function scrapeSamplingRss(env: Env, child: Child, url: string, self: boolean): Promise<{ scraped: Awaited<ReturnType<typeof scrape>>; rssSamples: number[] }> {
  const rssSamples: number[] = [];
  const sampler = setInterval(() => {
    if (child.running) rssSamples.push(readRss(child.pid).rss);
  }, 500);
  try {
    return { scraped: await scrape(env, url, self), rssSamples };
  } finally {
    clearInterval(sampler);
  }
}

/** wrk gzip, wrk plain (optional), the scraper, then RSS: one server, alone under load. */
async function measure(
  env: Env,
  key: ServerKey,
  title: string,
  child: Child,
  url: string,
  opts: { plain: boolean; self: boolean; otherPids?: number[]; gzip?: WrkResult },
) {
  const wrk = (gzip: boolean) =>
    runWrk({
      wrk: env.wrk,
      url,
      gzip,
      threads: WRK_THREADS,
      connections: WRK_CONNECTIONS,
      seconds: WRK_SECONDS,
      timeoutSeconds: WRK_TIMEOUT_SECONDS,
      cpus: env.pin.enabled ? env.pin.load : undefined,
      taskset: env.taskset,
    });
  const probe = await get(url, true);
  if (probe.status !== 200) throw new Error(`${title}: GET ${url} answered ${probe.status}`);
  if (probe.encoding !== 'gzip') log(`warning: ${title} did not gzip its answer`);
  const otherCpu = foreignCpu([child.pid, ...(opts.otherPids ?? [])]);
  const gzip = opts.gzip ?? (await wrk(true));
  log(`${title}: gzip ${gzip.requestsPerSecond.toFixed(0)} req/s (${gzip.requests} requests of ${(gzip.bytesRead / Math.max(1, gzip.requests) / 2 ** 20).toFixed(2)} MiB, errors ${JSON.stringify(gzip.socketErrors)}, non-2xx ${gzip.non2xx})`);
  let plain: WrkResult | undefined;
  if (opts.plain) {
    plain = await wrk(false);
    log(`${title}: plain ${plain.requestsPerSecond.toFixed(0)} req/s (${plain.requests} requests of ${(plain.bytesRead / Math.max(1, plain.requests) / 2 ** 20).toFixed(2)} MiB, errors ${JSON.stringify(plain.socketErrors)}, non-2xx ${plain.non2xx})`);
  }
  log(`${title}: one scraper every ${SCRAPE_INTERVAL_MS} ms for ${SCRAPE_SECONDS} s`);
  const { scraped, rssSamples } = await scrapeSamplingRss(env, child, url, opts.self);
  const { stats, samples } = scraped;
  // Back to back with wrk, which (unlike a Node scraper) has no garbage collector of its own to pause it.
  log(`${title}: one scraper back to back (wrk -c1) for ${BACK_TO_BACK_SECONDS} s`);
  const b2b = await runWrk({
    wrk: env.wrk, url, gzip: true, threads: 1, connections: 1, seconds: BACK_TO_BACK_SECONDS, timeoutSeconds: WRK_TIMEOUT_SECONDS,
    cpus: env.pin.enabled ? env.pin.load : undefined, taskset: env.taskset,
  });
  const backToBack: LatencyStats = { requests: b2b.requests, p50: b2b.p50Ms ?? NaN, p99: b2b.p99Ms ?? NaN, max: b2b.maxMs ?? NaN, errors: wrkErrors(b2b) ? [`wrk: ${wrkErrors(b2b)} errors`] : [] };
  log(`${title}: back to back p50 ${backToBack.p50.toFixed(2)} ms, p99 ${backToBack.p99.toFixed(2)} ms, max ${backToBack.max.toFixed(2)} ms`);
  if (!child.running) throw new Error(`${title} exited during the measurement\n${child.tail()}`);
  const { rss, hwm } = readRss(child.pid);
  const rssMean = rssSamples.length ? rssSamples.reduce((a, b) => a + b, 0) / rssSamples.length : rss;
  const rssMax = rssSamples.length ? Math.max(...rssSamples) : rss;
  const foreign = otherCpu();
  if (foreign > 0.05) log(`warning: other processes used ${foreign.toFixed(2)} cores during the ${title} measurement`);
  log(`${title}: scraper p50 ${stats.p50.toFixed(2)} ms, p99 ${stats.p99.toFixed(2)} ms, max ${stats.max.toFixed(2)} ms; RSS mean ${(rssMean / 2 ** 20).toFixed(1)} MiB (max sampled ${(rssMax / 2 ** 20).toFixed(1)}, at the end ${(rss / 2 ** 20).toFixed(1)}), peak ${(hwm / 2 ** 20).toFixed(1)} MiB`);
  const result: ServerResult = { key, title, gzip, plain, scrape: stats, backToBack, rssMean, rssMax, gzipAnswerBytes: probe.body.length, rss, hwm, otherCpu: foreign };
  return { result, samples };
}

/**
 * Throughput of the exporter and of the bare Buffer, in alternating rounds: the same machine noise
 * falls on both. The exporter is frozen (SIGSTOP) while the Buffer is measured, so its collector
 * takes no CPU from it; it keeps running (and publishing) while it is measured itself.
 */
async function alternatingThroughput(env: Env, exporter: Child, exporterUrl: string, bufferUrl: string): Promise<{ exporter: WrkResult; buffer: WrkResult }> {
  const wrk = (url: string) =>
    runWrk({
      wrk: env.wrk, url, gzip: true, threads: WRK_THREADS, connections: WRK_CONNECTIONS, seconds: ROUND_SECONDS, timeoutSeconds: WRK_TIMEOUT_SECONDS,
      cpus: env.pin.enabled ? env.pin.load : undefined, taskset: env.taskset,
    });
  const e: WrkResult[] = [];
  const b: WrkResult[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    e.push(await wrk(exporterUrl));
    exporter.pause();
    try {
      b.push(await wrk(bufferUrl));
    } finally {
      exporter.resume();
    }
    log(`round ${i + 1}/${ROUNDS}: exporter ${e.at(-1)!.requestsPerSecond.toFixed(0)} req/s, bare Buffer ${b.at(-1)!.requestsPerSecond.toFixed(0)} req/s`);
  }
  return { exporter: medianRun(e), buffer: medianRun(b) };
}

/** The round with the median requests/s, its counts summed over every round (errors are never hidden). */
function medianRun(runs: WrkResult[]): WrkResult {
  const sorted = [...runs].sort((x, y) => x.requestsPerSecond - y.requestsPerSecond);
  const mid = sorted[Math.floor(sorted.length / 2)]!;
  const sum = (f: (r: WrkResult) => number) => runs.reduce((n, r) => n + f(r), 0);
  return {
    ...mid,
    socketErrors: {
      connect: sum((r) => r.socketErrors.connect),
      read: sum((r) => r.socketErrors.read),
      write: sum((r) => r.socketErrors.write),
      timeout: sum((r) => r.socketErrors.timeout),
    },
    non2xx: sum((r) => r.non2xx),
    command: `${mid.command} (median of ${runs.length} rounds)`,
  };
}

function exporterFigures(samples: ScrapeSample[]): ExporterFigures {
  const vals = (f: (s: ScrapeSample) => number | undefined) => samples.map(f).filter((v): v is number => v !== undefined);
  const max = (xs: number[]) => (xs.length ? Math.max(...xs) : undefined);
  const runs = vals((s) => s.runs);
  const durations = vals((s) => s.durationS);
  return {
    lagMaxMs: max(vals((s) => s.lagMaxS).map((v) => v * 1000)),
    lagP99Ms: max(vals((s) => s.lagP99S).map((v) => v * 1000)),
    runsDuringScrape: runs.length ? runs.at(-1)! - runs[0]! : undefined,
    durationLastS: durations.at(-1),
    durationMaxS: max(durations),
  };
}

function toolVersion(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const line = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').find((l) => l.trim()) ?? 'unknown';
  return line.replace(/\s*Copyright.*$/, '').trim();
}

function gitCommit(): string {
  const git = (args: string[]) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' });
  const sha = git(['rev-parse', '--short', 'HEAD']).stdout?.trim() || 'unknown';
  const dirty = git(['status', '--porcelain', '--untracked-files=no']).stdout?.trim();
  return dirty ? `${sha} (with uncommitted changes)` : sha;
}

async function run(env: Env): Promise<BenchResult> {
  const notes: string[] = [];
  const serverCpus = env.pin.enabled ? env.pin.server : undefined;
  const loadCpus = env.pin.enabled ? env.pin.load : undefined;

  // 0. The floor of the event-loop delay figures: an idle Node process on the servers' core.
  const floor = JSON.parse(await runToEnd('idle-loop', [NODE, IDLE_LOOP, String(IDLE_LOOP_SECONDS)], serverCpus, env.taskset, 60_000)) as { maxMs: number; p99Ms: number };
  log(`idle Node process: event-loop delay max ${floor.maxMs.toFixed(1)} ms, p99 ${floor.p99Ms.toFixed(1)} ms (10 ms resolution included)`);

  // 1. The exporter, its collector polling the simulator.
  log(`simulator: --cardinality ${CARDINALITY}`);
  const sim = startChild('simulator', [NODE, MAIN, 'simulate', '--listen', '127.0.0.1:0', '--cardinality', String(CARDINALITY)], loadCpus, env.taskset);
  const simUrl = await sim.waitForLine((line) => {
    try {
      const j = JSON.parse(line) as { msg?: string; url?: string };
      return j.msg === 'simulator listening' ? j.url : undefined;
    } catch {
      return undefined;
    }
  }, 30_000);
  const exporterPort = await freePort();
  const exporter = startChild('exporter', [NODE, MAIN, '--config', BENCH_CONFIG, '--web.listen-address', `127.0.0.1:${exporterPort}`], serverCpus, env.taskset, { SIMULATOR_URL: simUrl });
  const exporterUrl = `http://127.0.0.1:${exporterPort}/metrics`;
  log(`exporter: pid ${exporter.pid}, ${exporterUrl}; waiting for a publish of > ${PUBLISHED_SERIES.toLocaleString('en')} series`);
  const t0 = Date.now();
  const snapshot = await poll('the first publish', exporter, READY_TIMEOUT_MS, async () => {
    const r = await get(exporterUrl, true);
    if (r.status !== 200 || r.encoding !== 'gzip') return undefined;
    const series = sampleValues(gunzipSync(r.body), 'conviva_exporter_collector_series').reduce((a, b) => a + b, 0);
    return series > PUBLISHED_SERIES ? r.body : undefined;
  });
  log(`exporter: published after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const gzipFile = path.join(env.tmp, 'metrics.gz');
  writeFileSync(gzipFile, snapshot);
  const text = gunzipSync(snapshot).toString('utf8');
  const dataSeries = countDataSeries(text);
  const pushed = dataOnly(text);
  log(`exposition: ${dataSeries.toLocaleString('en')} data series, ${(text.length / 2 ** 20).toFixed(2)} MiB text, ${(snapshot.length / 2 ** 20).toFixed(2)} MiB gzip`);

  // The bare Buffer serves the exporter's own answer; it idles beside the exporter until measured.
  const bufServer = startChild('buffer-server', [NODE, BUFFER_SERVER, gzipFile, '0'], serverCpus, env.taskset);
  const bufPort = await bufServer.waitForLine((line) => {
    try {
      return (JSON.parse(line) as { port?: number }).port;
    } catch {
      return undefined;
    }
  }, 10_000);
  const bufferUrl = `http://127.0.0.1:${bufPort}/metrics`;
  log(`bare gzip Buffer: pid ${bufServer.pid}, port ${bufPort}; ${ROUNDS} alternating rounds of ${ROUND_SECONDS} s`);
  const rounds = await alternatingThroughput(env, exporter, exporterUrl, bufferUrl);
  // The serving thread's event-loop monitor saw the last freeze as one long delay: let the
  // self-metrics windows that include it (one a second) pass before reading them.
  await sleep(3000);

  const exp = await measure(env, 'exporter', 'exporter', exporter, exporterUrl, { plain: PLAIN, self: true, otherPids: [sim.pid, bufServer.pid], gzip: rounds.exporter });
  const figures = exporterFigures(exp.samples);
  if (figures.lagMaxMs === undefined) notes.push('The exporter served no nodejs_eventloop_lag_max_seconds: event-loop delay is n/a.');
  if (figures.runsDuringScrape !== undefined && figures.runsDuringScrape < 2) notes.push(`Only ${figures.runsDuringScrape} collector run(s) ended during the exporter's scraper phase (at least 2 expected).`);
  const seriesSeen = exp.samples.map((s) => s.series).filter((v): v is number => v !== undefined);
  if (seriesSeen.some((v) => v < PUBLISHED_SERIES)) notes.push('The exporter published fewer series at some point of its scraper phase (a failed or partial run?).');
  // The Buffer's latency and RSS, with the exporter frozen.
  exporter.pause();
  const buf = await measure(env, 'buffer', 'bare gzip Buffer', bufServer, bufferUrl, { plain: false, self: false, otherPids: [exporter.pid, sim.pid], gzip: rounds.buffer });
  await bufServer.stop();
  await exporter.stop();
  await sim.stop();

  // 2. Debian's pushgateway holding the same data series.
  const pgwPort = await freePort();
  const pgwBase = `http://127.0.0.1:${pgwPort}`;
  const pgw = startChild(
    'pushgateway',
    [env.pushgateway, `--web.listen-address=127.0.0.1:${pgwPort}`, `--persistence.file=${path.join(env.tmp, 'pushgateway.data')}`, '--log.level=warn'],
    serverCpus,
    env.taskset,
  );
  await poll('the pushgateway to be ready', pgw, 30_000, async () => ((await get(`${pgwBase}/-/ready`, false)).status === 200 ? true : undefined));
  log(`pushgateway: pid ${pgw.pid}; PUT ${pushed.series.toLocaleString('en')} series (${(pushed.text.length / 2 ** 20).toFixed(2)} MiB)`);
  const put = await request(`${pgwBase}/metrics/job/bench`, { method: 'PUT', body: pushed.text, headers: { 'content-type': 'text/plain; version=0.0.4' } });
  const putBody = await put.body.text();
  if (put.statusCode < 200 || put.statusCode > 299) throw new Error(`pushgateway refused the PUT: HTTP ${put.statusCode}: ${putBody.slice(0, 500)}`);
  const pgwText = decoded(await get(`${pgwBase}/metrics`, false)).toString('utf8');
  const pgwSeries = countSeriesNamed(pgwText, pushed.names);
  if (pgwSeries !== pushed.series) throw new Error(`pushgateway serves ${pgwSeries} of the ${pushed.series} series pushed`);
  const pg = await measure(env, 'pushgateway', 'pushgateway', pgw, `${pgwBase}/metrics`, { plain: PLAIN, self: false });
  await pgw.stop();

  // 3. The exporter again, pushing over OTLP as well.
  const otlp = OTLP ? await otlpPhase(env) : undefined;
  if (otlp && otlp.failures > 0) notes.push(`${otlp.failures} OTLP push(es) failed during the OTLP phase.`);

  return {
    date: new Date(),
    machine: {
      cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
      cores: os.cpus().length,
      memoryBytes: os.totalmem(),
      node: process.version,
      kernel: `${os.type()} ${os.release()}`,
      commit: gitCommit(),
      wrk: toolVersion(env.wrk, ['-v']),
      pushgateway: toolVersion(env.pushgateway, ['--version']),
    },
    pinning: env.pin,
    settings: {
      wrkThreads: WRK_THREADS,
      wrkConnections: WRK_CONNECTIONS,
      wrkSeconds: WRK_SECONDS,
      rounds: ROUNDS,
      roundSeconds: ROUND_SECONDS,
      wrkTimeoutSeconds: WRK_TIMEOUT_SECONDS,
      scrapeSeconds: SCRAPE_SECONDS,
      scrapeIntervalMs: SCRAPE_INTERVAL_MS,
      backToBackSeconds: BACK_TO_BACK_SECONDS,
      cardinality: CARDINALITY,
      schedule: SCHEDULE,
    },
    exposition: {
      dataSeries,
      allSeries: countSeries(text),
      textBytes: Buffer.byteLength(text),
      gzipBytes: snapshot.length,
      pushedBytes: Buffer.byteLength(pushed.text),
      pushgatewaySeries: pgwSeries,
    },
    servers: [exp.result, pg.result, buf.result],
    exporter: figures,
    idleLoop: { lagMaxMs: floor.maxMs, lagP99Ms: floor.p99Ms, seconds: IDLE_LOOP_SECONDS },
    notes,
    otlp,
  };
}

/**
 * The exporter with the bench config plus an otlp: block (http/protobuf every OTLP_INTERVAL_S s to
 * a counting sink on the load's core), measured once its pushes carry the whole exposition: one
 * scraper every SCRAPE_INTERVAL_MS ms (latency and event-loop delay across pushes and publishes), RSS.
 */
async function otlpPhase(env: Env): Promise<OtlpFigures> {
  const serverCpus = env.pin.enabled ? env.pin.server : undefined;
  const loadCpus = env.pin.enabled ? env.pin.load : undefined;
  const portOf = (line: string) => {
    try {
      const j = JSON.parse(line) as { port?: number; url?: string; msg?: string };
      return j.port ?? (j.msg === 'simulator listening' ? j.url : undefined);
    } catch {
      return undefined;
    }
  };
  const sink = startChild('otlp-sink', [NODE, OTLP_SINK], loadCpus, env.taskset);
  const sinkPort = (await sink.waitForLine(portOf, 10_000)) as number;
  const stats = async () => JSON.parse((await get(`http://127.0.0.1:${sinkPort}/stats`, false)).body.toString('utf8')) as { requests: number; bytes: number };
  const sim = startChild('simulator', [NODE, MAIN, 'simulate', '--listen', '127.0.0.1:0', '--cardinality', String(CARDINALITY)], loadCpus, env.taskset);
  const simUrl = (await sim.waitForLine(portOf, 30_000)) as string;
  const config = path.join(env.tmp, 'bench-otlp.yml');
  writeFileSync(config, `${readFileSync(BENCH_CONFIG, 'utf8')}\notlp:\n  endpoint: http://127.0.0.1:${sinkPort}/v1/metrics\n  interval: ${OTLP_INTERVAL_S}s\n  timeout: 10s\n`);
  const port = await freePort();
  const exporter = startChild('exporter (OTLP)', [NODE, MAIN, '--config', config, '--web.listen-address', `127.0.0.1:${port}`], serverCpus, env.taskset, { SIMULATOR_URL: simUrl });
  const url = `http://127.0.0.1:${port}/metrics`;
  log(`exporter with OTLP push: pid ${exporter.pid}, every ${OTLP_INTERVAL_S} s to the sink on port ${sinkPort}; waiting for a push of > ${PUBLISHED_SERIES.toLocaleString('en')} points`);
  const value = (body: Buffer, name: string, labels: Record<string, string> = {}) => sampleValues(body, name, labels)[0];
  const first = await poll('a whole OTLP push', exporter, READY_TIMEOUT_MS + OTLP_INTERVAL_S * 2000, async () => {
    const r = await get(url, true);
    if (r.status !== 200) return undefined;
    const body = gunzipSync(r.body);
    return (value(body, 'conviva_exporter_otlp_points') ?? 0) > PUBLISHED_SERIES ? body : undefined;
  });
  const sinkBefore = await stats();
  const { scraped, rssSamples } = await scrapeSamplingRss(env, exporter, url, true);
  const sinkAfter = await stats();
  const last = gunzipSync((await get(url, true)).body);
  const rssMean = rssSamples.length ? rssSamples.reduce((a, b) => a + b, 0) / rssSamples.length : readRss(exporter.pid).rss;
  if (!exporter.running) throw new Error(`the exporter with OTLP exited during the measurement\n${exporter.tail()}`);
  await exporter.stop();
  await sim.stop();
  await sink.stop();
  const delta = (name: string, result: string) => (value(last, name, { result }) ?? 0) - (value(first, name, { result }) ?? 0);
  const figures = exporterFigures(scraped.samples);
  const pushDurations = scraped.samples.map((s) => s.otlpPushS).filter((v): v is number => v !== undefined);
  const o: OtlpFigures = {
    intervalS: OTLP_INTERVAL_S,
    scrape: scraped.stats,
    lagMaxMs: figures.lagMaxMs,
    lagP99Ms: figures.lagP99Ms,
    rssMean,
    pushes: delta('conviva_exporter_otlp_exports_total', 'success'),
    failures: delta('conviva_exporter_otlp_exports_total', 'failure'),
    points: value(last, 'conviva_exporter_otlp_points'),
    durationLastS: value(last, 'conviva_exporter_otlp_push_duration_seconds'),
    durationMaxS: pushDurations.length ? Math.max(...pushDurations) : undefined,
    requests: sinkAfter.requests - sinkBefore.requests,
    bytes: sinkAfter.bytes - sinkBefore.bytes,
  };
  log(`exporter with OTLP push: ${o.pushes} pushes of ${o.points} points (${o.failures} failed), scraper p99 ${o.scrape.p99.toFixed(2)} ms, max ${o.scrape.max.toFixed(2)} ms, event-loop max ${o.lagMaxMs?.toFixed(1)} ms`);
  return o;
}


async function main(): Promise<number> {
  if (process.env.BENCH_REPORT_FROM) {
    const saved = JSON.parse(readFileSync(process.env.BENCH_REPORT_FROM, 'utf8')) as BenchResult;
    saved.date = new Date(saved.date);
    writeFileSync(OUT, renderReport(saved));
    log(`wrote ${path.relative(process.cwd(), OUT) || OUT} from ${process.env.BENCH_REPORT_FROM}`);
    return 0;
  }
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm run bench does)`);
  const pin = detectPinning();
  const tools = requireTools([
    { name: 'wrk', candidates: ['wrk'], debianPackage: 'wrk' },
    { name: 'pushgateway', candidates: process.env.BENCH_PUSHGATEWAY ? [process.env.BENCH_PUSHGATEWAY] : ['prometheus-pushgateway', 'pushgateway'], debianPackage: 'prometheus-pushgateway' },
    ...(pin.enabled ? [{ name: 'taskset', candidates: ['taskset'], debianPackage: 'util-linux' }] : []),
  ]);
  if (!pin.enabled) log(`only ${pin.cores} core: nothing is pinned`);
  else if (!pinSelf(pin.load, tools.taskset!)) log(`warning: could not pin the bench process to core ${pin.load}`);

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'exporter-bench-'));
  const env: Env = { pin, taskset: pin.enabled ? tools.taskset : undefined, wrk: tools.wrk!, pushgateway: tools.pushgateway!, tmp };
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await stopAll();
      rmSync(tmp, { recursive: true, force: true });
    })());
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = sig;
      log(`${sig}: stopping every child process`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    const result = await run(env);
    if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify(result, null, 2) + '\n');
    writeFileSync(OUT, renderReport(result));
    log(`wrote ${path.relative(process.cwd(), OUT) || OUT}`);
    console.error(targetSummary(result));
    return 0;
  } finally {
    await cleanup();
  }
}

/** Set by SIGINT/SIGTERM: the errors that follow (children stopped under our feet) are not failures. */
let interrupted: string | undefined;

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    killAllNow();
    if (interrupted) {
      log(`interrupted (${interrupted})`);
      process.exit(130);
    }
    console.error(`[bench] failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
