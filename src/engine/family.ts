/** The one place a metric family is described: name, help, type, unit and label names. */
export type FamilyType = 'gauge' | 'counter';

export interface FamilyDef {
  readonly name: string;
  readonly help: string;
  readonly type: FamilyType;
  readonly labelNames: readonly string[];
  /** Base unit for the docs (seconds, ratio, bytes_per_second, count). */
  readonly unit: string;
  /** Upstream endpoint the values come from, for the docs and HELP. */
  readonly source: string;
}

const NAME_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Defines a family, rejecting names Prometheus would refuse or that break our naming rules. */
export function defineFamily(def: FamilyDef): FamilyDef {
  if (!NAME_RE.test(def.name)) throw new Error(`invalid metric name ${def.name}`);
  for (const l of def.labelNames) {
    if (!NAME_RE.test(l) || l.startsWith('__') || l === 'le' || l === 'quantile') {
      throw new Error(`invalid label name ${l} on ${def.name}`);
    }
  }
  if (def.type === 'counter' && !def.name.endsWith('_total')) throw new Error(`counter ${def.name} must end in _total`);
  if (def.type !== 'counter' && def.name.endsWith('_total')) throw new Error(`${def.name}: _total is for counters`);
  return Object.freeze({ ...def, labelNames: Object.freeze([...def.labelNames]) });
}
