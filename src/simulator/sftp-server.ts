import { createHash, timingSafeEqual } from 'node:crypto';
import { lstat, open, opendir, realpath, stat, type FileHandle } from 'node:fs/promises';
import type { Stats as FsStats } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { basename, dirname, join, sep } from 'node:path';
import ssh2, { type Attributes, type Connection, type FileEntry, type SFTPWrapper } from 'ssh2';
import { fingerprint } from '../sftp/client.js';
import type { SftpEndpoint } from './fake.js';

// ssh2 is CommonJS and builds its exports with require() calls, invisible to Node's ESM named-export detection.
const { Server, utils } = ssh2;
const { OPEN_MODE, STATUS_CODE } = utils.sftp;

export const SIM_SFTP_USERNAME = 'demo';
export const SIM_SFTP_PASSWORD = 'demo-sftp-password';

export interface EmbeddedSftpServer {
  readonly endpoint: SftpEndpoint;
  /** Closes the server and every open connection. */
  close(): Promise<void>;
}

// A client cannot make the server hold more than this many open files or read more per request.
const MAX_HANDLES = 64;
const MAX_READ = 64 * 1024;
const DIR_BATCH = 100;

/**
 * A read-only SFTP server (the demo's stand-in for an upstream's SFTP server) serving `root` as the login's
 * home, `/` included, with password authentication only. Nothing outside root is reachable: `..`
 * above it and symlinks that lead out are refused.
 */
