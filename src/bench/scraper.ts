// One scraper, run as its own process (pinned to the load core): GET /metrics with
// accept-encoding gzip every --interval-ms for --seconds, one keep-alive connection, whole body
// read; latency from sending to the last byte. With --self it keeps every answer and, once the
// phase is over (so that gunzipping 10 MiB a time and its garbage never land inside a measured
// request), reads the exporter's event-loop and collector self-metrics from each.
// Prints one JSON object (ScrapeOutput) on stdout.
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { sampleValues } from './exposition.js';

export interface ScrapeSample {
  /** ms since the scraper started */
  at: number;
  /** send to last byte, ms */
  ms: number;
  status: number;
  bytes: number;
  lagMaxS?: number;
  lagP99S?: number;
  /** conviva_exporter_collector_runs_total, all results */
  runs?: number;
  durationS?: number;
  /** conviva_exporter_otlp_push_duration_seconds (the OTLP phase only) */
  otlpPushS?: number;
  series?: number;
}

export interface ScrapeOutput {
  samples: ScrapeSample[];
  errors: string[];
}


function readSelf(gz: Buffer, s: ScrapeSample): void {
  const body = gunzipSync(gz);
  const one = (name: string, labels: Record<string, string> = {}) => sampleValues(body, name, labels)[0];
  s.lagMaxS = one('nodejs_eventloop_lag_max_seconds');
  s.lagP99S = one('nodejs_eventloop_lag_p99_seconds');
  // Every collector of the bench config, together.
  const sum = (name: string) => {
    const v = sampleValues(body, name);
    return v.length ? v.reduce((a, b) => a + b, 0) : undefined;
  };
  s.runs = sum('conviva_exporter_collector_runs_total');
  const durations = sampleValues(body, 'conviva_exporter_collector_duration_seconds');
  s.durationS = durations.length ? Math.max(...durations) : undefined;
  s.series = sum('conviva_exporter_collector_series');
  s.otlpPushS = one('conviva_exporter_otlp_push_duration_seconds');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      seconds: { type: 'string', default: '40' },
      'interval-ms': { type: 'string', default: '100' },
      self: { type: 'boolean', default: false },
    },
  });
  if (!values.url) throw new Error('--url is required');
  const seconds = Number(values.seconds);
  const interval = Number(values['interval-ms']);
  const agent = new Agent({ connections: 1, pipelining: 1 });
  const out: ScrapeOutput = { samples: [], errors: [] };
  const kept: [ScrapeSample, Buffer][] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let next = t0;
  while (next < end) {
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const start = performance.now();
    next = start + interval;
    try {
      const res = await request(values.url, { dispatcher: agent, headers: { 'accept-encoding': 'gzip' } });
      const body = Buffer.from(await res.body.arrayBuffer());
      const s: ScrapeSample = { at: start - t0, ms: performance.now() - start, status: res.statusCode, bytes: body.length };
      out.samples.push(s);
      if (res.statusCode !== 200) out.errors.push(`HTTP ${res.statusCode} at ${s.at.toFixed(0)} ms`);
      else if (values.self) {
        if (res.headers['content-encoding'] !== 'gzip') out.errors.push('answer not gzip-encoded');
        else kept.push([s, body]);
      }
    } catch (e) {
      out.errors.push(`${(e as Error).message} at ${(start - t0).toFixed(0)} ms`);
    }
  }
  await agent.close();
  for (const [s, body] of kept) {
    try {
      readSelf(body, s);
    } catch (e) {
      out.errors.push(`unreadable answer at ${s.at.toFixed(0)} ms: ${(e as Error).message}`);
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

await main();
