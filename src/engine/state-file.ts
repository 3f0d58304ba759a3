import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';

interface StateDocument {
  version: 1;
  savedAt: string;
  collectors: Record<string, unknown>;
}

/**
 * Collector state on disk (counters and catch-up watermarks), so a restart neither resets the
 * counters nor loses the minutes the exporter was down (as far back as the upstream window goes).
 * Written after every publish to a temporary file and renamed over the old one, so a crash
 * mid-write leaves the previous state whole.
 */
export class StateFile {
  private pending: Promise<void> = Promise.resolve();
  private lastErrorCode: string | undefined;

  constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  /** Each collector's carried state by name; empty when there is no file or it cannot be read. */
  load(): Record<string, unknown> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.log.warn({ path: this.path, code }, 'state file unreadable: starting without it');
      return {};
    }
    try {
      const doc = JSON.parse(text) as Partial<StateDocument>;
      if (doc.version !== 1 || !doc.collectors || typeof doc.collectors !== 'object') throw new Error('unknown state file format');
      this.log.info({ path: this.path, savedAt: doc.savedAt }, 'collector state restored from the state file');
      return doc.collectors;
    } catch (err) {
      this.log.warn({ path: this.path, err }, 'state file unreadable: starting without it');
      return {};
    }
  }

  /** Writes the state; saves run one after another, and a failure is logged once per kind. */
  save(collectors: Record<string, unknown>): Promise<void> {
    const doc: StateDocument = { version: 1, savedAt: new Date().toISOString(), collectors };
    const text = JSON.stringify(doc);
    this.pending = this.pending.then(async () => {
      const tmp = `${this.path}.tmp-${process.pid}`;
      try {
        await writeFile(tmp, text, 'utf8');
        await rename(tmp, this.path);
        this.lastErrorCode = undefined;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? 'ERROR';
        if (code !== this.lastErrorCode) this.log.warn({ path: this.path, code }, 'state file could not be written');
        this.lastErrorCode = code;
      }
    });
    return this.pending;
  }
}
