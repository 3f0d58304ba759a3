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

/**
 * Renders the families of a sample set as exposition text, families sorted by name. Histograms
 * become cumulative `_bucket{le}` series (ending in le="+Inf", equal to `_count`), `_sum` and `_count`.
 */
export function renderSampleSet(set: SampleSet): string {
  const families = [...set.families.entries()].sort((a, b) => (a[0].name < b[0].name ? -1 : 1));
  const parts: string[] = [];
  for (const [family, series] of families) {
    if (series.length === 0) continue;
    parts.push(`# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`);
    const prefixes = family.labelNames.map((n, i) => `${i === 0 ? '{' : ','}${n}="`);
    const bounds = family.buckets;
    const les = bounds ? [...bounds.map(formatValue), '+Inf'] : [];
    for (const s of series) {
      let labels = '';
      for (let i = 0; i < prefixes.length; i++) labels += prefixes[i] + escapeLabelValue(s.labels[i] ?? '') + '"';
      if (!s.histogram) {
        parts.push(`${family.name}${labels}${prefixes.length > 0 ? '}' : ''} ${formatValue(s.value)}\n`);
        continue;
      }
      const open = prefixes.length > 0 ? `${labels},le="` : '{le="';
      let cumulative = 0;
      for (let i = 0; i < les.length; i++) {
        cumulative += s.histogram.counts[i]!;
        parts.push(`${family.name}_bucket${open}${les[i]}"} ${cumulative}\n`);
      }
      const close = prefixes.length > 0 ? '}' : '';
      parts.push(`${family.name}_sum${labels}${close} ${formatValue(s.histogram.sum)}\n${family.name}_count${labels}${close} ${s.histogram.count}\n`);
    }
  }
  return parts.join('');
}
