import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { formatPath } from '../../src/config/load.js';
import { SOURCES } from '../../src/sources/index.js';
import { parseExposition } from '../helpers/exposition.js';
import { MAIN, ROOT } from '../helpers/process.js';

// The plug-in list: every source is one folder and one line, and everything else iterates the list.

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((f) => {
    const p = join(dir, f);
    return statSync(join(ROOT, p)).isDirectory() ? files(p) : [p];
  });
}

describe('the source list', () => {
  it('has sources with distinct names that are valid config keys', () => {
    expect(SOURCES.length).toBeGreaterThan(0);
    const names = SOURCES.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z][a-z0-9_]*$/);
  });

  it('outside its own folder (and the one list), no source file names a source', () => {
    const offenders: string[] = [];
    for (const f of files('src').filter((p) => p.endsWith('.ts'))) {
      const rel = relative(ROOT, join(ROOT, f));
      if (rel === 'src/sources/index.ts') continue;
      // the product's own name and metric prefix are not a source's name
      const text = readFileSync(join(ROOT, f), 'utf8').replace(/conviva[-_]exporter/gi, '');
      for (const s of SOURCES) {
        if (rel.startsWith(`src/sources/${s.name}/`)) continue;
        if (new RegExp(`\\b${s.name}`, 'i').test(text)) offenders.push(`${rel} names ${s.name}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  for (const source of SOURCES) {
    describe(`source "${source.name}"`, () => {
      it('its families are documented in docs/metrics.md', () => {
        const doc = read('docs/metrics.md');
        expect(source.families.length).toBeGreaterThan(0);
        for (const f of source.families) expect(doc, f.name).toContain(`| \`${f.name}\` |`);
      });

      it('its block in config/example.yml validates against its schema, and config/demo.yml has one', () => {
        const example = parse(read('config/example.yml')) as { sources: Record<string, unknown> };
        const block = example.sources[source.name];
        expect(block, `sources.${source.name} in config/example.yml`).toBeDefined();
        const r = source.configSchema.safeParse(block);
        expect(r.success ? [] : r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`)).toEqual([]);
        const demo = parse(read('config/demo.yml')) as { sources: Record<string, unknown> };
        expect(demo.sources[source.name], `sources.${source.name} in config/demo.yml`).toBeDefined();
      });
    });
  }

  it('--demo runs every source against its fake: every collector up, every source serving its families', () => {
    const r = spawnSync(process.execPath, [MAIN, '--demo', '--once'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const samples = parseExposition(r.stdout);
    const up = samples.filter((s) => s.name === 'conviva_exporter_collector_up');
    expect(up.length).toBeGreaterThanOrEqual(SOURCES.length);
    for (const u of up) expect(u.value, u.labels.collector).toBe(1);
    const served = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
    for (const source of SOURCES) {
      expect(source.families.some((f) => served.has(f.name)), `${source.name} serves nothing in --demo`).toBe(true);
    }
  });
});
