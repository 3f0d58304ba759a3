// Reads back the text exposition format (0.0.4) that /metrics serves: our renderer's output and
// prom-client's. The OTLP push converts what /metrics serves, so both carry the same numbers.

export type ParsedType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedSeries {
  /** The sample's name (for histograms: name_bucket, name_sum or name_count). */
  readonly name: string;
  /** Label pairs in the order written. */
  readonly labels: [string, string][];
  readonly value: number;
}

export interface ParsedFamily {
  readonly name: string;
  help: string;
  type: ParsedType;
  readonly samples: ParsedSeries[];
}

/** A line the parser cannot read: the exposition is ours, so this is a bug, reported with the line. */
export class ExpositionParseError extends Error {
  constructor(readonly line: string) {
    super(`unreadable exposition line: ${line.length > 200 ? `${line.slice(0, 200)}...` : line}`);
    this.name = 'ExpositionParseError';
  }
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;
const SUMMARY_SUFFIXES = ['_sum', '_count'] as const;

function unescapeHelp(s: string): string {
  return s.includes('\\') ? s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)) : s;
}

function parseValue(v: string, line: string): number {
  switch (v) {
    case '+Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  const n = Number(v);
  if (v === '' || Number.isNaN(n)) throw new ExpositionParseError(line);
  return n;
}

/**
 * Parses exposition text into families, in the order they appear. A sample is put in the family
 * its # TYPE line declared (a histogram's _bucket/_sum/_count samples in the histogram); a sample
 * without a declared family makes an untyped family of its own.
 */
export function parseExpositionText(text: string, into: Map<string, ParsedFamily> = new Map()): Map<string, ParsedFamily> {
  const families = into;
  const family = (name: string): ParsedFamily => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: '', type: 'untyped', samples: [] };
      families.set(name, f);
    }
    return f;
  };
  let current: ParsedFamily | undefined;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line === '') continue;
    if (line.charCodeAt(0) === 35 /* # */) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line);
      if (!m) continue; // a comment
      const f = family(m[2]!);
      if (m[1] === 'HELP') f.help = unescapeHelp(m[3] ?? '');
      else {
        const t = m[3] ?? '';
        if (t !== 'counter' && t !== 'gauge' && t !== 'histogram' && t !== 'summary' && t !== 'untyped') throw new ExpositionParseError(line);
        f.type = t;
      }
      current = f;
      continue;
    }
    const sample = parseSample(line);
    let owner: ParsedFamily | undefined;
    if (current && (sample.name === current.name || belongs(sample.name, current))) owner = current;
    else owner = families.get(sample.name) ?? family(sample.name);
    owner.samples.push(sample);
  }
  return families;
}

function belongs(sample: string, f: ParsedFamily): boolean {
  const suffixes = f.type === 'histogram' ? HISTOGRAM_SUFFIXES : f.type === 'summary' ? SUMMARY_SUFFIXES : [];
  for (const s of suffixes) if (sample.length === f.name.length + s.length && sample.startsWith(f.name) && sample.endsWith(s)) return true;
  return false;
}

/** One sample line: name, optional {labels}, value, optional timestamp (ignored). */
function parseSample(line: string): ParsedSeries {
  let i = 0;
  while (i < line.length && line.charCodeAt(i) !== 123 /* { */ && line.charCodeAt(i) !== 32) i++;
  const name = line.slice(0, i);
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new ExpositionParseError(line);
  const labels: [string, string][] = [];
  if (line.charCodeAt(i) === 123) {
    i++;
    while (line.charCodeAt(i) !== 125 /* } */) {
      const eq = line.indexOf('="', i);
      if (eq < 0) throw new ExpositionParseError(line);
      const key = line.slice(i, eq);
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key)) throw new ExpositionParseError(line);
      let j = eq + 2;
      let value = '';
      let from = j;
      for (;;) {
        const c = line.charCodeAt(j);
        if (Number.isNaN(c)) throw new ExpositionParseError(line);
        if (c === 34 /* " */) break;
        if (c === 92 /* \ */) {
          value += line.slice(from, j);
          const n = line[j + 1];
          if (n === undefined) throw new ExpositionParseError(line);
          value += n === 'n' ? '\n' : n;
          j += 2;
          from = j;
          continue;
        }
        j++;
      }
      value += line.slice(from, j);
      labels.push([key, value]);
      i = j + 1;
      if (line.charCodeAt(i) === 44 /* , */) i++;
      else if (line.charCodeAt(i) !== 125) throw new ExpositionParseError(line);
    }
    i++;
  }
  if (line.charCodeAt(i) !== 32) throw new ExpositionParseError(line);
  const rest = line.slice(i + 1);
  const sp = rest.indexOf(' ');
  return { name, labels, value: parseValue(sp < 0 ? rest : rest.slice(0, sp), line) };
}
