import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { systemClock, type Clock } from '../engine/clock.js';
import type { AnySource } from '../engine/source.js';
import { SOURCES } from '../sources/index.js';
import type { Fake, SftpEndpoint, SimulatorEndpoints } from './fake.js';
import { FaultSwitch, parseFaults, type FaultRule } from './faults.js';
import { startSftpServer, type EmbeddedSftpServer } from './sftp-server.js';

export interface SimulatorOptions {
  seed?: number;
  clock?: Clock;
  /** Values of the open-ended dimensions (asn, city, asset, ...). */
  dimensionCardinality?: number;
  /** Whether the fakes revise data after it settled (default true). */
  lateRevisions?: boolean;
  faults?: FaultRule[];
  /** Whose fakes to mount (default: every source). */
  sources?: readonly AnySource[];
  /**
   * The folder the fakes write files into (query results); default a temporary
   * folder of the simulator's own, removed by close().
   */
  filesDir?: string;
  /**
   * The SFTP server that serves `filesDir` as the login's home: a real sshd the caller runs (the
   * tests), or 'embedded' for the simulator's own (listen() starts it; the demo). None by default.
   */
  sftp?: SftpEndpoint | 'embedded';
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: string;
  status: number;
}

/** A fake of every source's upstream API on one server, with a clock, fault switches and an admin endpoint. */
export class Simulator {
  readonly faults = new FaultSwitch();
  readonly app: express.Express;
  /** Each source's fake, by source name. */
  readonly fakes = new Map<string, Fake>();
  /** Every request answered, newest last (bounded), for tests that count calls. */
  readonly requests: RequestLogEntry[] = [];
  /** The folder the fakes write files into. */
  readonly filesDir: string;
  private readonly ownFilesDir: boolean;
  private server: Server | undefined;
  private sftpServer: EmbeddedSftpServer | undefined;

  constructor(readonly options: SimulatorOptions = {}) {
    this.ownFilesDir = options.filesDir === undefined;
    this.filesDir = options.filesDir ?? mkdtempSync(join(tmpdir(), 'simulator-files-'));
    const fakeOptions = {
      seed: options.seed ?? 42, clock: options.clock ?? systemClock, cardinality: options.dimensionCardinality ?? 50, lateRevisions: options.lateRevisions ?? true, filesDir: this.filesDir,
    };
    for (const s of options.sources ?? SOURCES) this.fakes.set(s.name, s.fake(fakeOptions));
    if (options.faults) this.faults.set(options.faults);
    this.app = this.buildApp();
  }

  /** The fake of one source (tests reach into it to compute what it served). */
  fake<F extends Fake>(source: string): F {
    const f = this.fakes.get(source);
    if (!f) throw new Error(`the simulator has no fake for ${source}`);
    return f as F;
  }

  /** Listens on host:port (port 0 picks a free one), and starts the embedded SFTP server if asked; resolves to the base URL. */
  async listen(host = '127.0.0.1', port = 0): Promise<string> {
    this.server = await new Promise<Server>((resolve, reject) => {
      const s = this.app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
    });
    if (this.options.sftp === 'embedded' && !this.sftpServer) this.sftpServer = await startSftpServer({ root: this.filesDir, host });
    return this.url;
  }

  /** The HTTP base URL and the SFTP server, for the sources' useSimulator. */
  get endpoints(): SimulatorEndpoints {
    const sftp = this.options.sftp === 'embedded' ? this.sftpServer?.endpoint : this.options.sftp;
    return { url: this.url, ...(sftp ? { sftp } : {}) };
  }

  /** Base URL of every fake API (each source's base_url is this host). */
  get url(): string {
    if (!this.server) throw new Error('simulator is not listening');
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  async close(): Promise<void> {
    const sftp = this.sftpServer;
    this.sftpServer = undefined;
    await sftp?.close();
    if (this.ownFilesDir) rmSync(this.filesDir, { recursive: true, force: true });
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private buildApp(): express.Express {
    const app = express();
    app.disable('x-powered-by');

    const admin = express.Router();
    admin.use(express.json({ limit: '1mb' }));
    admin.get('/faults', (_req, res) => {
      res.json(this.faults.list());
    });
    const setFaults = (replace: boolean) => (req: Request, res: Response) => {
      try {
        const rules = parseFaults(req.body);
        if (replace) this.faults.set(rules);
        else this.faults.add(rules);
        res.json(this.faults.list());
      } catch (e) {
        res.status(400).json({ message: (e as Error).message });
      }
    };
    admin.put('/faults', setFaults(true));
    admin.post('/faults', setFaults(false));
    admin.delete('/faults', (_req, res) => {
      this.faults.clear();
      res.json([]);
    });
    admin.get('/requests', (_req, res) => {
      res.json(this.requests);
    });
    for (const f of this.fakes.values()) f.admin?.(admin);
    app.use('/_admin', admin);

    app.use((req: Request, res: Response, next: NextFunction) => {
      res.on('finish', () => {
        this.requests.push({ method: req.method, path: req.path, query: req.originalUrl.split('?')[1] ?? '', status: res.statusCode });
        if (this.requests.length > 10_000) this.requests.splice(0, this.requests.length - 10_000);
      });
      const { latencyMs, fault } = this.faults.pick(req.path);
      const go = () => {
        if (!fault) return next();
        switch (fault.kind) {
          case 'hang':
            return; // never answer; the client's timeout must fire
          case 'malformed':
            res.status(200).type('application/json').send('{"time_series": [ {"timestamp": {"epoch_ms": 17');
            return;
          case 'truncate': {
            // Promise a whole answer, send the start of one, and drop the connection.
            const start = '{"time_series": [{"timestamp": {"epoch_ms": 1764000000000}, "attempts": {"count": 12';
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(start.length * 4) });
            res.write(start, () => res.destroy());
            return;
          }
          case 'body':
            res.status(fault.status ?? 200).type('application/json').send(Buffer.from(fault.body ?? '', 'utf8'));
            return;
          case 'status': {
            if (fault.retryAfter !== undefined) res.setHeader('Retry-After', String(fault.retryAfter));
            const message = fault.status === 429 ? 'Too Many Requests' : `simulated ${fault.status}`;
            res.status(fault.status!).json(fault.echoAuth ? { message, request: { headers: { authorization: req.headers.authorization ?? '' } } } : { message });
            return;
          }
          default:
            return next();
        }
      };
      if (latencyMs > 0) setTimeout(go, latencyMs);
      else go();
    });

    const fakes = express.Router();
    // Non-GET fakes (starting a job, submitting a query) read JSON bodies.
    fakes.use(express.json({ limit: '1mb' }));
    for (const f of this.fakes.values()) f.mount(fakes);
    app.use(fakes);
    app.use((_req, res) => {
      res.status(404).json({ message: 'not found' });
    });
    return app;
  }
}
