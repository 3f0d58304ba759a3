import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { isCI, type SkipContext } from './promtool.js';
import { freePort } from './process.js';

// A real OpenSSH server (Debian's openssh-server) for the SFTP tests: started by the test itself,
// on a free loopback port, with its own config, host key and client key, serving one folder as an
// `internal-sftp` chroot to `root` logging in with a key. Nothing of the machine's own sshd is
// used or touched. ChrootDirectory needs every component of the path root-owned and not writable
// by others (so not /tmp): the folders live under /run, which needs root; CI runs as root.

const SSHD = '/usr/sbin/sshd';
export const SSHD_MISSING_IN_CI = "sshd is required in CI but cannot run here: install Debian's openssh-server (apt-get install openssh-server) and run as root";
export const SSHD_MISSING_SKIP = "sshd cannot run here (needs Debian's openssh-server and root): the real-SFTP tests are skipped";

/** Whether the tests can start sshd: it is installed and we are root. */
export function sshdRuns(): boolean {
  return existsSync(SSHD) && process.getuid?.() === 0 && spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
}

/** Returns when sshd can run; otherwise throws in CI and skips the test elsewhere (never a silent pass). */
export function requireSshd(ctx: SkipContext): void {
  if (sshdRuns()) return;
  if (isCI()) throw new Error(SSHD_MISSING_IN_CI);
  ctx.skip(SSHD_MISSING_SKIP);
}

export interface Sshd {
  host: string;
  port: number;
  /** The folder served as `/` to the SFTP login (the chroot). */
  root: string;
  username: string;
  /** The client's private key (OpenSSH format, ed25519, no passphrase). */
  privateKeyPath: string;
  /** The host key's fingerprint as `ssh-keygen -l` prints it: `SHA256:...`. */
  fingerprint: string;
  /** Another key's fingerprint, for the wrong-host-key test. */
  otherFingerprint: string;
  /** What sshd wrote to stderr (-e), for a failing test's message. */
  log(): string;
  /** Stops the server; `keep` leaves the folder (a restart on the same files). */
  stop(): Promise<void>;
  /** Starts it again on the same port, keys and folder. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

function keygen(path: string): string {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'conviva-exporter-test', '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  const fp = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], { encoding: 'utf8' });
  const m = /(SHA256:[A-Za-z0-9+/=]+)/.exec(fp.stdout);
  if (!m) throw new Error(`ssh-keygen -l printed no fingerprint: ${fp.stdout}${fp.stderr}`);
  return m[1]!;
}


/** Resolves once the port answers with an SSH banner. */
async function banner(port: number, ms: number, exited: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.setTimeout(1000, () => c.destroy());
      c.once('data', (d) => {
        c.destroy();
        resolve(d.toString('latin1').startsWith('SSH-2.0'));
      });
      c.once('error', () => resolve(false));
      c.once('close', () => resolve(false));
    });
    if (ok) return;
    if (exited() || Date.now() > end) throw new Error('sshd did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startSshd(): Promise<Sshd> {
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // Debian's sshd wants its privilege-separation folder
  const dir = mkdtempSync('/run/conviva-exporter-sshd-');
  chmodSync(dir, 0o755);
  const root = join(dir, 'root');
  mkdirSync(root, { mode: 0o755 });
  chmodSync(root, 0o755);
  const fingerprint = keygen(join(dir, 'host_key'));
  const otherFingerprint = keygen(join(dir, 'other_key'));
  keygen(join(dir, 'client_key'));
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_key')}`,
    'PidFile none',
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'Subsystem sftp internal-sftp',
    'ForceCommand internal-sftp',
    `ChrootDirectory ${root}`,
    'AllowTcpForwarding no',
    'X11Forwarding no',
    'LogLevel VERBOSE',
    '',
  ].join('\n'));
  let proc: ChildProcess | undefined;
  let stderr = '';
  let exited = true;
  const start = async () => {
    const p = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    exited = false;
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    p.once('exit', () => {
      exited = true;
    });
    try {
      await banner(port, 10_000, () => exited);
    } catch (e) {
      p.kill('SIGKILL');
      throw new Error(`${(e as Error).message}: ${stderr.slice(-2000)}`, { cause: e });
    }
  };
  const stop = async () => {
    const p = proc;
    if (!p || exited) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  };
  await start();
  return {
    host: '127.0.0.1',
    port,
    root,
    username: 'root',
    privateKeyPath: join(dir, 'client_key'),
    fingerprint,
    otherFingerprint,
    log: () => stderr,
    stop,
    restart: start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