export async function startSftpServer(o: { root: string; host?: string; port?: number; username?: string; password?: string }): Promise<EmbeddedSftpServer> {
  const host = o.host ?? '127.0.0.1';
  const username = o.username ?? SIM_SFTP_USERNAME;
  const password = o.password ?? SIM_SFTP_PASSWORD;
  const root = await realpath(o.root);
  // ssh2's generateKeyPairSync('ed25519') makes a public key ssh2 cannot parse about once in 200
  // (a leading zero byte dropped): generate again until it parses.
  let keys = utils.generateKeyPairSync('ed25519');
  let publicKey = utils.parseKey(keys.public);
  for (let i = 0; publicKey instanceof Error && i < 20; i++) {
    keys = utils.generateKeyPairSync('ed25519');
    publicKey = utils.parseKey(keys.public);
  }
  if (publicKey instanceof Error) throw publicKey;

  const ssh = new Server({ hostKeys: [keys.private] }, (conn) => serve(conn, root, username, password));
  // Our own listener hands sockets to ssh2, so that close() can end every one of them: ssh2's
  // connections have end() (which waits for the peer) but no destroy().
  const sockets = new Set<Socket>();
  const tcp = createServer((socket) => {
    // Without it each small read waits for the client's delayed ACK (40 ms on loopback).
    socket.setNoDelay(true);
    // The client ends with a disconnect and a FIN: close at once (on Node 24 ssh2's server leaves
    // the socket half open, and the client waits out its grace second before destroying it).
    socket.once('end', () => socket.destroy());
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    ssh.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(o.port ?? 0, host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  const port = (tcp.address() as AddressInfo).port;
  return {
    endpoint: { host, port, username, password, fingerprint: fingerprint(publicKey.getPublicSSH()) },
    close: async () => {
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** Constant-time string comparison, its time independent of where or whether the lengths differ. */
function same(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

function serve(conn: Connection, root: string, username: string, password: string): void {
  // A client that vanishes mid-handshake is routine; the demo server has nobody to tell.
  conn.on('error', () => {});
  conn.on('authentication', (ctx) => {
    // Both compared whatever the method, so that neither the method nor the user shows in the timing.
    const userOk = same(ctx.username, username);
    const passwordOk = same(ctx.method === 'password' ? ctx.password : '', password);
    if (ctx.method === 'password' && userOk && passwordOk) ctx.accept();
    else ctx.reject(['password']);
  });
  conn.on('ready', () => {
    // Only sessions, and in them only the sftp subsystem: ssh2 refuses what has no listener (exec, shell, forwarding).
    conn.on('session', (accept) => {
      accept().on('sftp', (acceptSftp) => {
        const files = new RemoteFiles(acceptSftp(), root);
        conn.once('close', () => files.closeAll());
      });
    });
  });
}

/** Answers an SFTP protocol error code instead of a failure. */
class Refusal extends Error {
  constructor(readonly status: number) {
    super(`sftp status ${status}`);
  }
}

type Open = { kind: 'file'; fh: FileHandle } | { kind: 'dir'; path: string; entries: string[] | undefined };

/** One sftp channel: its open handles and the answers to each request. */
class RemoteFiles {
  private readonly handles = new Map<number, Open>();
  private nextHandle = 0;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly root: string,
  ) {
    sftp.on('error', () => this.closeAll());
    sftp.on('close', () => this.closeAll());
    // Requests without a listener are answered OP_UNSUPPORTED by ssh2 (writes, renames, removes, links...).
    this.answer('REALPATH', async (id, path: string) => {
      const segments = this.segments(path);
      const virtual = `/${segments.join('/')}`;
      sftp.name(id, [entry(virtual, virtual)]);
    });
    this.answer('STAT', async (id, path: string) => sftp.attrs(id, attrs(await stat(await this.locate(path, true)))));
    this.answer('LSTAT', async (id, path: string) => sftp.attrs(id, attrs(await lstat(await this.locate(path, false)))));
    this.answer('FSTAT', async (id, handle: Buffer) => {
      const h = this.handle(handle);
      sftp.attrs(id, attrs(h.kind === 'file' ? await h.fh.stat() : await stat(h.path)));
    });
    this.answer('OPEN', async (id, path: string, flags: number) => {
      if (flags & (OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC | OPEN_MODE.EXCL)) throw new Refusal(STATUS_CODE.PERMISSION_DENIED);
      const local = await this.locate(path, true);
      if (!(await stat(local)).isFile()) throw new Refusal(STATUS_CODE.FAILURE);
      this.checkRoom();
      sftp.handle(id, this.register({ kind: 'file', fh: await open(local, 'r') }));
    });
    this.answer('READ', async (id, handle: Buffer, offset: number, length: number) => {
      const h = this.handle(handle);
      if (h.kind !== 'file') throw new Refusal(STATUS_CODE.FAILURE);
      const buf = Buffer.allocUnsafe(Math.min(length, MAX_READ));
      const { bytesRead } = await h.fh.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) sftp.status(id, STATUS_CODE.EOF);
      else sftp.data(id, buf.subarray(0, bytesRead));
    });
    this.answer('CLOSE', async (id, handle: Buffer) => {
      const key = this.key(handle);
      const h = this.handles.get(key)!;
      this.handles.delete(key);
      if (h.kind === 'file') await h.fh.close();
      sftp.status(id, STATUS_CODE.OK);
    });
    this.answer('OPENDIR', async (id, path: string) => {
      const local = await this.locate(path, true);
      if (!(await stat(local)).isDirectory()) throw new Refusal(STATUS_CODE.FAILURE);
      this.checkRoom();
      sftp.handle(id, this.register({ kind: 'dir', path: local, entries: undefined }));
    });
    this.answer('READDIR', async (id, handle: Buffer) => {
      const h = this.handle(handle);
      if (h.kind !== 'dir') throw new Refusal(STATUS_CODE.FAILURE);
      if (!h.entries) {
        h.entries = ['.', '..'];
        for await (const d of await opendir(h.path)) h.entries.push(d.name);
      }
      const batch = h.entries.splice(0, DIR_BATCH);
      if (batch.length === 0) return sftp.status(id, STATUS_CODE.EOF);
      // lstat: a listing shows a link as a link, wherever it points.
      const names = await Promise.all(batch.map(async (name) => {
        const s = await lstat(join(h.path, name)).catch(() => undefined);
        return entry(name, s ? longname(name, s) : name, s && attrs(s));
      }));
      sftp.name(id, names);
    });
  }

  /** Closes every open file (the channel or the connection ended). */
  closeAll(): void {
    for (const h of this.handles.values()) if (h.kind === 'file') void h.fh.close().catch(() => {});
    this.handles.clear();
  }

  /** Runs a request's handler and turns what it throws into a status answer. */
  private answer<A extends unknown[]>(event: string, handler: (id: number, ...args: A) => Promise<void>): void {
    this.sftp.on(event, (id: number, ...args: A) => {
      handler(id, ...args).catch((e: unknown) => this.sftp.status(id, statusOf(e)));
    });
  }

  /** The path's segments under root; `..` above root is refused. Absolute and relative paths both start at root (the home). */
  private segments(path: string): string[] {
    const out: string[] = [];
    for (const s of path.split('/')) {
      if (s === '' || s === '.') continue;
      if (s === '..') {
        if (out.length === 0) throw new Refusal(STATUS_CODE.PERMISSION_DENIED);
        out.pop();
      } else out.push(s);
    }
    return out;
  }

  /**
   * The local path a request's path names, symlinks resolved (all of them when `follow`, all but the
   * last otherwise), refused when that leads out of root.
   */
  private async locate(path: string, follow: boolean): Promise<string> {
    const segments = this.segments(path);
    const local = join(this.root, ...segments);
    if (segments.length === 0) return this.root;
    const real = follow ? await realpath(local) : join(await realpath(dirname(local)), basename(local));
    if (real !== this.root && !real.startsWith(this.root + sep)) throw new Refusal(STATUS_CODE.PERMISSION_DENIED);
    return real;
  }

  private checkRoom(): void {
    if (this.handles.size >= MAX_HANDLES) throw new Refusal(STATUS_CODE.FAILURE);
  }

  private register(h: Open): Buffer {
    const key = this.nextHandle++;
    this.handles.set(key, h);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(key >>> 0);
    return b;
  }

  private key(handle: Buffer): number {
    const key = handle.length === 4 ? handle.readUInt32BE(0) : -1;
    if (!this.handles.has(key)) throw new Refusal(STATUS_CODE.FAILURE);
    return key;
  }

  private handle(handle: Buffer): Open {
    return this.handles.get(this.key(handle))!;
  }
}

function statusOf(e: unknown): number {
  if (e instanceof Refusal) return e.status;
  switch ((e as NodeJS.ErrnoException).code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
      return STATUS_CODE.NO_SUCH_FILE;
    case 'EACCES':
    case 'EPERM':
      return STATUS_CODE.PERMISSION_DENIED;
    default:
      return STATUS_CODE.FAILURE;
  }
}

function attrs(s: FsStats): Attributes {
  return { mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, atime: Math.floor(s.atimeMs / 1000), mtime: Math.floor(s.mtimeMs / 1000) };
}

// ssh2 sends a name entry without attributes when it has none; its types insist on them.
function entry(filename: string, long: string, a?: Attributes): FileEntry {
  return { filename, longname: long, ...(a ? { attrs: a } : {}) } as FileEntry;
}

/** An `ls -l`-style line, as SFTP clients show listings. */
function longname(name: string, s: FsStats): string {
  const type = s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : '-';
  const rwx = (bits: number) => `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  const perms = `${type}${rwx(s.mode >> 6)}${rwx(s.mode >> 3)}${rwx(s.mode)}`;
  const date = s.mtime.toISOString().slice(0, 16).replace('T', ' ');
  return `${perms} ${String(s.nlink).padStart(3)} ${String(s.uid).padEnd(8)} ${String(s.gid).padEnd(8)} ${String(s.size).padStart(12)} ${date} ${name}`;
}
