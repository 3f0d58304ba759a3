import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { inspect } from 'node:util';
import ssh2, { type SFTPWrapper } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIM_SFTP_PASSWORD, SIM_SFTP_USERNAME, startSftpServer, type EmbeddedSftpServer } from '../../src/simulator/sftp-server.js';
import { fingerprint, isFingerprint, SftpError, withSftp, type SftpSession, type SftpSettings } from '../../src/sftp/client.js';
import { requireSshd, startSshd, type Sshd } from '../helpers/sshd.js';

// The SFTP client against real servers: the simulator's embedded one (always), and Debian's OpenSSH
// (where sshd can run; required in CI). No mocks: every failure is produced by a real peer.

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const never = new AbortController().signal;

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

async function sftpError(p: Promise<unknown>): Promise<SftpError> {
  const e = await rejection(p);
  expect(e).toBeInstanceOf(SftpError);
  return e as SftpError;
}

/** Everything an error would show in a log: message, stack, own fields and causes, deeply. */
function everything(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, depth = 0; c !== undefined && depth < 10; c = (c as { cause?: unknown }).cause, depth++) {
    parts.push(String((c as Error).stack), inspect(c, { depth: 10, showHidden: true }));
  }
  return parts.join('\n');
}

/** A TCP relay in front of a server, to count the client's open connections. */
async function relay(port: number): Promise<{ port: number; open(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client);
    client.once('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.once('close', () => client.destroy());
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.pipe(upstream).pipe(client);
  });
  const p = await listen(server);
  return {
    port: p,
    open: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

describe('fingerprints', () => {
  it('formats a key blob as ssh-keygen does and recognises well-formed fingerprints', () => {
    const fp = fingerprint(Buffer.from('a host key blob'));
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(isFingerprint(fp)).toBe(true);
    expect(isFingerprint(`${fp}=`)).toBe(true);
    for (const bad of ['', fp.slice(0, -1), `${fp}A`, fp.replace('SHA256:', 'sha256:'), `MD5:${fp.slice(7)}`, fp.replace(/.$/, '-'), ` ${fp}`]) {
      expect(isFingerprint(bad), bad).toBe(false);
    }
  });
});

describe('withSftp against the embedded server', () => {
  let dir: string;
  let root: string;
  let server: EmbeddedSftpServer;
  let settings: SftpSettings;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sftp-test-'));
    root = join(dir, 'root');
    mkdirSync(join(root, 'reports', 'a'), { recursive: true });
    files.set('small.csv', Buffer.from('a,b\n1,2\n'));
    files.set('empty.csv', Buffer.alloc(0));
    files.set('reports/a/b.csv.gz', randomBytes(70_001));
    files.set('big.bin', randomBytes(5 * 1024 * 1024));
    for (const [p, b] of files) writeFileSync(join(root, p), b);
    writeFileSync(join(dir, 'outside.txt'), 'secret outside the root');
    symlinkSync(join(dir, 'outside.txt'), join(root, 'link-out'));
    symlinkSync('small.csv', join(root, 'link-in'));
    server = await startSftpServer({ root });
    settings = { ...server.endpoint, hostKeyFingerprint: server.endpoint.fingerprint, connectTimeoutMs: 5000 };
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes its endpoint with the demo login and an ssh-keygen style fingerprint', () => {
    expect(server.endpoint).toMatchObject({ host: '127.0.0.1', username: SIM_SFTP_USERNAME, password: SIM_SFTP_PASSWORD });
    expect(server.endpoint.port).toBeGreaterThan(0);
    expect(isFingerprint(server.endpoint.fingerprint)).toBe(true);
  });

  it('reads every file byte for byte and knows its size, by relative and absolute path', async () => {
    const got = await withSftp(settings, never, async (s) => {
      const out = new Map<string, { size: number; sha: string }>();
      for (const p of files.keys()) {
        const path = p.startsWith('reports') ? `/${p}` : p;
        out.set(p, { size: await s.size(path), sha: sha(await buffer(s.read(path))) });
      }
      return out;
    });
    for (const [p, b] of files) expect(got.get(p), p).toEqual({ size: b.length, sha: sha(b) });
  });

  it('reads several files at once over one session, and follows a link that stays inside', async () => {
    const [a, b, c] = await withSftp(settings, never, (s) => Promise.all([buffer(s.read('big.bin')), buffer(s.read('reports/a/b.csv.gz')), buffer(s.read('link-in'))]));
    expect(sha(a)).toBe(sha(files.get('big.bin')!));
    expect(sha(b)).toBe(sha(files.get('reports/a/b.csv.gz')!));
    expect(c.toString()).toBe('a,b\n1,2\n');
  });

  it('closes the connection when fn returns and when it throws', async () => {
    const r = await relay(server.endpoint.port);
    try {
      const via = { ...settings, port: r.port };
      await withSftp(via, never, async (s) => s.size('small.csv'));
      expect(await until(() => r.open() === 0, 2000)).toBe(true);
      const boom = new Error('fn failed');
      expect(await rejection(withSftp(via, never, async () => {
        throw boom;
      }))).toBe(boom);
      expect(await until(() => r.open() === 0, 2000)).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('a wrong password is SFTP_AUTH, and the password shows nowhere in the error', async () => {
    const password = `wrong-${randomBytes(8).toString('hex')}`;
    const e = await sftpError(withSftp({ ...settings, password }, never, async () => 'unreachable'));
    expect(e.code).toBe('SFTP_AUTH');
    expect(e.message).toContain(SIM_SFTP_USERNAME);
    expect(everything(e)).not.toContain(password);
    // A wrong user with the right password is refused the same way.
    const e2 = await sftpError(withSftp({ ...settings, username: 'someone' }, never, async () => 'unreachable'));
    expect(e2.code).toBe('SFTP_AUTH');
    expect(everything(e2)).not.toContain(SIM_SFTP_PASSWORD);
  });

  it('a private key it cannot use is SFTP_AUTH, and the key text shows nowhere in the error', async () => {
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\nS3CR3T${randomBytes(24).toString('hex')}\n-----END OPENSSH PRIVATE KEY-----\n`;
    const e = await sftpError(withSftp({ ...settings, password: undefined, privateKey: key, passphrase: 'pass-phrase-xyz' }, never, async () => 'unreachable'));
    expect(e.code).toBe('SFTP_AUTH');
    const all = everything(e);
    expect(all).not.toContain('S3CR3T');
    expect(all).not.toContain('pass-phrase-xyz');
  });

  it('another host key is SFTP_HOST_KEY naming both fingerprints, before any credential is sent', async () => {
    const expected = fingerprint(Buffer.from('some other key'));
    const e = await sftpError(withSftp({ ...settings, hostKeyFingerprint: expected, password: 'never-sent-password' }, never, async () => 'unreachable'));
    expect(e.code).toBe('SFTP_HOST_KEY');
    expect(e.message).toContain(expected);
    expect(e.message).toContain(server.endpoint.fingerprint);
    expect(everything(e)).not.toContain('never-sent-password');
  });

  it('a missing file is SFTP_NOT_FOUND, for size() and on the stream', async () => {
    await withSftp(settings, never, async (s) => {
      const e1 = await sftpError(s.size('reports/nope.csv.gz'));
      expect(e1).toMatchObject({ code: 'SFTP_NOT_FOUND', path: 'reports/nope.csv.gz' });
      const e2 = await sftpError(buffer(s.read('reports/nope.csv.gz')));
      expect(e2.code).toBe('SFTP_NOT_FOUND');
      // The session is still good after a failed file.
      expect(await s.size('small.csv')).toBe(files.get('small.csv')!.length);
    });
  });

  it('refuses paths that leave the root: .. above it and links that point out', async () => {
    await withSftp(settings, never, async (s) => {
      for (const p of ['../outside.txt', '/../outside.txt', 'reports/../../outside.txt', 'link-out']) {
        const e = await sftpError(buffer(s.read(p)));
        expect(e.code, p).toBe('SFTP_IO');
        expect(e.message, p).toMatch(/permission denied/i);
        expect((await sftpError(s.size(p))).code, p).toBe('SFTP_IO');
      }
      // `..` that stays inside is fine.
      expect(await s.size('reports/../small.csv')).toBe(files.get('small.csv')!.length);
    });
  });

  it('is read-only: writes are refused, listings work (checked with a plain ssh2 client)', async () => {
    const client = new ssh2.Client();
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
      client.on('error', reject);
      client.on('ready', () => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
      client.connect({ ...server.endpoint, hostVerifier: (key: Buffer) => fingerprint(key) === server.endpoint.fingerprint });
    });
    const status = (start: (cb: (err?: Error | null) => void) => void) => new Promise<unknown>((resolve) => start((err) => resolve((err as { code?: unknown } | null | undefined)?.code ?? 'ok')));
    const { STATUS_CODE } = ssh2.utils.sftp;
    try {
      expect(await status((cb) => sftp.open('small.csv', 'r+', cb))).toBe(STATUS_CODE.PERMISSION_DENIED);
      expect(await status((cb) => sftp.open('new.csv', 'w', cb))).toBe(STATUS_CODE.PERMISSION_DENIED);
      expect(await status((cb) => sftp.unlink('small.csv', cb))).toBe(STATUS_CODE.OP_UNSUPPORTED);
      expect(await status((cb) => sftp.mkdir('d', cb))).toBe(STATUS_CODE.OP_UNSUPPORTED);
      expect(await status((cb) => sftp.rename('small.csv', 'x.csv', cb))).toBe(STATUS_CODE.OP_UNSUPPORTED);
      const names = await new Promise<string[]>((resolve, reject) => sftp.readdir('/reports/a', (err, list) => (err ? reject(err) : resolve(list.map((e) => e.filename)))));
      expect(names).toEqual(['b.csv.gz']);
      expect(await new Promise((resolve) => sftp.realpath('reports/./a/..', (_e, p) => resolve(p)))).toBe('/reports');
    } finally {
      client.end();
    }
    expect(readFileSync(join(root, 'small.csv'))).toEqual(files.get('small.csv'));
  });

  it('a closed port is SFTP_CONNECT', async () => {
    // A port that was free a moment ago, with nothing listening on it now.
    const probe = createServer();
    const closed = await listen(probe);
    await new Promise<void>((r) => probe.close(() => r()));
    const e = await sftpError(withSftp({ ...settings, port: closed }, never, async () => 'unreachable'));
    expect(e.code).toBe('SFTP_CONNECT');
    expect(e.message).toContain(String(closed));
  });

  it('a peer that closes before speaking SSH is SFTP_CONNECT', async () => {
    const rude = createServer((c) => c.destroy());
    const port = await listen(rude);
    try {
      const e = await sftpError(withSftp({ ...settings, port }, never, async () => 'unreachable'));
      expect(e.code).toBe('SFTP_CONNECT');
    } finally {
      await new Promise<void>((r) => rude.close(() => r()));
    }
  });

  it('a peer that accepts TCP but never speaks SSH is SFTP_TIMEOUT within connectTimeoutMs', async () => {
    const held = new Set<Socket>();
    const silent = createServer((c) => {
      held.add(c);
      c.on('error', () => {});
      c.resume(); // reads (and drops) the client's banner, so that its close is seen
      c.once('close', () => held.delete(c));
    });
    const port = await listen(silent);
    try {
      const started = performance.now();
      const e = await sftpError(withSftp({ ...settings, port, connectTimeoutMs: 600 }, never, async () => 'unreachable'));
      const took = performance.now() - started;
      expect(e.code).toBe('SFTP_TIMEOUT');
      expect(took).toBeGreaterThanOrEqual(550);
      expect(took).toBeLessThan(1600);
      expect(await until(() => held.size === 0, 2000)).toBe(true);
    } finally {
      for (const c of held) c.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('aborting mid-download rejects with the reason at once and leaves no connection open', async () => {
    const r = await relay(server.endpoint.port);
    try {
      const ac = new AbortController();
      const reason = new Error('run deadline');
      let abortedAt = 0;
      let received = 0;
      const p = withSftp({ ...settings, port: r.port }, ac.signal, async (s: SftpSession) => {
        const stream = s.read('big.bin');
        stream.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (abortedAt === 0) {
            abortedAt = performance.now();
            ac.abort(reason);
          }
        });
        await new Promise((resolve, reject) => {
          stream.once('end', resolve);
          stream.once('error', reject);
          stream.once('close', resolve);
        });
        return 'finished';
      });
      expect(await rejection(p)).toBe(reason);
      expect(performance.now() - abortedAt).toBeLessThan(200);
      expect(received).toBeLessThan(files.get('big.bin')!.length);
      expect(await until(() => r.open() === 0, 2000)).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('an already aborted signal rejects without connecting', async () => {
    const r = await relay(server.endpoint.port);
    try {
      const reason = new Error('already over');
      const e = await rejection(withSftp({ ...settings, port: r.port }, AbortSignal.abort(reason), async () => 'unreachable'));
      expect(e).toBe(reason);
      await new Promise((res) => setTimeout(res, 50));
      expect(r.open()).toBe(0);
    } finally {
      await r.close();
    }
  });
});

describe('withSftp against OpenSSH (Debian sshd)', () => {
  let sshd: Sshd | undefined;
  const content = randomBytes(3 * 1024 * 1024 + 123);
  const settingsOf = (s: Sshd): SftpSettings => ({
    host: s.host, port: s.port, username: s.username, privateKey: readFileSync(s.privateKeyPath), hostKeyFingerprint: s.fingerprint, connectTimeoutMs: 5000,
  });
  const started = async (): Promise<Sshd> => {
    if (!sshd) {
      sshd = await startSshd();
      mkdirSync(join(sshd.root, 'results'), { recursive: true });
      writeFileSync(join(sshd.root, 'results', 'q1.csv.gz'), content);
    }
    return sshd;
  };
  afterAll(async () => {
    await sshd?.close();
  });

  it('logs in with a key and reads a file byte for byte', async (ctx) => {
    requireSshd(ctx);
    const s = await started();
    const got = await withSftp(settingsOf(s), never, async (session) => ({
      size: await session.size('results/q1.csv.gz'),
      abs: sha(await buffer(session.read('/results/q1.csv.gz'))),
      rel: sha(await buffer(session.read('results/q1.csv.gz'))),
      missing: (await sftpError(session.size('results/q2.csv.gz'))).code,
    }));
    expect(got).toEqual({ size: content.length, abs: sha(content), rel: sha(content), missing: 'SFTP_NOT_FOUND' });
  });

  it("another host key's fingerprint is SFTP_HOST_KEY, and sshd never saw an authentication attempt", async (ctx) => {
    requireSshd(ctx);
    const s = await started();
    const before = s.log().length;
    const e = await sftpError(withSftp({ ...settingsOf(s), hostKeyFingerprint: s.otherFingerprint }, never, async () => 'unreachable'));
    expect(e.code).toBe('SFTP_HOST_KEY');
    expect(e.message).toContain(s.otherFingerprint);
    expect(e.message).toContain(s.fingerprint);
    // sshd logs the end of the connection; nothing of it may be about a user or a key.
    expect(await until(() => /closed|reset|disconnect/i.test(s.log().slice(before)), 3000)).toBe(true);
    expect(s.log().slice(before)).not.toMatch(/Accepted|Failed|Postponed|publickey|authenticating user|invalid user/i);
  });
});
