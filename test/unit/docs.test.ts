import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../../src/config/load.js';
import { Engine } from '../../src/engine/engine.js';
import { createWebConfigMetrics } from '../../src/server/web-server.js';
import { SOURCES } from '../../src/sources/index.js';

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

interface DocRow {
  name: string;
  type: string;
  labels: string[];
}

/** Rows of every markdown table whose first column is a `metric_name`, read by their header. */
function documentedFamilies(md: string): DocRow[] {
  const rows: DocRow[] = [];
  let header: string[] = [];
  for (const line of md.split('\n')) {
    if (!line.startsWith('|')) {
      header = [];
      continue;
    }
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (header.length === 0) {
      header = cells;
      continue;
    }
    const m = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[0] ?? '');
    if (!m || !header.includes('type')) continue;
    const labels = cells[header.indexOf('labels')] ?? '';
    rows.push({ name: m[1]!, type: cells[header.indexOf('type')]!, labels: labels ? labels.split(/,\s*/) : [] });
  }
  return rows;
}

describe('docs/metrics.md', () => {
  it('lists every family the code can emit, with its type and labels, and nothing else', async () => {
    // Every source's data families, and every self-metric of the engine, the HTTP layer and the sources.
    const fromCode: DocRow[] = SOURCES.flatMap((s) => s.families.map((f) => ({ name: f.name, type: f.type, labels: [...f.labelNames] })));
    // With an otlp block, so that the OTLP push's own series are listed too.
    const engine = new Engine({ config: parseConfig('sources: {}\notlp: { endpoint: "http://127.0.0.1:4318/v1/metrics" }', {}, '.'), log: pino({ level: 'silent' }), sink: { update: () => {} }, version: 'test' });
    for (const m of await engine.registry.getMetricsAsJSON()) {
      const labels = (engine.registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames;
      fromCode.push({ name: m.name, type: String(m.type), labels: [...labels] });
    }
    // The serving thread's series of --web.config.file.
    const web = new Registry();
    createWebConfigMetrics(web);
    for (const m of await web.getMetricsAsJSON()) {
      const labels = (web.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames;
      fromCode.push({ name: m.name, type: String(m.type), labels: [...labels] });
    }
    expect(fromCode.length).toBeGreaterThan(40);
    const byName = (a: DocRow, b: DocRow) => a.name.localeCompare(b.name);
    expect(documentedFamilies(read('docs/metrics.md')).sort(byName)).toEqual(fromCode.sort(byName));
  });
});

describe('README and config docs', () => {
  it('the README opens with the two commands', () => {
    const readme = read('README.md');
    const firstCode = /```[a-z]*\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(firstCode).toContain('npm ci && npm start');
    expect(firstCode).toContain('npm test');
  });

  it('docs/configuration.md mentions every key of config/example.yml', () => {
    const doc = read('docs/configuration.md');
    const keys = new Set<string>();
    for (const line of read('config/example.yml').split('\n')) {
      const m = /^\s*(?:- )?#?\s*([a-z_]+):/.exec(line);
      if (m && !line.trim().startsWith('# ') ) keys.add(m[1]!);
    }
    expect(keys.size).toBeGreaterThan(20);
    // a key counts as documented when it stands in a code span, alone or in a path (`sources.conviva`, `accounts[].name`)
    const missing = [...keys].filter((k) => !new RegExp(`\`[^\`]*\\b${k}\\b[^\`]*\``).test(doc));
    expect(missing).toEqual([]);
  });
});
