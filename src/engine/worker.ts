// The engine's thread: every collector, its parsing, counting, rendering and gzip run here, so the
// thread that serves /metrics only ever writes bytes that already exist.
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../logger.js';
import { Engine } from './engine.js';
import type { Part } from './part.js';
import { toWire, type EngineWorkerData, type FromEngine, type ToEngine } from './thread-protocol.js';

const port = parentPort!;
const data = workerData as EngineWorkerData;
const log = createLogger(data.logLevel);
const post = (msg: FromEngine, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

const engine = new Engine({
  config: data.config,
  log,
  version: data.version,
  sink: {
    update(parts: Part[], remove: string[]) {
      const wire = toWire(parts);
      post({ type: 'update', parts: wire.parts, remove }, wire.transfer);
    },
  },
});

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
