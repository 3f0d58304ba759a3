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
  /** --shard / --total-shards, shown on the landing page. */
  shard?: { ordinal: number; total: number };
  /** With --web.config.file: basic auth, rate limit and extra headers (src/server/web-server.ts). */
  access?: AccessControl;
}

/** What a request may do: be served, or be answered 401 (bad or no credentials) or 429 (rate limit, bcrypt queue full). */
export type AccessVerdict = 'allow' | 'unauthorized' | 'limited';

/** The web config's hold on requests; every answer carries `headers()`, and /-/healthy skips authorize(). */
export interface AccessControl {
  /** The configured response headers (http_server_config.headers) of the version in force. */
  headers(): Readonly<Record<string, string>>;
  /** At once on a cache hit; a promise when a password must be checked (off this thread). */
  authorize(req: IncomingMessage): AccessVerdict | Promise<AccessVerdict>;
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
    res.type('html').send(renderLandingPage(deps.status(), deps.version, deps.shard));
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

  const access = deps.access;
  if (!access) {
    return (req: IncomingMessage, res: ServerResponse) => {
      if (isMetrics(req)) {
        deps.exposition.write(res, wantsGzip(req.headers['accept-encoding']), METRICS_HEADERS, req.method === 'HEAD');
        return;
      }
      app(req, res);
    };
  }

  const serve = (req: IncomingMessage, res: ServerResponse, verdict: AccessVerdict) => {
    if (verdict === 'allow') {
      if (isMetrics(req)) deps.exposition.write(res, wantsGzip(req.headers['accept-encoding']), METRICS_HEADERS, req.method === 'HEAD');
      else app(req, res);
    } else if (verdict === 'unauthorized') {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic', 'Content-Type': 'text/plain; charset=utf-8' }).end('Unauthorized\n');
    } else {
      res.writeHead(429, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Too Many Requests\n');
    }
  };
  return (req: IncomingMessage, res: ServerResponse) => {
    const headers = access.headers();
    for (const name in headers) res.setHeader(name, headers[name]!);
    // Open for liveness probes (a kubelet or a load balancer has no password): it says only that
    // the process answers. Still behind TLS when TLS is on.
    if (isHealthy(req)) {
      app(req, res);
      return;
    }
    const verdict = access.authorize(req);
    if (typeof verdict === 'string') {
      serve(req, res, verdict);
      return;
    }
    verdict.then(
      (v) => {
        if (!res.destroyed) serve(req, res, v); // the client may have gone while its password was checked
      },
      () => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Internal Server Error\n');
      },
    );
  };
}

/** Exactly /-/healthy (any method: a wrong one is 405): the one path basic auth leaves open. */
function isHealthy(req: IncomingMessage): boolean {
  const url = req.url ?? '';
  return url === '/-/healthy' || url.startsWith('/-/healthy?');
}
