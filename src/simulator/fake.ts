import type { Router } from 'express';
import type { Clock } from '../engine/clock.js';

/** What every source's fake upstream gets from the simulator. */
export interface FakeOptions {
  seed: number;
  clock: Clock;
  /** How many values the open-ended dimensions (ASN, city, asset, ...) have. */
  cardinality: number;
  /** Whether data is revised after it settled, as real upstreams do (default true). */
  lateRevisions?: boolean;
  /**
   * A folder the fake may write files into (query results), served over SFTP as the
   * login's home: by the simulator's own SFTP server, or by a real sshd whose chroot it is.
   */
  filesDir: string;
}

/** The SFTP server that serves the simulator's files folder. */
export interface SftpEndpoint {
  host: string;
  port: number;
  username: string;
  /** `SHA256:...`, as `ssh-keygen -l` prints the host key's fingerprint. */
  fingerprint: string;
  password?: string;
  privateKeyPath?: string;
}

/** Where a source finds its fake: the HTTP base URL, and the SFTP server when there is one. */
export interface SimulatorEndpoints {
  url: string;
  sftp?: SftpEndpoint;
}

/** One source's fake upstream: routes on the simulator's server, behind its fault switches. */
export interface Fake {
  /** Mounts the fake's routes (absolute paths, as the real API has them). */
  mount(router: Router): void;
  /** Mounts routes that change the fake's data, under /_admin: not subject to the fault switches. */
  admin?(router: Router): void;
}
