import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { systemClock, type Clock } from '../engine/clock.js';
import { ConvivaSim, type SimAccount } from './conviva.js';
import { defaultDimensions } from './data.js';
import { FaultSwitch, parseFaults, type FaultRule } from './faults.js';

export interface SimulatorOptions {
  seed?: number;
  clock?: Clock;
  /** Conviva accounts (Basic auth); two demo accounts by default. */
  accounts?: SimAccount[];
  /** Values of the open-ended dimensions (asn, city, asset). */
  dimensionCardinality?: number;
  faults?: FaultRule[];
}

export const DEMO_ACCOUNTS: SimAccount[] = [
  { name: 'demo', clientId: 'demo-client', clientSecret: 'demo-secret' },
  { name: 'demo-eu', clientId: 'demo-eu-client', clientSecret: 'demo-eu-secret' },
];

export interface RequestLogEntry {
  method: string;
  path: string;
  query: string;
  status: number;
}

/** A fake of the upstream APIs with a clock, fault switches and an admin endpoint. */
export class Simulator {
  readonly faults = new FaultSwitch();
  readonly conviva: ConvivaSim;
  readonly app: express.Express;
  /** Every request answered, newest last (bounded), for tests that count calls. */
  readonly requests: RequestLogEntry[] = [];
  private server: Server | undefined;

  constructor(readonly options: SimulatorOptions = {}) {
    const clock = options.clock ?? systemClock;
    this.conviva = new ConvivaSim({
      seed: options.seed ?? 42,
      clock,
      accounts: options.accounts ?? DEMO_ACCOUNTS,
      dimensions: defaultDimensions(options.dimensionCardinality ?? 50),
    });
    if (options.faults) this.faults.set(options.faults);
    this.app = this.buildApp();
  }

  /** Listens on host:port (port 0 picks a free one); resolves to the base URL. */
  async listen(host = '127.0.0.1', port = 0): Promise<string> {
    this.server = await new Promise<Server>((resolve, reject) => {
      const s = this.app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
    });
    return this.url;
  }

  get url(): string {
    if (!this.server) throw new Error('simulator is not listening');
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /** Base URL of the Conviva Metrics V3 API. */
  get convivaUrl(): string {
    return `${this.url}/insights/3.0`;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private buildApp(): express.Express {
    const app = express();
    app.disable('x-powered-by');
    app.use(express.json({ limit: '1mb' }));

    app.get('/_admin/faults', (_req, res) => {
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
    app.put('/_admin/faults', setFaults(true));
    app.post('/_admin/faults', setFaults(false));
    app.delete('/_admin/faults', (_req, res) => {
      this.faults.clear();
      res.json([]);
    });
    app.get('/_admin/requests', (_req, res) => {
      res.json(this.requests);
    });

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
          case 'status':
            if (fault.retryAfter !== undefined) res.setHeader('Retry-After', String(fault.retryAfter));
            res.status(fault.status!).json(fault.status === 429 ? { message: 'Too Many Requests' } : { message: `simulated ${fault.status}` });
            return;
          default:
            return next();
        }
      };
      if (latencyMs > 0) setTimeout(go, latencyMs);
      else go();
    });

    app.use('/insights/3.0', (req, res) => this.conviva.handle(req, res, req.path));
    app.use((_req, res) => {
      res.status(404).json({ message: 'not found' });
    });
    return app;
  }
}
