/** The one place a metric family is described: name, help, type, unit and label names. */
export type FamilyType = 'gauge' | 'counter' | 'histogram';

export interface FamilyDef {
  readonly name: string;
  readonly help: string;
  readonly type: FamilyType;
  readonly labelNames: readonly string[];
  /** Base unit for the docs (seconds, ratio, bytes_per_second, count). */
  readonly unit: string;
  /** Upstream endpoint the values come from, for the docs and HELP. */
  readonly source: string;
  /** Histograms only: the finite upper bounds of the buckets, ascending; +Inf is implied. */
  readonly buckets?: readonly number[];
}

const NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const RESERVED_SUFFIXES = ['_bucket', '_sum', '_count'];

/** Defines a family, rejecting names Prometheus would refuse or that break our naming rules. */
export function defineFamily(def: FamilyDef): FamilyDef {
  if (!NAME_RE.test(def.name)) throw new Error(`invalid metric name ${def.name}`);
  for (const l of def.labelNames) {
    if (!NAME_RE.test(l) || l.startsWith('__') || l === 'le' || l === 'quantile') {
      throw new Error(`invalid label name ${l} on ${def.name}`);
    }
  }
  if (new Set(def.labelNames).size !== def.labelNames.length) throw new Error(`${def.name}: a label name is listed twice`);
  if (def.type === 'counter' && !def.name.endsWith('_total')) throw new Error(`counter ${def.name} must end in _total`);
  if (def.type !== 'counter' && def.name.endsWith('_total')) throw new Error(`${def.name}: _total is for counters`);
  if (def.type === 'histogram') {
    const b = def.buckets;
    if (!b || b.length === 0) throw new Error(`histogram ${def.name} needs buckets`);
    if (!b.every((x, i) => Number.isFinite(x) && (i === 0 || x > b[i - 1]!))) {
      throw new Error(`histogram ${def.name}: buckets must be finite and strictly ascending`);
    }
    if (RESERVED_SUFFIXES.some((s) => def.name.endsWith(s))) throw new Error(`histogram ${def.name}: the name must not end in _bucket, _sum or _count`);
    return Object.freeze({ ...def, labelNames: Object.freeze([...def.labelNames]), buckets: Object.freeze([...b]) });
  }
  if (def.buckets !== undefined) throw new Error(`${def.name}: only histograms have buckets`);
  return Object.freeze({ ...def, labelNames: Object.freeze([...def.labelNames]) });
}
