// The floor of the event-loop delay figures on this machine: an idle Node process (run pinned to
// the servers' core) measuring itself the way prom-client does (monitorEventLoopDelay, 10 ms
// resolution, reset at every read), read once a second. The values include the 10 ms resolution.
// Usage: idle-loop.js [seconds]; prints {"maxMs":..,"p99Ms":..} on stdout.
import { monitorEventLoopDelay } from 'node:perf_hooks';

const seconds = Number(process.argv[2] ?? 5);
const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
let maxMs = 0;
let p99Ms = 0;
let windows = 0;
const timer = setInterval(() => {
  maxMs = Math.max(maxMs, h.max / 1e6);
  p99Ms = Math.max(p99Ms, h.percentile(99) / 1e6);
  h.reset();
  if (++windows >= seconds) {
    clearInterval(timer);
    h.disable();
    process.stdout.write(JSON.stringify({ maxMs, p99Ms, windows }) + '\n');
  }
}, 1000);
