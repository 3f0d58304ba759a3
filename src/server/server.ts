import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import type { CollectorStatus } from '../engine/runner.js';
import type { Exposition } from './exposition.js';
import { renderLandingPage } from './landing.js';

export interface ServerDeps {
  exposition: Exposition;
  status: () => CollectorStatus[];
  ready: () => boolean;
  version: string;
}

const METRICS_HEADERS = {
  'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
  'Cache-Control': 'no-store',
  Vary: 'Accept-Encoding',
};

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

// Scrapers send the same Accept-Encoding every time: remember the few answers.
const gzipCache = new Map<string, boolean>();
function wantsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let v = gzipCache.get(header);
  if (v === undefined) {
    v = acceptsGzip(header);
    if (gzipCache.size < 64) gzipCache.set(header, v);
  }
  return v;
}

function isMetrics(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return (req.method === 'GET' || req.method === 'HEAD') && (url === '/metrics' || url.startsWith('/metrics?'));
}

/**
 * The HTTP face. /metrics is answered straight from node:http with the pre-rendered parts (no
 * framework, no rendering, no copy); health, readiness and the landing page go through express.
 */
export function createRequestListener(deps: ServerDeps): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

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

  // Every route is read-only: another method on one of them is 405, not 404.
  for (const path of ['/metrics', '/-/healthy', '/-/ready', '/']) {
    app.all(path, (_req, res) => {
      res.status(405).set('Allow', 'GET, HEAD').type('text/plain').send('Method not allowed\n');
    });
  }

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('Not found\n');
  });

  return (req: IncomingMessage, res: ServerResponse) => {
    if (isMetrics(req)) {
      deps.exposition.write(res, wantsGzip(req.headers['accept-encoding']), METRICS_HEADERS, req.method === 'HEAD');
      return;
    }
    app(req, res);
  };
}
