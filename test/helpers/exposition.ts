/** A parsed sample line of the text exposition format. */
export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses exposition text (format 0.0.4), unescaping label values. Throws on a line it cannot read. */
export function parseExposition(text: string): ParsedSample[] {
  const out: ParsedSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    // [\s\S], not .: a label value may hold a raw carriage return or U+2028 (only \\, " and \n are escaped).
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([\s\S]*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unreadable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let lm: RegExpExecArray | null;
    let consumed = 0;
    while ((lm = re.exec(body)) !== null) {
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed += lm[0].length;
    }
    if (consumed !== body.length) throw new Error(`unreadable labels: ${line}`);
    const v = m[4]!;
    out.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return out;
}

/** Samples of `name` whose labels include every pair in `match`. */
export function find(samples: ParsedSample[], name: string, match: Record<string, string> = {}): ParsedSample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The value of the single sample that matches; throws when there is not exactly one. */
export function value(samples: ParsedSample[], name: string, match: Record<string, string> = {}): number {
  const found = find(samples, name, match);
  if (found.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(match)}, found ${found.length}`);
  return found[0]!.value;
}
