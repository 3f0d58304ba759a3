// docs/performance.md from one benchmark run: the three servers side by side, ratios, targets.
import type { Pinning } from './procs.js';
import { wrkErrors, type WrkResult } from './wrk.js';

export type ServerKey = 'exporter' | 'pushgateway' | 'buffer';

export interface LatencyStats {
  requests: number;
  p50: number;
  p99: number;
  max: number;
  errors: string[];
}

export interface ServerResult {
  key: ServerKey;
  title: string;
  gzip: WrkResult;
  plain: WrkResult | undefined;
  /** One scraper every scrapeIntervalMs (what a Prometheus sees; includes the machine's wake-up time). */
  scrape: LatencyStats;
  /** One scraper sending each request as soon as the previous answer is in, on one connection. */
  backToBack: LatencyStats;
  /** Size of one gzip answer (bytes on the wire), from a probe before the load. */
  gzipAnswerBytes: number;
  /** VmRSS at the end of the scraper phase. */
  rss: number;
  /** Mean and largest of VmRSS sampled every 500 ms through the paced scraper phase. */
  rssMean: number;
  rssMax: number;
  hwm: number;
  /** CPU used by processes not started by the bench during this server's measurement, in cores. */
  otherCpu: number;
}

export interface ExporterFigures {
  /** Max of nodejs_eventloop_lag_max_seconds over the scraper phase, ms; undefined when absent. */
  lagMaxMs: number | undefined;
  /** Max of the per-window nodejs_eventloop_lag_p99_seconds, ms. */
  lagP99Ms: number | undefined;
  /** Collector runs that ended during the scraper phase (runs_total delta); undefined when absent. */
  runsDuringScrape: number | undefined;
  /** collector_duration_seconds at the end, and the longest seen during the scraper phase, s. */
  durationLastS: number | undefined;
  durationMaxS: number | undefined;
}

/** The exporter again, with the OTLP push on (the same config, plus an otlp: block). */
export interface OtlpFigures {
  intervalS: number;
  scrape: LatencyStats;
  lagMaxMs: number | undefined;
  lagP99Ms: number | undefined;
  rssMean: number;
  pushes: number;
  failures: number;
  points: number | undefined;
  durationLastS: number | undefined;
  durationMaxS: number | undefined;
  requests: number;
  bytes: number;
}

export interface BenchResult {
  date: Date;
  machine: { cpu: string; cores: number; memoryBytes: number; node: string; kernel: string; commit: string; wrk: string; pushgateway: string };
  pinning: Pinning;
  settings: {
    wrkThreads: number;
    wrkConnections: number;
    wrkSeconds: number;
    rounds: number;
    roundSeconds: number;
    wrkTimeoutSeconds: number;
    scrapeSeconds: number;
    scrapeIntervalMs: number;
    backToBackSeconds: number;
    cardinality: number;
    schedule: string;
  };
  exposition: { dataSeries: number; allSeries: number; textBytes: number; gzipBytes: number; pushedBytes: number; pushgatewaySeries: number };
  servers: ServerResult[];
  exporter: ExporterFigures;
  /** The same event-loop figures of an idle Node process pinned like the servers: the floor. */
  idleLoop: { lagMaxMs: number; lagP99Ms: number; seconds: number };
  notes: string[];
  otlp?: OtlpFigures;
}

const TARGETS = { lagMaxMs: 50, gzipVsBuffer: 0.8, scraperP99Ms: 2 };
/** Above this much CPU (in cores) used by other processes during a measurement, the doc says so. */
const OTHER_CPU_NOTE = 0.05;

