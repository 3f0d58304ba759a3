// The engine's thread: every collector, its parsing, counting, rendering and gzip run here, so the
// thread that serves /metrics only ever writes bytes that already exist.
import { readdirSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../logger.js';
import { Engine } from './engine.js';
import type { Part } from './part.js';
import { toWire, type EngineWorkerData, type FromEngine, type ToEngine } from './thread-protocol.js';

const port = parentPort!;
const data = workerData as EngineWorkerData;
const log = createLogger(data.logLevel);
const post = (msg: FromEngine, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

const ENGINE_NICE = 10;

/**
 * Lowers the priority (nice 10) of this thread and of every other thread of the process but the
 * serving one, so that when they want the CPU at once (one core, or a container's CPU quota) the
 * serving thread runs first and a scrape never queues behind a publish. The others are V8's
 * helper threads, whose parallel garbage collection of this thread's heap would otherwise compete
 * with the serving thread as equals. Linux keeps a nice value per thread: /proc/self/task lists
 * them, /proc/thread-self names this one. Returns this thread's id.
 */
function lowerPriority(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    for (const t of readdirSync('/proc/self/task')) {
      if (Number(t) === process.pid) continue; // the serving thread
      try {
        setPriority(Number(t), ENGINE_NICE);
      } catch {
        // a thread that ended meanwhile
      }
    }
    return Number.isInteger(tid) ? tid : undefined;
  } catch {
    return undefined; // not Linux, or not allowed: the engine still works, at the same priority
  }
}
const tid = lowerPriority();
log.debug({ tid, nice: tid === undefined ? undefined : ENGINE_NICE }, 'engine thread started');

const engine = new Engine({
  config: data.config,
  log,
  version: data.version,
  ownThread: true,
  sink: {
    update(parts: Part[], remove: string[]) {
      const wire = toWire(parts);
      // The status travels with the data, so /-/ready and the landing page never lag what /metrics serves.
      post({ type: 'update', parts: wire.parts, remove, status: engine.status(), ready: engine.ready() }, wire.transfer);
    },
  },
});

/**
 * After a publish, most of this thread's heap is garbage: the parsed answers, the rendered text.
 * Collecting it at once (on this low-priority thread) brings the resident size back to the working
 * set, instead of V8 keeping the high-water mark until memory pressure builds up.
 */
function garbageCollector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined; // V8 refused the flag: V8 collects on its own schedule
  }
}
const collectGarbage = garbageCollector();
if (collectGarbage) engine.onPublished = collectGarbage;

let statusQueued = false;
engine.onStatus = () => {
  if (statusQueued) return;
  statusQueued = true;
  setImmediate(() => {
    statusQueued = false;
    post({ type: 'status', status: engine.status(), ready: engine.ready() });
  });
};

port.on('message', (msg: ToEngine) => {
  switch (msg.type) {
    case 'start':
      engine.start();
      engine.onStatus();
      return;
    case 'reload':
      engine.reload(msg.config).then(
        () => post({ type: 'reloaded', id: msg.id }),
        (err: unknown) => post({ type: 'reloaded', id: msg.id, error: err instanceof Error ? err.message : String(err) }),
      );
      return;
    case 'process':
      engine.setProcessText(msg.text);
      return;
    case 'stop':
      void engine.stop().finally(() => {
        post({ type: 'stopped' });
        // Nothing else keeps the thread alive: it ends once pending log lines are written.
        port.close();
      });
      return;
  }
});

post({ type: 'status', status: engine.status(), ready: engine.ready() });
