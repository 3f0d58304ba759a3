import type { SampleSet } from './samples.js';

// Text exposition format 0.0.4: label values escape \ " and newline; HELP escapes \ and newline.
export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : v;
}

export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Renders the families of a sample set as exposition text, families sorted by name. */
export function renderSampleSet(set: SampleSet): string {
  const families = [...set.families.entries()].sort((a, b) => (a[0].name < b[0].name ? -1 : 1));
  const parts: string[] = [];
  for (const [family, series] of families) {
    if (series.length === 0) continue;
    parts.push(`# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`);
    const prefixes = family.labelNames.map((n, i) => `${i === 0 ? '{' : ','}${n}="`);
    for (const s of series) {
      let line = family.name;
      for (let i = 0; i < prefixes.length; i++) line += prefixes[i] + escapeLabelValue(s.labels[i] ?? '') + '"';
      if (prefixes.length > 0) line += '}';
      parts.push(`${line} ${formatValue(s.value)}\n`);
    }
  }
  return parts.join('');
}
