import { copyFileSync, readFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** One collector's carried state, tagged with the collector's own state format version. */
export interface VersionedState {
  version: number;
  state: unknown;
}

interface StateDocument {
  version: 2;
  savedAt: string;
  collectors: Record<string, VersionedState>;
}

/** The state file could not be written; `code` is the errno code (EACCES, ENOSPC, ...). */
export class StateWriteError extends Error {
  constructor(
    readonly code: string,
    readonly path: string,
  ) {
    super(`state file ${path} could not be written (${code})`);
    this.name = 'StateWriteError';
  }
}

/**
 * Collector state on disk (counters, watermarks, remote jobs in flight), so a restart neither resets
 * a counter, nor loses the minutes it was down, nor forgets a job it started. A write is atomic and
 * durable: temporary file, fsync, rename over the old file, fsync of the folder. A crash at any
 * point leaves either the old state or the new one whole.
 */
export class StateFile {
  private writing: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private lastErrorCode: string | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
    /** Every collector's state at the moment a write starts. */
    private readonly snapshot: () => Record<string, VersionedState>,
    private readonly onWrite: (ok: boolean) => void = () => {},
  ) {}

  /**
   * Each collector's carried state by name; empty when there is no file. A file that cannot be read
   * or parsed is logged once, copied aside to `<path>.corrupt`, and the exporter starts clean.
   */
  load(): Record<string, VersionedState> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.log.warn({ path: this.path, code }, 'state file unreadable: starting without it');
      return {};
    }
    try {
      const collectors = parseDocument(JSON.parse(text));
      this.log.info({ path: this.path, collectors: Object.keys(collectors) }, 'collector state restored from the state file');
      return collectors;
    } catch (err) {
      let keptAt: string | undefined = `${this.path}.corrupt`;
      try {
        copyFileSync(this.path, keptAt);
      } catch {
        keptAt = undefined;
      }
      this.log.warn({ path: this.path, err, keptAt }, 'state file unreadable: starting without it');
      return {};
    }
  }

  /**
   * Writes the state as it is when the write starts; resolves once it is on disk. Calls made while
   * a write is in flight share the one write that follows it. Rejects with StateWriteError on
   * failure (logged once per kind of error).
   */
  save(): Promise<void> {
    if (!this.writing) {
      this.writing = this.write().finally(() => (this.writing = undefined));
      return this.writing;
    }
    this.next ??= this.writing
      .catch(() => {})
      .then(() => {
        this.next = undefined;
        return this.save();
      });
    return this.next;
  }

  private async write(): Promise<void> {
    const doc: StateDocument = { version: 2, savedAt: new Date().toISOString(), collectors: this.snapshot() };
    const text = JSON.stringify(doc);
    const tmp = `${this.path}.tmp`;
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(text, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      // The rename is durable only once the folder's entry is: fsync the folder too.
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      if (this.lastErrorCode !== undefined) this.log.info({ path: this.path }, 'state file written again');
      this.lastErrorCode = undefined;
      this.onWrite(true);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'ERROR';
      await rm(tmp, { force: true }).catch(() => {}); // never leave the temporary file behind
      if (code !== this.lastErrorCode) this.log.warn({ path: this.path, code }, 'state file could not be written');
      this.lastErrorCode = code;
      this.onWrite(false);
      throw new StateWriteError(code, this.path);
    }
  }
}

/** Reads a state document defensively; version 1 (before per-collector versions) is still read. */
function parseDocument(doc: unknown): Record<string, VersionedState> {
  if (!doc || typeof doc !== 'object') throw new Error('not a state document');
  const { version, collectors } = doc as { version?: unknown; collectors?: unknown };
  if (!collectors || typeof collectors !== 'object' || Array.isArray(collectors)) throw new Error('state document without collectors');
  const out: Record<string, VersionedState> = {};
  for (const [name, v] of Object.entries(collectors as Record<string, unknown>)) {
    if (version === 1) {
      // Version 1 stored each collector's state bare, with its own `version` field inside.
      const inner = (v as { version?: unknown } | null)?.version;
      out[name] = { version: typeof inner === 'number' ? inner : 1, state: v };
    } else if (version === 2) {
      if (!v || typeof v !== 'object' || typeof (v as VersionedState).version !== 'number') continue;
      out[name] = { version: (v as VersionedState).version, state: (v as VersionedState).state };
    } else {
      throw new Error(`unknown state file version ${String(version)}`);
    }
  }
  return out;
}
