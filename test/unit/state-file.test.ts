import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { StateFile, StateWriteError, type VersionedState } from '../../src/engine/state-file.js';

function logged() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) }) };
}

const dir = () => mkdtempSync(join(tmpdir(), 'state-unit-'));

describe('state file', () => {
  it('writes atomically (no temporary file left), versioned per collector, and reads it back', async () => {
    const d = dir();
    const path = join(d, 'state.json');
    let state: Record<string, VersionedState> = { a: { version: 3, state: { n: 1 } } };
    const { log } = logged();
    const results: boolean[] = [];
    const f = new StateFile(path, log, () => state, (ok) => results.push(ok));
    await f.save();
    expect(readdirSync(d)).toEqual(['state.json']);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ version: 2, collectors: { a: { version: 3, state: { n: 1 } } } });
    state = { a: { version: 3, state: { n: 2 } } };
    await f.save();
    expect(new StateFile(path, log, () => ({})).load()).toEqual({ a: { version: 3, state: { n: 2 } } });
    expect(results).toEqual([true, true]);
  });

  it('saves asked for during a write share the next write, which sees every change made before they were asked for', async () => {
    const path = join(dir(), 'state.json');
    let n = 0;
    let snapshots = 0;
    const f = new StateFile(path, logged().log, () => {
      snapshots++;
      return { c: { version: 1, state: n } };
    });
    n = 1;
    const first = f.save();
    n = 2;
    const second = f.save();
    n = 3;
    const third = f.save();
    expect(second).toBe(third);
    await Promise.all([first, second, third]);
    expect(snapshots).toBe(2);
    expect(JSON.parse(readFileSync(path, 'utf8')).collectors.c.state).toBe(3);
  });

  it('a corrupt or truncated file is logged once, kept aside as .corrupt, and the exporter starts clean', () => {
    const d = dir();
    const path = join(d, 'state.json');
    const text = '{"version": 2, "collectors": {"x": {"version": 1, "state": [1, 2';
    writeFileSync(path, text);
    const { lines, log } = logged();
    expect(new StateFile(path, log, () => ({})).load()).toEqual({});
    expect(lines.filter((l) => l.msg === 'state file unreadable: starting without it')).toHaveLength(1);
    expect(readFileSync(`${path}.corrupt`, 'utf8')).toBe(text);
    writeFileSync(path, '{"version": 99, "collectors": {}}');
    expect(new StateFile(path, log, () => ({})).load()).toEqual({});
    writeFileSync(path, '[]');
    expect(new StateFile(path, log, () => ({})).load()).toEqual({});
  });

  it('a path that cannot be read (a folder) is logged and ignored; a missing file is simply a first start', () => {
    const d = dir();
    mkdirSync(join(d, 'folder'));
    const { lines, log } = logged();
    expect(new StateFile(join(d, 'folder'), log, () => ({})).load()).toEqual({});
    expect(lines.filter((l) => l.msg === 'state file unreadable: starting without it')).toMatchObject([{ code: 'EISDIR' }]);
    expect(new StateFile(join(d, 'none.json'), log, () => ({})).load()).toEqual({});
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });

  it('a state path that is a folder fails the write and leaves no temporary file behind', async () => {
    const d = dir();
    const path = join(d, 'state.json');
    mkdirSync(path);
    const f = new StateFile(path, logged().log, () => ({ c: { version: 1, state: 1 } }));
    await expect(f.save()).rejects.toMatchObject({ code: 'EISDIR' });
    expect(readdirSync(d).sort()).toEqual(['state.json']);
  });

  it('reads a version 1 file (written before per-collector versions) so an upgrade keeps the counters', () => {
    const path = join(dir(), 'state.json');
    writeFileSync(path, JSON.stringify({ version: 1, savedAt: 'x', collectors: { conviva_realtime: { version: 1, scopes: [] } } }));
    expect(new StateFile(path, logged().log, () => ({})).load()).toEqual({ conviva_realtime: { version: 1, state: { version: 1, scopes: [] } } });
  });

  it('a failed write rejects with StateWriteError, is logged once per kind of error, and counted', async () => {
    // A folder that is a file fails for root too (permissions would not).
    const d = dir();
    const blocker = join(d, 'not-a-folder');
    writeFileSync(blocker, '');
    const path = join(blocker, 'state.json');
    const { lines, log } = logged();
    const results: boolean[] = [];
    const f = new StateFile(path, log, () => ({}), (ok) => results.push(ok));
    await expect(f.save()).rejects.toBeInstanceOf(StateWriteError);
    await expect(f.save()).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(lines.filter((l) => l.msg === 'state file could not be written')).toHaveLength(1);
    expect(results).toEqual([false, false]);
    expect(existsSync(path)).toBe(false);
  });
});