const int = (x: number) => Math.round(x).toLocaleString('en');
const ms = (x: number | undefined) => (x === undefined ? 'n/a' : x < 10 ? `${x.toFixed(2)} ms` : x < 100 ? `${x.toFixed(1)} ms` : `${x.toFixed(0)} ms`);
/** Requests per second: one decimal below 100. */
const rate = (x: number) => (x < 100 ? x.toFixed(1) : int(x));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 1)} MiB`;
const ratio = (a: number, b: number) => {
  const q = a / b;
  if (!(b > 0) || !Number.isFinite(q)) return 'n/a';
  return `${q >= 100 ? q.toFixed(0) : q >= 0.01 ? q.toFixed(2) : q.toPrecision(2)}×`;
};
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

function errorsOf(r: WrkResult | undefined): string {
  if (!r) return '—';
  const s = r.socketErrors;
  const socket = s.connect + s.read + s.write + s.timeout;
  return `${socket} / ${r.non2xx}`;
}

interface TargetRow {
  target: string;
  measured: string;
  result: 'PASS' | 'MISS' | 'n/a';
  gap: string;
  /** Why a miss happens, from what the engine does and what this run measured. */
  why?: string;
}

function targets(r: BenchResult): TargetRow[] {
  const by = (k: ServerKey) => r.servers.find((s) => s.key === k);
  const exp = by('exporter');
  const buf = by('buffer');
  const pgw = by('pushgateway');
  const rows: TargetRow[] = [];

  const lag = r.exporter.lagMaxMs;
  const runs = r.exporter.runsDuringScrape;
  const lagTarget = `exporter event-loop max delay ≤ ${TARGETS.lagMaxMs} ms while collector runs of ~${int(r.exposition.dataSeries / 1000)}k series fetch, parse, count, render and gzip`;
  if (lag === undefined) rows.push({ target: lagTarget, measured: 'n/a', result: 'n/a', gap: 'nodejs_eventloop_lag_max_seconds is not on /metrics' });
  else if (runs !== undefined && runs < 1) rows.push({ target: lagTarget, measured: ms(lag), result: 'n/a', gap: 'no collector run ended during the scraper phase' });
  else
    rows.push({
      target: lagTarget,
      measured: `${ms(lag)} (${runs ?? '?'} runs in the phase; idle floor ${ms(r.idleLoop.lagMaxMs)})`,
      result: lag <= TARGETS.lagMaxMs ? 'PASS' : 'MISS',
      gap: lag <= TARGETS.lagMaxMs ? '' : `${(lag / TARGETS.lagMaxMs).toFixed(1)}× the bound (${(lag - TARGETS.lagMaxMs).toFixed(0)} ms over)`,
      why:
        'The serving thread does no collector work (it only swaps in the parts the engine thread sends), so a delay this long means it was not given the CPU: ' +
        'check the "other processes\' CPU" row, and the idle floor measured first.',
    });

  if (exp && buf) {
    const q = exp.gzip.requestsPerSecond / buf.gzip.requestsPerSecond;
    rows.push({
      target: `exporter gzip req/s ≥ ${pct(TARGETS.gzipVsBuffer)} of the bare gzip Buffer's`,
      measured: `${pct(q)} (${rate(exp.gzip.requestsPerSecond)} vs ${rate(buf.gzip.requestsPerSecond)} req/s)`,
      result: q >= TARGETS.gzipVsBuffer ? 'PASS' : 'MISS',
      gap:
        q >= TARGETS.gzipVsBuffer
          ? ''
          : `${(q / TARGETS.gzipVsBuffer).toFixed(2)}× the target: needs ${int(TARGETS.gzipVsBuffer * buf.gzip.requestsPerSecond)} req/s, ${(TARGETS.gzipVsBuffer / q).toFixed(1)}× today's`,
      why:
        'A scrape writes the same bytes as the Buffer does, so the difference is the CPU the engine thread takes on the shared core during its rounds ' +
        '(the collector keeps publishing every 15 s; the Buffer is measured with the exporter frozen): compare the rounds in the log.',
    });
  }
  if (exp) {
    const p = exp.backToBack.p99;
    rows.push({
      target: `one scraper's p99 ≤ ${TARGETS.scraperP99Ms} ms (exporter, back to back on one connection, across publishes)`,
      measured: ms(p),
      result: p <= TARGETS.scraperP99Ms ? 'PASS' : 'MISS',
      gap: p <= TARGETS.scraperP99Ms ? '' : `${(p / TARGETS.scraperP99Ms).toFixed(1)}× the bound (${ms(p - TARGETS.scraperP99Ms)} over)`,
      why:
        `The serving thread and the engine thread share core ${r.pinning.server} here, and a back-to-back scraper keeps the serving thread busy all the time. ` +
        `Each publish costs the engine thread CPU (fetch, parse, count, render, gzip: a collector run took ${ms((r.exporter.durationMaxS ?? NaN) * 1000)} at most), ` +
        'which the kernel can only hand it in time slices; a request that arrives during a slice waits for it. The engine thread and V8\'s helper threads run at nice 10 ' +
        'and the engine compresses on its own thread, so the serving thread has the larger share, but Linux\'s scheduler (EEVDF) still gives the engine slices of a millisecond or more, ' +
        'and publishes cover several percent of the time: enough to set the p99. Between publishes the exporter\'s latency is the Buffer\'s (p50 in the table). ' +
        'Tried: nice 19 instead of 10 (in a separate trial on this machine, 3.4 ms instead of 4.0 ms; kept 10, so that the collector still gets CPU on a loaded host). ' +
        'What would meet it: a core for the engine thread (the exporter pinned to two cores), or SCHED_IDLE for the engine thread, rejected because on a host busy with ' +
        'other work it would starve the collectors and their data would go stale. A Prometheus scraping every 15 s or more never keeps the serving thread busy like this.',
    });
  }
  if (exp && pgw) {
    const q = exp.rssMean / pgw.rssMean;
    rows.push({
      target: 'exporter RSS ≤ pushgateway RSS (mean VmRSS over the paced scraper phase)',
      measured: `${mib(exp.rssMean)} vs ${mib(pgw.rssMean)} (largest sampled ${mib(exp.rssMax)} vs ${mib(pgw.rssMax)}; peak ${mib(exp.hwm)} vs ${mib(pgw.hwm)})`,
      result: q <= 1 ? 'PASS' : 'MISS',
      gap: q <= 1 ? '' : `${q.toFixed(2)}× the pushgateway's (${mib(exp.rssMean - pgw.rssMean)} over)`,
      why:
        'The exporter is one Node process with two V8 heaps (the serving thread\'s and the engine thread\'s), each with its own code and young generation, ' +
        `a node binary of about ${buf ? mib(buf.rssMean) : 'n/a'} (the bare Buffer's RSS), and the exposition held as text (${mib(r.exposition.textBytes)}) and gzip on the serving thread. ` +
        'Between publishes the engine heap holds the collector\'s state (counters, the cardinality guard\'s label sets); each publish adds a burst (answers, parsed JSON, ' +
        'the rendered text), collected right after it. Compare the largest sample and the peak with the mean.',
    });
  }
  return rows;
}

