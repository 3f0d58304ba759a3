import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    figuresDir: string;
  }
}

/** One part of the fault suite's report: a section of docs/reliability.md. */
export interface Figures {
  /** Sections are ordered by it. */
  order: number;
  title: string;
  /** Markdown: what was tried and what was checked. */
  about: string;
  rows: Array<[string, number | string]>;
}

/** Hands a test file's figures to the suite's report (test/faults/report.ts writes the page). */
export function report(key: string, figures: Figures): void {
  const dir = inject('figuresDir');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${key}.json`), JSON.stringify(figures));
}

export const fmt = (n: number) => n.toLocaleString('en');
