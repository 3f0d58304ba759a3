// Reading Prometheus text exposition in the benchmark: counting data series, dropping the
// exporter's own families, and picking single sample values out of a large body cheaply.

/** Families that are not data: the exporter's own, and prom-client's default process/nodejs ones. */
export const SELF_PREFIXES = ['conviva_exporter_', 'process_', 'nodejs_'];

export const isSelfName = (name: string): boolean => SELF_PREFIXES.some((p) => name.startsWith(p));

/** The metric name of a sample line, or of a `# HELP` / `# TYPE` line; '' for other lines. */
export function lineName(line: string): string {
  if (line.startsWith('#')) {
    const m = /^#\s+(?:HELP|TYPE|UNIT)\s+(\S+)/.exec(line);
    return m ? m[1]! : '';
  }
  const end = line.search(/[{\s]/);
  return end < 0 ? line : line.slice(0, end);
}

const isSample = (line: string): boolean => line.length > 0 && !line.startsWith('#');

/** Data series: sample lines that are not the exporter's own, process_ or nodejs_ ones. */
export function countDataSeries(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (isSample(line) && !isSelfName(lineName(line))) n++;
  return n;
}

/** Every sample line. */
export function countSeries(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (isSample(line)) n++;
  return n;
}

/** The exposition without the self families (their HELP/TYPE lines included), and the sample names kept. */
export function dataOnly(text: string): { text: string; series: number; names: Set<string> } {
  const kept: string[] = [];
  const names = new Set<string>();
  let series = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const name = lineName(line);
    if (!name || isSelfName(name)) continue;
    kept.push(line);
    if (isSample(line)) {
      series++;
      names.add(name);
    }
  }
  return { text: kept.join('\n') + '\n', series, names };
}

/** Sample lines whose metric name is one of `names`. */
export function countSeriesNamed(text: string, names: Set<string>): number {
  let n = 0;
  for (const line of text.split('\n')) if (isSample(line) && names.has(lineName(line))) n++;
  return n;
}

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

/**
 * Values of the samples named `name` whose labels include every `labels` pair, found with
 * Buffer.indexOf (no split of a many-MiB body into lines).
 */
export function sampleValues(body: Buffer, name: string, labels: Record<string, string> = {}): number[] {
  const values: number[] = [];
  const nameBytes = Buffer.from(name);
  const needle = Buffer.from(`\n${name}`);
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const readLine = (start: number) => {
    const after = body[start + nameBytes.length];
    if (after !== 0x7b /* { */ && after !== 0x20 /* space */) return; // a longer name
    const eol = body.indexOf(10, start);
    const line = body.toString('utf8', start, eol === -1 ? body.length : eol);
    const close = after === 0x7b ? line.lastIndexOf('}') : name.length - 1;
    if (!wanted.every((w) => line.slice(name.length, close + 1).includes(w))) return;
    const v = parseValue(line.slice(close + 1).trim().split(/\s+/)[0] ?? '');
    if (!Number.isNaN(v)) values.push(v);
  };
  if (body.subarray(0, nameBytes.length).equals(nameBytes)) readLine(0);
  for (let at = body.indexOf(needle); at !== -1; at = body.indexOf(needle, at + 1)) readLine(at + 1);
  return values;
}

/** The first matching value, or undefined. */
export function sampleValue(body: Buffer, name: string, labels: Record<string, string> = {}): number | undefined {
  return sampleValues(body, name, labels)[0];
}