export function renderReport(r: BenchResult): string {
  const s = r.settings;
  const cols = r.servers;
  const head = `| | ${cols.map((c) => c.title).join(' | ')} |\n|---|${cols.map(() => '---:').join('|')}|`;
  const row = (label: string, f: (c: ServerResult) => string) => `| ${label} | ${cols.map(f).join(' | ')} |`;
  const by = (k: ServerKey) => cols.find((c) => c.key === k);
  const exp = by('exporter');
  const pgw = by('pushgateway');
  const buf = by('buffer');
  const pin = r.pinning;
  const where = pin.enabled
    ? `Each server runs pinned to core ${pin.server} (\`taskset -c ${pin.server}\`) and is the only server working while it is measured: the bare Buffer idles beside the exporter and is measured while the exporter is frozen (\`SIGSTOP\`), and the exporter and its simulator are stopped before the pushgateway starts. The load (wrk, the scraper), the simulator and the bench process itself are pinned to core ${pin.load} (\`taskset -c ${pin.load}\`).`
    : `**This machine has ${pin.cores} core: nothing is pinned.** Servers, load, simulator and bench share the core, so these figures are not comparable with pinned runs on 2+ cores. Each server is the only server running while it is measured.`;

  const ratios: [string, string][] = [];
  if (exp && buf) {
    ratios.push(['exporter ÷ bare Buffer: gzip req/s', ratio(exp.gzip.requestsPerSecond, buf.gzip.requestsPerSecond)]);
    ratios.push(['exporter ÷ bare Buffer: scraper p99, back to back', ratio(exp.backToBack.p99, buf.backToBack.p99)]);
    ratios.push([`exporter ÷ bare Buffer: scraper p99, every ${s.scrapeIntervalMs} ms`, ratio(exp.scrape.p99, buf.scrape.p99)]);
    ratios.push(['exporter ÷ bare Buffer: mean RSS', ratio(exp.rssMean, buf.rssMean)]);
  }
  if (exp && pgw) {
    ratios.push(['exporter ÷ pushgateway: gzip req/s', ratio(exp.gzip.requestsPerSecond, pgw.gzip.requestsPerSecond)]);
    if (exp.plain && pgw.plain) ratios.push(['exporter ÷ pushgateway: plain req/s', ratio(exp.plain.requestsPerSecond, pgw.plain.requestsPerSecond)]);
    ratios.push(['exporter ÷ pushgateway: scraper p99, back to back', ratio(exp.backToBack.p99, pgw.backToBack.p99)]);
    ratios.push(['exporter ÷ pushgateway: mean RSS', ratio(exp.rssMean, pgw.rssMean)]);
    ratios.push(['exporter ÷ pushgateway: peak RSS', ratio(exp.hwm, pgw.hwm)]);
  }
  if (pgw && buf) ratios.push(['pushgateway ÷ bare Buffer: gzip req/s', ratio(pgw.gzip.requestsPerSecond, buf.gzip.requestsPerSecond)]);
  const o = r.otlp;
  if (o && exp) {
    ratios.push([`exporter with OTLP push ÷ exporter: scraper p99, every ${s.scrapeIntervalMs} ms`, ratio(o.scrape.p99, exp.scrape.p99)]);
    ratios.push(['exporter with OTLP push ÷ exporter: mean RSS', ratio(o.rssMean, exp.rssMean)]);
  }

  const e = r.exporter;
  const wrkCmd = `wrk -t${s.wrkThreads} -c${s.wrkConnections} -d${s.wrkSeconds}s --latency --timeout ${s.wrkTimeoutSeconds}s -H 'Accept-Encoding: gzip' <url>/metrics`;
  const scrapeErrors = cols.filter((c) => c.scrape.errors.length).map((c) => `${c.title}: ${c.scrape.errors.slice(0, 3).join('; ')}${c.scrape.errors.length > 3 ? ` (+${c.scrape.errors.length - 3} more)` : ''}`);
  const wrkErrorCount = cols.reduce((n, c) => n + wrkErrors(c.gzip) + (c.plain ? wrkErrors(c.plain) : 0), 0);
  const tgt = targets(r);
  const notes = [...r.notes];
  const expected = Math.floor((s.scrapeSeconds * 1000) / s.scrapeIntervalMs);
  for (const c of cols)
    if (c.scrape.requests < expected * 0.9)
      notes.push(`The scraper sent ${c.scrape.requests} requests to the ${c.title} instead of ${expected}: its answers took longer than the ${s.scrapeIntervalMs} ms interval, and the next request waits for the answer.`);
  const busy = cols.filter((c) => c.otherCpu > OTHER_CPU_NOTE);
  if (busy.length)
    notes.push(
      `Processes the bench did not start used CPU while ${busy.map((c) => `${c.title} was measured (${c.otherCpu.toFixed(2)} cores on average)`).join(', and while ')}: those figures are disturbed; run the bench on a quiet machine.`,
    );
  if (buf && buf.scrape.p99 > TARGETS.scraperP99Ms)
    notes.push(
      `Polled every ${s.scrapeIntervalMs} ms, even the bare gzip Buffer has a scraper p99 of ${ms(buf.scrape.p99)} (p50 ${ms(buf.scrape.p50)}, against ${ms(buf.backToBack.p50)} back to back): a request after 100 ms of quiet costs about 2 ms here whatever the server (a plain Python client on a bare socket measured the same; busy idle-priority spinners on both cores did not change it), which is the virtual machine, not the server. That is why the ${TARGETS.scraperP99Ms} ms target is checked on the back-to-back scraper, which measures the server and not the wake-up; the paced figures stay in the table for the max wait across publishes.`,
    );

  return `# Performance

Generated by \`npm run bench\` (src/bench/metrics-bench.ts); **do not edit by hand**, run the bench again.

Measured ${r.date.toISOString().replace(/\.\d+Z$/, 'Z')} at commit ${r.machine.commit}.

| machine | |
|---|---|
| CPU | ${r.machine.cores} × ${r.machine.cpu} |
| memory | ${(r.machine.memoryBytes / 2 ** 30).toFixed(1)} GiB |
| kernel | ${r.machine.kernel} |
| Node.js | ${r.machine.node} |
| wrk | ${r.machine.wrk} |
| pushgateway | ${r.machine.pushgateway} |

## Method

Three servers of the same \`/metrics\` answer, measured one after another in one run. ${where}

1. **exporter**: the built CLI, \`node dist/main.js --config config/bench.yml --web.listen-address 127.0.0.1:<port>\`,
   with the real collectors of [\`config/bench.yml\`](../config/bench.yml) polling the simulator
   (\`node dist/main.js simulate --cardinality ${s.cardinality}\`, its own process) on \`schedule: "${s.schedule}"\`.
   Every run fetches, parses, counts, renders and gzips the ${int(r.exposition.dataSeries)} data series and
   publishes them, also while the exporter is under load.
2. **pushgateway**: Debian's \`prometheus-pushgateway\` (temporary persistence file), holding the same
   ${int(r.exposition.dataSeries)} data series: the exporter's \`/metrics\` without its own families
   (\`conviva_exporter_*\`, \`process_*\`, \`nodejs_*\`), ${mib(r.exposition.pushedBytes)}, \`PUT\` once to
   \`/metrics/job/bench\`; its \`/metrics\` then served ${int(r.exposition.pushgatewaySeries)} of them (with \`job\` and
   \`instance\` labels added, beside its own \`go_*\`, \`process_*\` and \`pushgateway_*\` series). Nothing is pushed
   while it is measured; it encodes (and gzips) its whole store on every scrape.
3. **bare gzip Buffer**: a \`node:http\` server (src/bench/buffer-server.ts) answering every request with
   the exporter's complete gzip \`/metrics\` answer, read once from a file: the floor of serving these bytes from Node.

The exposition: ${int(r.exposition.dataSeries)} data series (${int(r.exposition.allSeries)} series in all), ${mib(r.exposition.textBytes)} as text,
${mib(r.exposition.gzipBytes)} as the exporter's gzip answer.

- **Throughput**: \`${wrkCmd}\` (and the same without the header for "plain"), pinned like all load; wrk does not
  decompress, it counts the bytes. Errors are socket errors / non-2xx answers. The exporter's and the
  bare Buffer's gzip figures are the medians of ${s.rounds} alternating rounds of ${s.roundSeconds} s each (exporter,
  then Buffer with the exporter frozen, and again), so that the machine's noise falls on both alike;
  the exporter keeps collecting and publishing during its rounds.
- **One scraper**: a Node process (src/bench/scraper.ts, undici, one keep-alive connection) sends
  \`GET /metrics\` with \`accept-encoding: gzip\` every ${s.scrapeIntervalMs} ms for ${s.scrapeSeconds} s and reads each whole
  body; latency is from sending the request to the last byte. Then one scraper **back to back**
  (each request as soon as the previous answer is in, one connection: \`wrk -t1 -c1 -d${s.backToBackSeconds}s --latency\`
  with gzip), whose figures have no garbage-collection pauses of the client in them. Both phases span
  several collector publishes (every 15 s).
- **RSS**: \`VmRSS\` of the server process (the exporter's threads are in the same process), sampled every
  500 ms through the paced scraper phase: the mean is what the target compares, since the exporter's
  resident size rises with each publish and falls back when the engine collects its garbage; the largest
  sample, the value at the end, and \`VmHWM\` (the peak since start) are shown beside it.
- **Event-loop delay** of the exporter's serving thread: prom-client's \`nodejs_eventloop_lag_max_seconds\` and
  \`nodejs_eventloop_lag_p99_seconds\` (\`perf_hooks.monitorEventLoopDelay\`, reset at every render of the
  self-metrics) are read from every scraper answer; the max delay is the largest max, and the p99 is the largest
  of the per-window p99s, a conservative bound on the p99 of the whole phase. Both include the 10 ms
  resolution of the monitor: an idle Node process pinned like the servers reads max ${ms(r.idleLoop.lagMaxMs)}, p99
  ${ms(r.idleLoop.lagP99Ms)} here (${r.idleLoop.seconds} one-second windows, measured first), which is the floor of these figures.

## Results

${head}
${row('gzip: req/s (wrk)', (c) => rate(c.gzip.requestsPerSecond))}
${row('gzip: wrk p50 / p99', (c) => `${ms(c.gzip.p50Ms)} / ${ms(c.gzip.p99Ms)}`)}
${row('plain: req/s (wrk)', (c) => (c.plain ? rate(c.plain.requestsPerSecond) : '—'))}
${row('plain: wrk p50 / p99', (c) => (c.plain ? `${ms(c.plain.p50Ms)} / ${ms(c.plain.p99Ms)}` : '—'))}
${row('wrk errors gzip (socket / non-2xx)', (c) => errorsOf(c.gzip))}
${row('wrk errors plain (socket / non-2xx)', (c) => errorsOf(c.plain))}
${row('one scraper back to back: p50 / p99', (c) => `${ms(c.backToBack.p50)} / ${ms(c.backToBack.p99)}`)}
${row('one scraper back to back: max', (c) => ms(c.backToBack.max))}
${row('one scraper back to back: requests / errors', (c) => `${c.backToBack.requests} / ${c.backToBack.errors.length}`)}
${row(`one scraper every ${s.scrapeIntervalMs} ms: p50 / p99`, (c) => `${ms(c.scrape.p50)} / ${ms(c.scrape.p99)}`)}
${row(`one scraper every ${s.scrapeIntervalMs} ms: max`, (c) => ms(c.scrape.max))}
${row(`one scraper every ${s.scrapeIntervalMs} ms: requests / errors`, (c) => `${c.scrape.requests} / ${c.scrape.errors.length}`)}
${row('gzip answer size', (c) => mib(c.gzipAnswerBytes))}
${row('RSS: mean over the paced scraper phase', (c) => mib(c.rssMean))}
${row('RSS: largest sampled / at the end', (c) => `${mib(c.rssMax)} / ${mib(c.rss)}`)}
${row('peak RSS', (c) => mib(c.hwm))}
${row("other processes' CPU during the measurement", (c) => `${c.otherCpu.toFixed(2)} cores`)}

The exporter during its scraper phase: event-loop delay max ${ms(e.lagMaxMs)}, p99 ${ms(e.lagP99Ms)} (max of the
per-window p99s); collector runs ended in the phase: ${e.runsDuringScrape ?? 'n/a'}; collector run time
(\`conviva_exporter_collector_duration_seconds\`): last ${e.durationLastS === undefined ? 'n/a' : `${(e.durationLastS * 1000).toFixed(0)} ms`}, longest seen
${e.durationMaxS === undefined ? 'n/a' : `${(e.durationMaxS * 1000).toFixed(0)} ms`}.
${wrkErrorCount || scrapeErrors.length ? `\nErrors: wrk ${wrkErrorCount}${scrapeErrors.length ? `; scraper: ${scrapeErrors.join(' | ')}` : ''}.\n` : ''}
${o ? `## OTLP push

The exporter once more (last, alone on its core), with the same config plus an \`otlp:\` block
pushing every ${o.intervalS} s over http/protobuf (\`max_points_per_request\` 5000, gzip) to a sink
on the load's core (src/bench/otlp-sink.ts: it counts, decodes nothing), and one scraper every
${s.scrapeIntervalMs} ms for ${s.scrapeSeconds} s: the push runs on the engine's thread, so the serving thread should not see it.

| | exporter with OTLP push | exporter (above) |
|---|---:|---:|
| one scraper every ${s.scrapeIntervalMs} ms: p50 / p99 | ${ms(o.scrape.p50)} / ${ms(o.scrape.p99)} | ${exp ? `${ms(exp.scrape.p50)} / ${ms(exp.scrape.p99)}` : 'n/a'} |
| one scraper every ${s.scrapeIntervalMs} ms: max | ${ms(o.scrape.max)} | ${exp ? ms(exp.scrape.max) : 'n/a'} |
| event-loop delay max / p99 | ${ms(o.lagMaxMs)} / ${ms(o.lagP99Ms)} | ${ms(e.lagMaxMs)} / ${ms(e.lagP99Ms)} |
| RSS: mean over the paced scraper phase | ${mib(o.rssMean)} | ${exp ? mib(exp.rssMean) : 'n/a'} |
| pushes accepted / failed in the phase | ${o.pushes} / ${o.failures} | — |
| points in a push | ${o.points === undefined ? 'n/a' : int(o.points)} | — |
| requests / bytes (gzip) per push, at the sink | ${o.pushes ? `${(o.requests / o.pushes).toFixed(1)} / ${mib(o.bytes / o.pushes)}` : 'n/a'} | — |
| push duration (\`conviva_exporter_otlp_push_duration_seconds\`): last / longest seen | ${o.durationLastS === undefined ? 'n/a' : `${(o.durationLastS * 1000).toFixed(0)} ms`} / ${o.durationMaxS === undefined ? 'n/a' : `${(o.durationMaxS * 1000).toFixed(0)} ms`} | — |

` : ''}## Ratios (same run)

| ratio | value |
|---|---:|
${ratios.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}

## Targets

| target | measured | result | gap |
|---|---|:---:|---|
${tgt.map((t) => `| ${t.target} | ${t.measured} | ${t.result} | ${t.gap || '—'} |`).join('\n')}
${tgt.some((t) => t.result === 'MISS' && t.why) ? `\n### Why the misses\n\n${tgt.filter((t) => t.result === 'MISS' && t.why).map((t) => `- **${t.target}**: ${t.why}`).join('\n')}\n` : ''}${notes.length ? `\n## Notes\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
}

/** One line per target for the console. */
export function targetSummary(r: BenchResult): string {
  return targets(r)
    .map((t) => `${t.result.padEnd(4)} ${t.target}: ${t.measured}${t.gap ? ` (${t.gap})` : ''}`)
    .join('\n');
}
