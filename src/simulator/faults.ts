/** Fault switches for the simulator, settable at start and at run time through /_admin/faults. */
export interface FaultRule {
  /**
   * status: answer with `status`; hang: never answer; malformed: 200 with broken JSON; truncate: 200
   * whose connection drops halfway through the promised body; body: answer `body` as it is (with
   * `status`, default 200); latency: delay, then go on.
   */
  kind: 'status' | 'hang' | 'malformed' | 'truncate' | 'body' | 'latency';
  status?: number;
  /** status rules: the error body echoes the request's Authorization header, as a careless proxy does. */
  echoAuth?: boolean;
  /** body rules: the raw body text. */
  body?: string;
  /** Retry-After header value in seconds, for status rules. */
  retryAfter?: number;
  latencyMs?: number;
  /** Only requests whose path contains this string; all when absent. */
  match?: string;
  /** Requests this rule still applies to; forever when absent. */
  remaining?: number;
}

const KINDS = new Set(['status', 'hang', 'malformed', 'truncate', 'body', 'latency']);

/** Validates a rule list from JSON; throws an Error naming the bad field. */
export function parseFaults(input: unknown): FaultRule[] {
  const list = Array.isArray(input) ? input : [input];
  return list.map((r, i) => {
    if (!r || typeof r !== 'object') throw new Error(`faults[${i}]: expected an object`);
    const rule = r as Record<string, unknown>;
    if (typeof rule.kind !== 'string' || !KINDS.has(rule.kind)) throw new Error(`faults[${i}].kind: one of ${[...KINDS].join(', ')}`);
    if (rule.kind === 'status' && (typeof rule.status !== 'number' || rule.status < 100 || rule.status > 599)) throw new Error(`faults[${i}].status: required HTTP status`);
    if (rule.kind === 'latency' && typeof rule.latencyMs !== 'number') throw new Error(`faults[${i}].latencyMs: required number`);
    if (rule.kind === 'body' && typeof rule.body !== 'string') throw new Error(`faults[${i}].body: required string`);
    if (rule.status !== undefined && (typeof rule.status !== 'number' || rule.status < 100 || rule.status > 599)) throw new Error(`faults[${i}].status: an HTTP status`);
    if (rule.echoAuth !== undefined && typeof rule.echoAuth !== 'boolean') throw new Error(`faults[${i}].echoAuth: expected a boolean`);
    for (const k of ['retryAfter', 'remaining', 'latencyMs'] as const) {
      if (rule[k] !== undefined && typeof rule[k] !== 'number') throw new Error(`faults[${i}].${k}: expected a number`);
    }
    if (rule.match !== undefined && typeof rule.match !== 'string') throw new Error(`faults[${i}].match: expected a string`);
    return rule as unknown as FaultRule;
  });
}

export class FaultSwitch {
  private rules: FaultRule[] = [];

  set(rules: FaultRule[]): void {
    this.rules = rules.map((r) => ({ ...r }));
  }

  add(rules: FaultRule[]): void {
    this.rules.push(...rules.map((r) => ({ ...r })));
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** Total latency to add and the first terminal fault for this path; uses up one `remaining` of each rule that fires. */
  pick(path: string): { latencyMs: number; fault?: FaultRule } {
    let latencyMs = 0;
    let fault: FaultRule | undefined;
    for (const r of this.rules) {
      if (r.match !== undefined && !path.includes(r.match)) continue;
      if (r.remaining !== undefined && r.remaining <= 0) continue;
      if (r.kind === 'latency') {
        latencyMs += r.latencyMs ?? 0;
        if (r.remaining !== undefined) r.remaining--;
      } else if (!fault) {
        fault = r;
        if (r.remaining !== undefined) r.remaining--;
      }
    }
    this.rules = this.rules.filter((r) => r.remaining === undefined || r.remaining > 0);
    return { latencyMs, fault };
  }
}
