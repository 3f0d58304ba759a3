import { createHash } from 'node:crypto';
import { Socket } from 'node:net';
import { Readable } from 'node:stream';
import ssh2, { type ConnectConfig, type SFTPWrapper, type Stats } from 'ssh2';

// ssh2 is CommonJS and builds its exports object with require() calls, which Node's ESM named-export
// detection cannot see: take the classes off the default export.
const { Client, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

export interface SftpSettings {
  host: string;
  port: number;
  username: string;
  /** One of password / privateKey. */
  password?: string;
  /** OpenSSH or PEM private key. */
  privateKey?: string | Buffer;
  passphrase?: string;
  /**
   * The server's host key as `ssh-keygen -l -E sha256` prints it: `SHA256:<base64, no padding>`.
   * Never accept any other key. It must be the fingerprint of the key type ssh2 negotiates: its
   * preference is ed25519, then ecdsa, then rsa, so for a server with several host keys give the
   * ed25519 one.
   */
  hostKeyFingerprint: string;
  /** Connect + SSH handshake + auth deadline (here also covering the opening of the sftp subsystem). */
  connectTimeoutMs: number;
}

/** Stable error codes; callers branch on `code`, never on message text. */
export type SftpErrorCode =
  | 'SFTP_HOST_KEY' // the server presented another host key than the configured one
  | 'SFTP_AUTH' // credentials refused, or the private key cannot be used
  | 'SFTP_CONNECT' // refused, unreachable, DNS, reset before the session was open
  | 'SFTP_TIMEOUT' // no session within connectTimeoutMs
  | 'SFTP_NOT_FOUND' // the remote file does not exist (SFTP status 2)
  | 'SFTP_IO'; // anything else: other SFTP statuses, connection lost mid-session

/** An SFTP failure; its message never contains the password, passphrase or key. */
export class SftpError extends Error {
  readonly code: SftpErrorCode;
  /** `sftp://user@host:port`, for logs. */
  readonly endpoint: string;
  /** The remote path, when the failure is about one. */
  readonly path: string | undefined;

  constructor(code: SftpErrorCode, message: string, opts: { endpoint: string; path?: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SftpError';
    this.code = code;
    this.endpoint = opts.endpoint;
    this.path = opts.path;
  }
}

/** SHA256 fingerprint of a raw public host key blob, as ssh-keygen prints it. */
export function fingerprint(hostKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
}

/** Whether a configured fingerprint is well formed (used by config validation): `SHA256:` + 43 base64 chars (padding optional). */
export function isFingerprint(s: string): boolean {
  return /^SHA256:[A-Za-z0-9+/]{43}=?$/.test(s);
}

export interface SftpSession {
  /** Size in bytes of a remote file (SFTP_NOT_FOUND when it does not exist). */
  size(path: string): Promise<number>;
  /** A readable stream of a remote file's bytes (errors surface as SftpError on the stream). */
  read(path: string): Readable;
}

// Network failures that mean "could not reach an SSH server" rather than "it broke mid-session".
const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']);

// Reads run this many requests ahead of the consumer (ssh2's own stream waits for each one, so a
// download would cost a round trip per chunk). 32 KiB fits the smallest packet SFTP servers are
// expected to take (34000 bytes); ssh2 would split a larger read into sequential ones anyway.
const CHUNK = 32 * 1024;
const READ_AHEAD = 16;

// How long a finished session waits for the server to acknowledge the disconnect before the socket is destroyed.
const END_GRACE_MS = 1000;

/**
 * Connects, verifies the host key (a mismatch is SFTP_HOST_KEY naming the expected and the
 * presented fingerprint, before any credential is sent), authenticates, opens the sftp subsystem,
 * runs fn, and always closes the connection. `signal` aborts everything: the connection is
 * destroyed and the promise rejects with signal.reason.
 */
export function withSftp<T>(settings: SftpSettings, signal: AbortSignal, fn: (s: SftpSession) => Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  const endpoint = `sftp://${settings.username}@${settings.host}:${settings.port}`;
  const expected = settings.hostKeyFingerprint.replace(/=+$/, '');
  return new Promise<T>((resolve, reject) => {
    const client = new Client();
    // The TCP socket is ours, not ssh2's, so that cleanup can always destroy it: Client.destroy()
    // does nothing once the socket is half closed (after end(), or after the server's FIN).
    const socket = new Socket();
    let session: RemoteSession | undefined;
    let presented: string | undefined; // the fingerprint the server showed, when it was refused
    let handshook = false; // the SSH key exchange completed
    let closed = false;
    let settled = false;
    let endTimer: NodeJS.Timeout | undefined;
    let endFinished: (() => void) | undefined; // set once fn succeeded: resolves when the connection closed

    const settle = (done: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(endTimer);
      signal.removeEventListener('abort', onAbort);
      done();
    };
    const fail = (err: unknown): void => {
      settle(() => {
        session?.close(new SftpError('SFTP_IO', `session closed: ${endpoint}`, { endpoint }));
        socket.destroy();
        reject(err);
      });
    };
    const onAbort = (): void => fail(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    // ssh2's readyTimeout stops at authentication; this one also covers opening the subsystem.
    const deadline = setTimeout(() => fail(new SftpError('SFTP_TIMEOUT', `no SFTP session within ${settings.connectTimeoutMs} ms: ${endpoint}`, { endpoint })), settings.connectTimeoutMs);

    // Before the session is open an error fails the whole call; after, it only fails what is in
    // flight (the session's requests and streams), and fn decides. A listener stays attached for
    // the client's whole life: ssh2 emits 'error' on the Client, and an unheard one would crash.
    client.on('error', (err: Error & { level?: string; code?: unknown }) => {
      if (session) session.close(new SftpError('SFTP_IO', `connection failed: ${endpoint}: ${err.message}`, { endpoint, cause: err }));
      else fail(connectError(err, { presented, expected, handshook, settings, endpoint }));
    });
    client.once('handshake', () => (handshook = true));
    client.on('close', () => {
      closed = true;
      if (session) session.close(new SftpError('SFTP_IO', `connection closed: ${endpoint}`, { endpoint }));
      else fail(new SftpError('SFTP_CONNECT', `connection closed before the SFTP session was open: ${endpoint}`, { endpoint }));
      endFinished?.();
    });

    client.on('ready', () => {
      client.sftp((err, sftp) => {
        if (settled) {
          sftp?.end();
          return;
        }
        if (err) {
          fail(new SftpError('SFTP_IO', `the server refused the sftp subsystem: ${endpoint}: ${err.message}`, { endpoint, cause: err }));
          return;
        }
        clearTimeout(deadline);
        const s = new RemoteSession(sftp, endpoint);
        session = s;
        Promise.resolve()
          .then(() => fn(s))
          .then(
            (value) => {
              if (settled) return;
              s.close(new SftpError('SFTP_IO', `session closed: ${endpoint}`, { endpoint }));
              // A polite disconnect, then the close; the timer bounds a server that never answers.
              endFinished = () => settle(() => resolve(value));
              if (closed) return endFinished();
              client.end();
              // Our FIN after ssh2's disconnect message: on Node 24 ssh2's end() leaves our socket
              // open (it no longer sees it as writable), and the wait below would run its full second.
              socket.end();
              endTimer = setTimeout(() => {
                socket.destroy();
                endFinished?.();
              }, END_GRACE_MS);
            },
            fail,
          );
      });
    });

    const config: ConnectConfig = {
      sock: socket,
      username: settings.username,
      readyTimeout: settings.connectTimeoutMs,
      // The server's key is checked before any credential leaves: a refusal here ends the handshake.
      hostVerifier: (key: Buffer) => {
        const got = fingerprint(key);
        if (got === expected) return true;
        presented = got;
        return false;
      },
      // Only the configured method: no agent, no keyboard-interactive fallback.
      ...(settings.password !== undefined ? { password: settings.password } : {}),
      ...(settings.privateKey !== undefined ? { privateKey: settings.privateKey } : {}),
      ...(settings.passphrase !== undefined ? { passphrase: settings.passphrase } : {}),
    };
    // ssh2 reports the socket's errors as the Client's; this listener only covers the moment before
    // it attaches its own (connect() may throw first, on a key it cannot parse).
    socket.on('error', () => {});
    // Connecting before handing the socket over: ssh2 takes a socket that is not connecting for a connected one.
    // SFTP is request and answer: without it each small packet waits for a delayed ACK.
    socket.setNoDelay(true);
    socket.connect({ host: settings.host, port: settings.port });
    try {
      client.connect(config);
    } catch (e) {
      // connect() throws synchronously when the private key cannot be parsed or decrypted. ssh2's
      // messages name the format problem only, but the error is dropped as cause all the same.
      const why = e instanceof Error ? e.message : 'invalid connection settings';
      fail(new SftpError('SFTP_AUTH', `cannot use the configured credentials: ${why}: ${endpoint}`, { endpoint }));
    }
  });
}

function connectError(
  err: Error & { level?: string; code?: unknown },
  at: { presented: string | undefined; expected: string; handshook: boolean; settings: SftpSettings; endpoint: string },
): SftpError {
  const { settings, endpoint } = at;
  if (at.presented !== undefined) {
    return new SftpError('SFTP_HOST_KEY', `host key mismatch: expected ${at.expected}, the server presented ${at.presented}: ${endpoint}`, { endpoint });
  }
  // ssh2's auth errors carry no secret, but nothing about credentials is worth keeping as cause.
  if (err.level === 'client-authentication') {
    return new SftpError('SFTP_AUTH', `authentication refused for ${settings.username} (${settings.password !== undefined ? 'password' : 'private key'}): ${endpoint}`, { endpoint });
  }
  if (err.level === 'client-timeout') {
    return new SftpError('SFTP_TIMEOUT', `no SSH session within ${settings.connectTimeoutMs} ms: ${endpoint}`, { endpoint });
  }
  // 'protocol' before the key exchange: the peer closed or spoke something else than SSH
  // ('Connection lost before handshake'), i.e. there is no SSH server at that address.
  const network = err.level === 'client-socket' || err.level === 'client-dns' || (typeof err.code === 'string' && CONNECT_CODES.has(err.code));
  if (network || (err.level === 'protocol' && !at.handshook)) {
    return new SftpError('SFTP_CONNECT', `cannot connect: ${endpoint}: ${err.message}`, { endpoint, cause: err });
  }
  // e.g. no algorithm in common, or a DISCONNECT from the server.
  return new SftpError('SFTP_IO', `SSH connection failed: ${endpoint}: ${err.message}`, { endpoint, cause: err });
}

type Callback<R> = (err: Error | null | undefined, result: R) => void;

/**
 * The open sftp channel. Every request goes through request(): ssh2 buffers requests sent after
 * the channel closed and never calls them back, so the session fails them itself once it is closed.
 */
class RemoteSession implements SftpSession {
  private closedWith: SftpError | undefined;
  private readonly pending = new Set<(err: SftpError) => void>();
  private readonly streams = new Set<RemoteFileStream>();

  constructor(
    private readonly sftp: SFTPWrapper,
    readonly endpoint: string,
  ) {
    sftp.on('error', (err: Error) => this.close(new SftpError('SFTP_IO', `sftp channel failed: ${endpoint}: ${err.message}`, { endpoint, cause: err })));
    sftp.on('close', () => this.close(new SftpError('SFTP_IO', `sftp channel closed: ${endpoint}`, { endpoint })));
  }

  async size(path: string): Promise<number> {
    const stats = await this.request<Stats>(path, 'stat', (cb) => this.sftp.stat(path, cb));
    if (stats.mode !== undefined && !stats.isFile()) throw new SftpError('SFTP_IO', `${path} is not a regular file: ${this.endpoint}`, { endpoint: this.endpoint, path });
    if (typeof stats.size !== 'number') throw new SftpError('SFTP_IO', `the server sent no size for ${path}: ${this.endpoint}`, { endpoint: this.endpoint, path });
    return stats.size;
  }

  read(path: string): Readable {
    const stream = new RemoteFileStream(this, path);
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    return stream;
  }

  /** Runs one ssh2 call, mapping its error; fails at once when the session is closed. */
  request<R>(path: string, op: string, start: (cb: Callback<R>) => void): Promise<R> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<R>((resolve, reject) => {
      const onClose = (err: SftpError): void => reject(err);
      this.pending.add(onClose);
      const cb: Callback<R> = (err, result) => {
        if (!this.pending.delete(onClose)) return; // already failed by close()
        if (err) reject(sftpError(err, op, path, this.endpoint));
        else resolve(result);
      };
      try {
        start(cb);
      } catch (e) {
        cb(e instanceof Error ? e : new Error(String(e)), undefined as R);
      }
    });
  }

  /** The raw channel, for the file stream's handle calls. */
  get channel(): SFTPWrapper {
    return this.sftp;
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Fails what is in flight with `err` and ends the streams still open (once; later calls do nothing). */
  close(err: SftpError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const fail of this.pending) fail(err);
    this.pending.clear();
    // A stream nobody reads any more is ended without an error, so that it cannot emit an unheard
    // 'error'; one that is being read sees a premature close.
    for (const s of this.streams) s.destroy();
    this.streams.clear();
  }
}

function sftpError(err: Error & { code?: unknown }, op: string, path: string, endpoint: string): SftpError {
  if (err instanceof SftpError) return err;
  if (err.code === STATUS_CODE.NO_SUCH_FILE) return new SftpError('SFTP_NOT_FOUND', `${path}: no such file: ${endpoint}`, { endpoint, path, cause: err });
  return new SftpError('SFTP_IO', `${op} ${path} failed: ${endpoint}: ${err.message}`, { endpoint, path, cause: err });
}

interface PendingRead {
  offset: number;
  length: number;
  buf: Buffer;
  /** Bytes read, once the answer came (0 = end of file). */
  got?: number;
}

/**
 * A remote file as a stream, with up to READ_AHEAD reads in flight, delivered in order. The file is
 * opened on the first read, so a stream nobody reads never fails.
 */
class RemoteFileStream extends Readable {
  private handle: Buffer | undefined;
  private opening = false;
  private next = 0; // offset of the next read to ask for
  private eof = false;
  private readonly queue: PendingRead[] = [];

  constructor(
    private readonly session: RemoteSession,
    private readonly path: string,
  ) {
    super({ highWaterMark: CHUNK * READ_AHEAD });
  }

  override _read(): void {
    if (this.handle) {
      this.fill();
      return;
    }
    if (this.opening) return;
    this.opening = true;
    this.session.request<Buffer>(this.path, 'open', (cb) => this.session.channel.open(this.path, 'r', cb)).then(
      (handle) => {
        if (this.destroyed) {
          this.closeHandle(handle);
          return;
        }
        this.handle = handle;
        this.fill();
      },
      (err: unknown) => this.destroy(err as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    this.queue.length = 0;
    if (handle) this.closeHandle(handle);
    cb(err);
  }

  // Best effort, not awaited: the connection closes when withSftp's fn returns anyway.
  private closeHandle(handle: Buffer): void {
    if (this.session.isClosed) return;
    this.session.request<void>(this.path, 'close', (cb) => this.session.channel.close(handle, (e) => cb(e, undefined))).catch(() => {});
  }

  private fill(): void {
    while (!this.eof && this.queue.length < READ_AHEAD) {
      this.ask(this.next, CHUNK);
      this.next += CHUNK;
    }
  }

  /** Asks for `length` bytes at `offset`; `at` puts the read at the head of the queue (the rest of a short read). */
  private ask(offset: number, length: number, at?: 'head'): void {
    const handle = this.handle;
    if (!handle) return;
    const read: PendingRead = { offset, length, buf: Buffer.allocUnsafe(length) };
    if (at === 'head') this.queue.unshift(read);
    else this.queue.push(read);
    this.session.request<number>(this.path, 'read', (cb) => this.session.channel.read(handle, read.buf, 0, length, offset, (e, n) => cb(e, n))).then(
      (n) => {
        read.got = n;
        this.deliver();
      },
      (err: unknown) => {
        if (!this.destroyed) this.destroy(err as Error);
      },
    );
  }

  /** Pushes the answered reads at the head of the queue, in file order. */
  private deliver(): void {
    for (;;) {
      const head = this.queue[0];
      if (this.destroyed || this.eof || head?.got === undefined) return;
      this.queue.shift();
      if (head.got === 0) {
        // End of file (ssh2 turns the EOF status into 0 bytes); the reads beyond it are dropped.
        this.eof = true;
        this.queue.length = 0;
        this.push(null);
        return;
      }
      // SFTP allows a short read anywhere: ask again for the rest before handing out what came.
      if (head.got < head.length) this.ask(head.offset + head.got, head.length - head.got, 'head');
      this.push(head.buf.subarray(0, head.got));
    }
  }
}
