import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import type { Figures } from './figures.js';

/**
 * Global setup of `npm run test:faults`: gives every test file a folder for its figures, and when
 * the suite ends prints them, and with UPDATE_RELIABILITY=1 writes them to docs/reliability.md.
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'fault-figures-'));
  project.provide('figuresDir', dir);
  return () => {
    const all = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Figures)
      .sort((a, b) => a.order - b.order);
    rmSync(dir, { recursive: true, force: true });
    if (all.length === 0) return;
    const lines = ['', 'fault suite figures:'];
    for (const f of all) {
      lines.push(`  ${f.title}`);
      for (const [k, v] of f.rows) lines.push(`    ${k}: ${v}`);
    }
    console.log(lines.join('\n'));
    if (process.env.UPDATE_RELIABILITY) writeFileSync(new URL('../../docs/reliability.md', import.meta.url), page(all));
  };
}

function page(all: Figures[]): string {
  const sections = all.map((f) => `## ${f.title}

${f.about.trim()}

| figure | value |
|---|---:|
${f.rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}
`);
  return `# Reliability

Written by \`UPDATE_RELIABILITY=1 npm run test:faults\` (test/faults/); do not edit by hand. \`.ci/run\`
runs the same suite on every change and prints these figures; the generators and the storm are
seeded, so the figures are reproducible (timings aside).

Every source registers into the suite (\`test/faults/plugins/\`): its config block, its secrets, the
paths the storm aims at, and its oracle, which says what every counter must read from what the
simulator served. A source without a registration fails the suite.

${sections.join('\n')}`;
}
