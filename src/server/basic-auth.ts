import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** Successful checks remembered, as the toolkit's cache (web/cache.go) holds 100. */
const CACHE_SIZE = 100;
/** Password checks waiting for the bcrypt thread before more are answered 429 (an attacker's flood). */
const MAX_PENDING = 64;

/** Compares passwords with bcrypt hashes on a thread of its own (started on first use). */
export interface PasswordChecker {
  compare(password: string, hash: string): Promise<boolean>;
  stop(): Promise<void>;
}

// bcryptjs is plain JavaScript: one check at cost 10 is ~80 ms of CPU, and its async compare()
// runs on the calling thread in slices of up to 100 ms, which would stall every scrape meanwhile.
// So checks run on a worker thread, one at a time (the toolkit's bcryptMtx does the same).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptjs);
parentPort.on('message', (m) => {
  let ok = false;
  try { ok = bcrypt.compareSync(m.password, m.hash); } catch { ok = false; }
  parentPort.postMessage({ id: m.id, ok });
});
`;

/** The bcrypt thread: bcryptjs's compareSync in a worker, so the serving thread never runs bcrypt. */
export function createBcryptThread(): PasswordChecker {
  let worker: Worker | undefined;
  let nextId = 0;
  const waiting = new Map<number, { resolve: (ok: boolean) => void; reject: (e: Error) => void }>();
  const fail = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
    worker = undefined;
  };
  const start = (): Worker => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcryptjs: createRequire(import.meta.url).resolve('bcryptjs') } });
    w.unref(); // never what keeps the process alive
    w.on('message', (m: { id: number; ok: boolean }) => {
      const entry = waiting.get(m.id);
      waiting.delete(m.id);
      entry?.resolve(m.ok);
    });
    w.on('error', (err) => fail(err));
    w.on('exit', (code) => {
      if (worker === w) fail(new Error(`bcrypt thread exited with code ${code}`));
    });
    return w;
  };
  return {
    compare(password, hash) {
      worker ??= start();
      const id = nextId++;
      const p = new Promise<boolean>((resolve, reject) => waiting.set(id, { resolve, reject }));
      worker.postMessage({ id, password, hash });
      return p;
    },
    async stop() {
      const w = worker;
      worker = undefined;
      if (w) await w.terminate();
      fail(new Error('bcrypt thread stopped'));
    },
  };
}

/** A parsed `Authorization: Basic` header, as Go's Request.BasicAuth() reads it; undefined when absent or malformed. */
export function parseBasicAuth(header: string | undefined): { user: string; password: string } | undefined {
  if (header === undefined || header.length < 6 || header.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const b64 = header.slice(6);
  // Go's base64.StdEncoding: strict alphabet and padding.
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) return undefined;
  const decoded = Buffer.from(b64, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  return { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

export type AuthVerdict = 'allow' | 'unauthorized' | 'busy';

/**
 * Basic auth against bcrypt hashes, as the toolkit's webHandler: a successful check is cached
 * under a SHA-256 of user, hash and password, so a scraper with the right password costs one
 * hash lookup per scrape; a miss is one bcrypt comparison on the bcrypt thread (concurrent
 * identical misses share it). An unknown user is compared against a configured hash, so it
 * costs what a known one costs and the answer time does not tell which users exist.
 */
export class BasicAuth {
  private users = new Map<string, string>();
  private dummyHash = '';
  private readonly cache = new Map<string, true>();
  private readonly inflight = new Map<string, Promise<boolean>>();

  constructor(private readonly checker: PasswordChecker) {}

  /** Whether basic auth is on (at least one user). */
  get enabled(): boolean {
    return this.users.size > 0;
  }

  /** Swaps in a new user list (a reload) and forgets every cached check. */
  setUsers(users: Map<string, string>): void {
    this.users = new Map(users);
    // The hash with the highest cost: an unknown user never answers faster than a known one.
    this.dummyHash = [...users.values()].sort((a, b) => Number(b.slice(4, 6)) - Number(a.slice(4, 6)))[0] ?? '';
    this.cache.clear();
  }

  /** The verdict for an Authorization header: at once on a cache hit or a malformed header, else after one bcrypt check. */
  check(header: string | undefined): AuthVerdict | Promise<AuthVerdict> {
    if (this.users.size === 0) return 'allow';
    const creds = parseBasicAuth(header);
    if (!creds) return 'unauthorized';
    const hash = this.users.get(creds.user);
    const known = hash !== undefined;
    const against = hash ?? this.dummyHash;
    // Length-prefixed so that no two (user, hash, password) triples give the same input.
    const key = createHash('sha256').update(`${creds.user.length}:${creds.user}${against}${creds.password}`).digest('base64');
    if (known && this.cache.has(key)) return 'allow';
    let pending = this.inflight.get(key);
    if (!pending) {
      if (this.inflight.size >= MAX_PENDING) return 'busy';
      const users = this.users;
      pending = this.checker.compare(creds.password, against).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
      void pending.then(
        (ok) => {
          // Cached only while the same user list is in force (a reload clears the cache).
          if (ok && known && this.users === users) this.remember(key);
        },
        () => {},
      );
    }
    return pending.then((ok) => (ok && known ? 'allow' : 'unauthorized'));
  }

  private remember(key: string): void {
    if (this.cache.size >= CACHE_SIZE) {
      // Drop the oldest tenth, so that a flood of new right passwords does not evict one by one.
      let n = Math.ceil(CACHE_SIZE / 10);
      for (const k of this.cache.keys()) {
        this.cache.delete(k);
        if (--n === 0) break;
      }
    }
    this.cache.set(key, true);
  }
}
