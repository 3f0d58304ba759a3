import { gzipSync } from 'node:zlib';
import express, { type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { CollectorStatus } from '../engine/runner.js';
import type { SnapshotStore } from '../engine/snapshot.js';
import { renderLandingPage } from './landing.js';

export interface ServerDeps {
  store: SnapshotStore;
  registry: Registry;
  status: () => CollectorStatus[];
  ready: () => boolean;
  version: string;
}

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** True when the client accepts gzip with a non-zero q-value. */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().split(';');
    if (coding?.trim().toLowerCase() !== 'gzip') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** The HTTP face: /metrics serves pre-rendered bytes plus live self-metrics; health, readiness, landing page. */
export function createServer(deps: ServerDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.get('/metrics', async (req: Request, res: Response) => {
    const snapshot = deps.store.current();
    // Self-metrics are small and live; the data part was rendered and gzipped at publish time.
    const self = await deps.registry.metrics();
    res.setHeader('Content-Type', CONTENT_TYPE);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Vary', 'Accept-Encoding');
    if (acceptsGzip(req.headers['accept-encoding'])) {
      res.setHeader('Content-Encoding', 'gzip');
      res.end(Buffer.concat([snapshot.gzip, gzipSync(self, { level: 1 })]));
    } else {
      // Two writes, no copy of the (possibly many-MiB) snapshot buffer.
      res.write(snapshot.text);
      res.end(self);
    }
  });

  app.get('/-/healthy', (_req, res) => {
    res.type('text/plain').send('Healthy\n');
  });

  app.get('/-/ready', (_req, res) => {
    if (deps.ready()) {
      res.type('text/plain').send('Ready\n');
      return;
    }
    const waiting = deps.status().filter((s) => s.lastPublishAt === undefined).map((s) => s.name);
    res.status(503).type('text/plain').send(`Not ready: waiting for a first published run of ${waiting.join(', ')}\n`);
  });

  app.get('/', (_req, res) => {
    res.type('html').send(renderLandingPage(deps.status(), deps.version));
  });

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found\n');
  });
  return app;
}
