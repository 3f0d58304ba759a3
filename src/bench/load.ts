// Load generator for the benchmark, run as its own process so it does not share the server's event loop.
import { Agent, request } from 'undici';

const [url, concArg, secondsArg, gzipArg] = process.argv.slice(2);
const concurrency = Number(concArg ?? 8);
const seconds = Number(secondsArg ?? 5);
const gzip = gzipArg === 'gzip';
const agent = new Agent({ connections: concurrency, pipelining: 1 });
const latencies: number[] = [];
let bytes = 0;
let errors = 0;
const until = performance.now() + seconds * 1000;

async function worker(): Promise<void> {
  while (performance.now() < until) {
    const t0 = performance.now();
    try {
      const res = await request(url!, { dispatcher: agent, headers: gzip ? { 'accept-encoding': 'gzip' } : {} });
      const body = await res.body.arrayBuffer();
      if (res.statusCode !== 200) errors++;
      bytes += body.byteLength;
      latencies.push(performance.now() - t0);
    } catch {
      errors++;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
await agent.close();
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
process.stdout.write(
  JSON.stringify({ requests: latencies.length, errors, rps: latencies.length / seconds, p50: pct(50), p99: pct(99), bytesPerResponse: latencies.length ? bytes / latencies.length : 0 }) + '\n',
);
