import { readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

// Runs started elsewhere (another scheduler, a person in InVision's UI) reach the exporter through
// a folder: a scheduler writes `<anything>.json` holding {"dataflow_id": "...", "run_id": "..."}
// (written under another name, then renamed, so the exporter never reads half a file). The exporter
// reads the folder every run, follows each run, and removes the file once the run is in its state
// file. Why a folder and not an HTTP endpoint: the folder's permissions are the authentication (no
// token to manage, nothing new listening), a hand-over made while the exporter is down waits for it,
// and taking a file over is idempotent (a run already followed is not followed twice).

export interface Handover {
  file: string;
  flowId: string;
  runId: string;
  /** Removes the file (once the run is on disk). */
  remove(): Promise<void>;
}

/** Files larger than this are not hand-overs. */
const MAX_BYTES = 64 * 1024;

/** The hand-overs waiting in `dir`; an unreadable file is renamed `*.rejected` with a warning. */
export async function readHandovers(dir: string, log: Logger): Promise<Handover[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (e) {
    log.warn({ dir, err: e }, 'cannot read the hand-over folder');
    return [];
  }
  const out: Handover[] = [];
  for (const name of names) {
    const file = join(dir, name);
    const reject = async (why: string) => {
      log.warn({ file, why }, 'hand-over file refused: renamed *.rejected');
      await rename(file, `${file}.rejected`).catch((e: unknown) => log.warn({ file, err: e }, 'cannot rename the refused hand-over file'));
    };
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue; // gone meanwhile, or not readable yet
    }
    if (text.length > MAX_BYTES) {
      await reject('larger than 64 KiB');
      continue;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      await reject('not JSON');
      continue;
    }
    const b = body as { dataflow_id?: unknown; run_id?: unknown } | null;
    const ok = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9_.:-]{1,200}$/.test(v);
    if (!b || typeof b !== 'object' || !ok(b.dataflow_id) || !ok(b.run_id)) {
      await reject('expected {"dataflow_id": "...", "run_id": "..."} (letters, digits, _ . : -)');
      continue;
    }
    out.push({ file, flowId: b.dataflow_id, runId: b.run_id, remove: () => unlink(file).catch(() => {}) });
  }
  return out;
}
