import { stat } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { BasicAuth, createBcryptThread, type AuthVerdict, type PasswordChecker } from './basic-auth.js';
import { createRequestListener, type AccessControl, type AccessVerdict, type ServerDeps } from './server.js';
import { loadWebConfig, WebConfigError, type TlsServerSettings, type WebConfig } from './web-config.js';

/** The serving thread's series about --web.config.file (on the process-metrics registry). */
export interface WebConfigMetrics {
  reloads: Counter<'result'>;
  lastSuccess: Gauge;
  lastSuccessful: Gauge;
  authFailures: Counter;
}

/** Registers the web config's series on `registry` (one place for their names, help and labels). */
export function createWebConfigMetrics(registry: Registry): WebConfigMetrics {
  const reloads = new Counter({
    name: 'conviva_exporter_web_config_reloads_total',
    help: 'Re-reads of --web.config.file after a change to it or to a file it names (certificate, key, client CA), by result: success (applied) or failure (refused, the running version kept). One per version of the files.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  reloads.inc({ result: 'success' }, 0);
  reloads.inc({ result: 'failure' }, 0);
  return {
    reloads,
    lastSuccess: new Gauge({
      name: 'conviva_exporter_web_config_last_reload_success_timestamp_seconds',
      help: 'Unix time the web configuration in force was read: at start-up, then at each applied change.',
      registers: [registry],
    }),
    lastSuccessful: new Gauge({
      name: 'conviva_exporter_web_config_last_reload_successful',
      help: 'Whether the web configuration on disk is the one in force (1), or a changed version was refused and the previous one still serves (0): a rotated certificate is not in use.',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'conviva_exporter_http_auth_failures_total',
      help: 'Requests refused with 401 by basic auth (basic_auth_users of --web.config.file): no, malformed or wrong credentials, or an unknown user.',
      registers: [registry],
    }),
  };
}

export interface WebServerOptions {
  /** --web.config.file */
  file: string;
  deps: Omit<ServerDeps, 'access'>;
  log: Logger;
  /** Where the web config's series go (the serving thread's process-metrics registry). */
  registry: Registry;
  /** Compares passwords (default: bcryptjs on a worker thread). */
  checker?: PasswordChecker;
  /** Least time between two looks at the files for a change, in ms (default 1000). */
  checkIntervalMs?: number;
}

/** A token bucket as golang.org/x/time/rate: `burst` tokens, one more every `intervalMs`. */
class TokenBucket {
  private tokens: number;
  private last = performance.now();
  constructor(
    readonly intervalMs: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * The HTTP or HTTPS server of --web.config.file (the exporter-toolkit's web-config format): TLS,
 * client certificates, basic auth, rate limit and headers, re-read when the file or a file it
 * names changes. The toolkit re-reads per connection; this looks at the files' stat at most once
 * a second, off the request path, applies a valid new version (new TLS context for new
 * connections, users, headers) and keeps the running one when the new one is refused.
 */
export class WebServer implements AccessControl {
  readonly server: HttpServer | HttpsServer;
  /** Whether the server speaks TLS (fixed for the process's life: a switch needs a restart). */
  readonly tls: boolean;
  private config: WebConfig;
  private readonly auth: BasicAuth;
  private readonly checker: PasswordChecker;
  private bucket: TokenBucket | undefined;
  private readonly metrics: WebConfigMetrics;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private watched: string[];
  private lastSignature = '';
  private rejectedVersion: string | undefined;
  private checkFailing = false;

  /** Reads the web config (throws WebConfigError naming every problem) and builds the server, not yet listening. */
  static async create(opts: WebServerOptions): Promise<WebServer> {
    return new WebServer(opts, await loadWebConfig(opts.file));
  }

  private constructor(
    private readonly opts: WebServerOptions,
    config: WebConfig,
  ) {
    this.config = config;
    this.log = opts.log;
    this.checker = opts.checker ?? createBcryptThread();
    this.auth = new BasicAuth(this.checker);
    this.auth.setUsers(config.users);
    this.bucket = config.rateLimit ? new TokenBucket(config.rateLimit.intervalMs, config.rateLimit.burst) : undefined;
    this.metrics = createWebConfigMetrics(opts.registry);
    this.metrics.lastSuccess.set(Date.now() / 1000);
    this.metrics.lastSuccessful.set(1);
    this.watched = config.files;

    const listener = createRequestListener({ ...opts.deps, access: this });
    const tls = config.tls;
    this.tls = tls !== undefined;
    if (tls) {
      const server = createHttpsServer({ ...tls.context, ...clientAuthOptions(tls) }, listener);
      // Checks Node's TLS does not make for these policies (RequireAndVerifyClientCert is refused
      // in the handshake itself), against the version in force when the connection is made.
      server.on('secureConnection', (socket: TLSSocket) => {
        const t = this.config.tls;
        if (t && !clientCertAllowed(socket, t)) socket.destroy();
      });
      this.server = server;
    } else {
      this.server = createHttpServer(listener);
    }
    this.log.info(
      { file: config.file, tls: this.tls, client_auth: tls?.clientAuth, basic_auth_users: config.users.size, headers: Object.keys(config.headers), rate_limit: config.rateLimit !== undefined },
      'web configuration loaded',
    );
  }

  headers(): Readonly<Record<string, string>> {
    return this.config.headers;
  }

  authorize(req: IncomingMessage): AccessVerdict | Promise<AccessVerdict> {
    if (this.bucket && !this.bucket.take()) return 'limited';
    const v = this.auth.check(req.headers.authorization);
    if (typeof v === 'string') return this.counted(v);
    return v.then(
      (x) => {
        this.checkFailing = false;
        return this.counted(x);
      },
      (err: unknown) => {
        // The bcrypt thread failed (it is started again on the next check); answered 500, logged once until a check works.
        if (!this.checkFailing) this.log.error({ err }, 'password check failed: answering 500');
        this.checkFailing = true;
        throw err;
      },
    );
  }

  private counted(v: AuthVerdict): AccessVerdict {
    if (v === 'unauthorized') this.metrics.authFailures.inc();
    return v === 'busy' ? 'limited' : v;
  }

  /** Looks at the files once a second from now on (after listening). */
  watch(): void {
    const every = this.opts.checkIntervalMs ?? 1000;
    void this.check();
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  /**
   * Looks at the files now: when the stat of the config or of a file it names changed, reads the
   * new version and applies it, or logs once per version why it is refused and keeps the running one.
   */
  check(): Promise<void> {
    this.checking ??= this.checkOnce()
      .catch((err: unknown) => this.log.error({ err, file: this.config.file }, 'web configuration check failed'))
      .finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const { signature, newestMs } = await statFiles(this.watched);
    // File times are coarse (a few ms): a file rewritten with as many bytes within that time of
    // the last look keeps its signature. So while a file is that fresh, its content is read again
    // (git's "racy clean" rule); the digest tells a real change.
    if (signature === this.lastSignature && Math.abs(Date.now() - newestMs) > RACY_MS) return;
    this.lastSignature = signature;
    let next: WebConfig;
    try {
      next = await loadWebConfig(this.opts.file);
    } catch (e) {
      if (!(e instanceof WebConfigError)) throw e;
      this.refuse(e.version, e.problems, [...new Set([...this.config.files, ...e.files])]);
      return;
    }
    if (next.digest === this.config.digest) {
      // Touched, not changed (or changed back after a refused version).
      this.watched = next.files;
      this.rejectedVersion = undefined;
      this.metrics.lastSuccessful.set(1);
      return;
    }
    if ((next.tls !== undefined) !== this.tls) {
      const problem = this.tls ? 'tls_server_config: TLS is on and the new version turns it off: switching between TLS and plain HTTP needs a restart' : 'tls_server_config: the new version turns TLS on: switching between plain HTTP and TLS needs a restart';
      this.refuse(next.digest, [problem], [...new Set([...this.config.files, ...next.files])]);
      return;
    }
    this.apply(next);
  }

  private refuse(version: string, problems: string[], watch: string[]): void {
    this.watched = watch;
    this.metrics.lastSuccessful.set(0);
    if (version === this.rejectedVersion) return;
    this.rejectedVersion = version;
    this.metrics.reloads.inc({ result: 'failure' });
    this.log.error({ file: this.config.file, problems }, 'web configuration reload failed: keeping the running configuration');
  }

  private apply(next: WebConfig): void {
    const prev = this.config;
    if (next.tls) {
      // New connections get the new certificate, key, CA and versions; open ones keep theirs.
      const server = this.server as HttpsServer;
      server.setSecureContext(next.tls.context);
      Object.assign(server, clientAuthOptions(next.tls));
    }
    if (!sameUsers(prev.users, next.users)) this.auth.setUsers(next.users);
    const r = next.rateLimit;
    if (r?.intervalMs !== this.bucket?.intervalMs || r?.burst !== this.bucket?.burst) this.bucket = r ? new TokenBucket(r.intervalMs, r.burst) : undefined;
    this.config = next;
    this.watched = next.files;
    this.rejectedVersion = undefined;
    this.metrics.reloads.inc({ result: 'success' });
    this.metrics.lastSuccess.set(Date.now() / 1000);
    this.metrics.lastSuccessful.set(1);
    this.log.info(
      { file: next.file, tls: this.tls, client_auth: next.tls?.clientAuth, basic_auth_users: next.users.size, headers: Object.keys(next.headers), rate_limit: next.rateLimit !== undefined },
      'web configuration reloaded',
    );
  }

  /** Stops looking at the files and stops the bcrypt thread (the server is closed by its owner). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.checking;
    await this.checker.stop();
  }
}

/**
 * tls.Server's requestCert and rejectUnauthorized for a policy. Node's TLS server reads these two
 * properties for every new connection (setSecureContext() leaves them), so a reload sets them too.
 */
function clientAuthOptions(t: TlsServerSettings): { requestCert: boolean; rejectUnauthorized: boolean } {
  return { requestCert: t.clientAuth !== 'NoClientCert', rejectUnauthorized: t.clientAuth === 'RequireAndVerifyClientCert' };
}

/** Go's tls.ClientAuthType checks Node's handshake leaves to us, and the toolkit's client_allowed_sans. */
export function clientCertAllowed(socket: TLSSocket, t: TlsServerSettings): boolean {
  if (t.clientAuth === 'NoClientCert') return true;
  const cert = socket.getPeerCertificate();
  const given = cert !== null && Object.keys(cert).length > 0;
  switch (t.clientAuth) {
    case 'RequireAnyClientCert':
      if (!given) return false;
      break;
    case 'VerifyClientCertIfGiven':
      if (given && !socket.authorized) return false;
      break;
    case 'RequireAndVerifyClientCert':
      if (!given || !socket.authorized) return false;
      break;
    case 'RequestClientCert':
      break;
  }
  if (t.allowedSans === undefined) return true;
  if (!given) return false;
  const sans = subjectAltNames(cert.subjectaltname);
  return t.allowedSans.some((a) => sans.includes(canonicalIp(a)));
}

/** The SAN values of Node's `subjectaltname` ("DNS:a, IP Address:1.2.3.4, email:x@y, URI:spiffe://z"), IPs as Go prints them. */
export function subjectAltNames(altnames: string | undefined): string[] {
  const out: string[] = [];
  for (const m of (altnames ?? '').matchAll(/(DNS|IP Address|email|URI):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    let v = m[2]!;
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        // keep as written
      }
    }
    out.push(m[1] === 'IP Address' ? canonicalIp(v) : v);
  }
  return out;
}

function canonicalIp(v: string): string {
  return isIPv6(v) ? new URL(`http://[${v}]/`).hostname.slice(1, -1) : v;
}

function sameUsers(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** How recent a file's change must be for its content to be read again whatever its stat says. */
const RACY_MS = 2000;

/**
 * Identity, size and times of each file (or why it cannot be read), as one signature (a change in
 * any is a new version to read), and the newest change time among them.
 */
async function statFiles(files: string[]): Promise<{ signature: string; newestMs: number }> {
  let newestMs = 0;
  const parts = await Promise.all(
    files.map(async (f) => {
      try {
        const s = await stat(f, { bigint: true });
        newestMs = Math.max(newestMs, Number(s.mtimeNs / 1_000_000n), Number(s.ctimeNs / 1_000_000n));
        return `${f}\0${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
      } catch (e) {
        return `${f}\0!${(e as NodeJS.ErrnoException).code ?? 'error'}`;
      }
    }),
  );
  return { signature: parts.join('\n'), newestMs };
}
