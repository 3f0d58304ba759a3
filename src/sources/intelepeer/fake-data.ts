/**
 * Deterministic data of the IntelePeer fake (upstream-apis.md section 5): the schemas of the Insights
 * data warehouse, the demo flows and their events (drawn from a seeded hash of seed, schema, minute,
 * flow and rank), and the CSV the query results are written as, so tests can compute what the fake
 * served from the seed and an interval.
 */

import { hash, mulberry32 } from '../../simulator/hash.js';

export { hash };

/** The fields every schema has [doc]. */
export const COMMON_FIELDS = [
  'EventName', 'EventVersion', 'TimeStamp', 'CustomerId', 'FlowId', 'FlowName', 'ActionId', 'ActionName',
  'IsTriggerAction', 'SessionId', 'TransactionId', 'ApplicationRegion',
] as const;

export const SCHEMA_NAMES = ['ApplicationExitEvent', 'DtmfEvent', 'CallEvent', 'MsgEvent'] as const;
export type SchemaName = (typeof SCHEMA_NAMES)[number];

/**
 * The schemas as GET Q lists them: the common fields, then the schema's own. The own fields of
 * CallEvent and MsgEvent are assumed (the docs only name those schemas).
 */
export const SCHEMAS: Readonly<Record<SchemaName, { readonly fields: readonly string[] }>> = {
  ApplicationExitEvent: { fields: [...COMMON_FIELDS, 'StartTime', 'EndTime', 'Path', 'ExitReason'] },
  DtmfEvent: { fields: [...COMMON_FIELDS, 'DtmfInput', 'DtmfSource', 'ErrorReason'] },
  CallEvent: { fields: [...COMMON_FIELDS, 'Direction', 'CallerId', 'CalledNumber', 'StartTime', 'EndTime', 'Disposition'] },
  MsgEvent: { fields: [...COMMON_FIELDS, 'Direction', 'Channel', 'Status'] },
};

export function isSchemaName(s: string): s is SchemaName {
  return (SCHEMA_NAMES as readonly string[]).includes(s);
}

/** A flow of the customer's Atmosphere account; its events carry its id, name and region. */
export interface IntelePeerFlow {
  /** 24 hex digits, as the docs' example FlowId. */
  id: string;
  name: string;
  region: string;
}

/** The demo flows: one name holds a comma, double quotes and a newline, one is not ASCII, so CSV quoting and UTF-8 are exercised. */
export const DEMO_FLOWS: readonly IntelePeerFlow[] = [
  { id: '5dcf48b453e0ab04386da7d1', name: 'Main IVR', region: 'us-east' },
  { id: '5dcf48b453e0ab04386da7d2', name: 'Billing, "VIP"\nafter hours', region: 'us-east' },
  { id: '5e1a0c7f2b9d4e0017c3a9f0', name: 'Appointment reminders', region: 'us-west' },
  { id: '5e1a0c7f2b9d4e0017c3a9f1', name: 'Soporte técnico', region: 'us-west' },
];

/** The customer id of the demo account: every event's CustomerId, and the folder its results are written to. */
export const INTELEPEER_DEMO_CUSTOMER_ID = '5dcf3d1c53e0ab04386d7c10';

/**
 * Mean events per minute per flow (times the `rate` option): ApplicationExitEvent 3 per flow; the
 * others 1 (DtmfEvent), 4 (CallEvent) and 2 (MsgEvent) a minute across the four demo flows.
 */
export const EVENTS_PER_MINUTE_PER_FLOW: Readonly<Record<SchemaName, number>> = {
  ApplicationExitEvent: 3,
  DtmfEvent: 0.25,
  CallEvent: 1,
  MsgEvent: 0.5,
};

/** Everything the events are computed from. */
export interface EventWorld {
  seed: number;
  /** Multiplies every rate (default 1). */
  rate?: number;
  flows?: readonly IntelePeerFlow[];
  customerId?: string;
}

/** One event: every field of its schema, in the schema's order, as the text the CSV holds. */
export type EventRow = Record<string, string>;

const MINUTE = 60_000;

const EVENT_VERSIONS: Readonly<Record<SchemaName, string>> = { ApplicationExitEvent: '2.1', DtmfEvent: '1.0', CallEvent: '1.3', MsgEvent: '1.1' };
const ACTIONS: Readonly<Record<SchemaName, readonly string[]>> = {
  ApplicationExitEvent: ['End flow', 'Hang up', 'Transfer to agent'],
  DtmfEvent: ['Main menu', 'Collect account number', 'Menú de idioma'],
  CallEvent: ['Answer call', 'Place call', 'Transfer to agent'],
  MsgEvent: ['Send SMS', 'Receive reply', 'Send reminder'],
};
const DTMF_KEYS = '0123456789*'.split('');
const PATH_STEPS = ['Greeting', 'Main menu', 'Collect account number', 'Billing', 'Agent queue', 'Survey'];
const EXIT_REASONS: ReadonlyArray<[string, number]> = [['Completed', 0.5], ['Hangup', 0.25], ['Transfer', 0.15], ['Error', 0.05], ['Timeout', 0.05]];
const DTMF_SOURCES = ['RFC2833', 'Inband', 'SIPInfo'];
const DTMF_ERRORS = ['NoInput', 'NoMatch', 'MaxDigitsExceeded'];
const DISPOSITIONS: ReadonlyArray<[string, number]> = [['Answered', 0.6], ['NoAnswer', 0.15], ['Busy', 0.1], ['Voicemail', 0.1], ['Failed', 0.05]];
const CHANNELS: ReadonlyArray<[string, number]> = [['SMS', 0.6], ['MMS', 0.15], ['WhatsApp', 0.25]];
const OUTBOUND_STATUSES: ReadonlyArray<[string, number]> = [['Delivered', 0.75], ['Sent', 0.1], ['Undelivered', 0.1], ['Failed', 0.05]];

const pick = <T>(list: readonly T[], h: number): T => list[Math.min(list.length - 1, Math.floor(h * list.length))]!;
const weighted = (list: ReadonlyArray<[string, number]>, h: number): string => {
  let x = h;
  return (list.find(([, share]) => (x -= share) < 0) ?? list[0]!)[0];
};

function hex(h: number, digits: number): string {
  return Math.floor(h * 0x1_0000_0000).toString(16).padStart(8, '0').slice(0, digits);
}

/** A v4-looking GUID from seven uniforms: `h(k)` for k = 0..6, called in that order. */
export function guidFrom(h: (k: number) => number): string {
  return `${hex(h(0), 8)}-${hex(h(1), 4)}-4${hex(h(2), 3)}-${'89ab'[Math.floor(h(3) * 4)]}${hex(h(4), 3)}-${hex(h(5), 4)}${hex(h(6), 8)}`;
}

/** A 24-hex-digit id, as IntelePeer's (MongoDB-style) ids look. */
function objectId(key: string): string {
  return `${hex(hash(`${key}|0`), 8)}${hex(hash(`${key}|1`), 8)}${hex(hash(`${key}|2`), 8)}`;
}

/**
 * A count with mean `mean` from a uniform `u`: Poisson by inverse CDF, a normal approximation above
 * a mean of 30 (where e^-mean gets too small to walk from), so any `rate` multiplier works.
 */
function countOf(mean: number, u: number, v: number): number {
  if (!(mean > 0)) return 0;
  if (mean > 30) {
    const z = Math.sqrt(-2 * Math.log(Math.max(u, 1e-12))) * Math.cos(2 * Math.PI * v);
    return Math.max(0, Math.round(mean + Math.sqrt(mean) * z));
  }
  let p = Math.exp(-mean);
  let f = p;
  let k = 0;
  while (u > f && k < 1000) {
    k++;
    p *= mean / k;
    f += p;
  }
  return k;
}

function phone(h: number): string {
  const n = Math.floor(h * 8_000_000_000) + 2_000_000_000;
  return `+1${n}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The ids that depend only on the seed, the flow and the action: computed once. */
const idCache = new Map<string, string>();
function cachedId(key: string, make: () => string): string {
  let v = idCache.get(key);
  if (v === undefined) {
    if (idCache.size > 10_000) idCache.clear();
    v = make();
    idCache.set(key, v);
  }
  return v;
}

/**
 * The events of one schema in the minute starting at `minute` (a multiple of 60 000), ordered by
 * TimeStamp. Each flow's count is drawn from hash(seed, schema, minute, flow); each event's fields
 * from a stream seeded by hash(..., its rank), in a fixed order.
 */
export function minuteEvents(world: EventWorld, schema: SchemaName, minute: number): EventRow[] {
  const flows = world.flows ?? DEMO_FLOWS;
  const customerId = world.customerId ?? INTELEPEER_DEMO_CUSTOMER_ID;
  const mean = EVENTS_PER_MINUTE_PER_FLOW[schema] * (world.rate ?? 1);
  const out: Array<{ ts: number; order: number; row: EventRow }> = [];
  flows.forEach((flow, f) => {
    const key = `${world.seed}|ip|${schema}|${minute}|${flow.id}`;
    const n = countOf(mean, hash(`${key}|n`), hash(`${key}|n2`));
    for (let k = 0; k < n; k++) {
      const r = mulberry32(Math.floor(hash(`${key}|${k}`) * 0x1_0000_0000));
      const ts = minute + Math.floor(r() * MINUTE);
      const action = pick(ACTIONS[schema], r());
      const row: EventRow = {
        EventName: schema,
        EventVersion: EVENT_VERSIONS[schema],
        TimeStamp: iso(ts),
        CustomerId: customerId,
        FlowId: flow.id,
        FlowName: flow.name,
        ActionId: cachedId(`${world.seed}|ip-action|${flow.id}|${schema}|${action}`, () => objectId(`${world.seed}|ip-action|${flow.id}|${schema}|${action}`)),
        ActionName: action,
        IsTriggerAction: r() < 0.2 ? 'true' : 'false',
        SessionId: guidFrom(() => r()),
        TransactionId: `${hex(r(), 8)}${hex(r(), 8)}${hex(r(), 8)}`,
        ApplicationRegion: flow.region,
      };
      // A call or flow ends at most 2 s before its event is written and lasted 5 to 900 s.
      const end = ts - Math.floor(r() * 2_000);
      const start = end - 5_000 - Math.floor(r() * 895_001);
      switch (schema) {
        case 'ApplicationExitEvent': {
          const steps = 1 + Math.floor(r() * 4);
          const path = ['Start', ...Array.from({ length: steps }, () => pick(PATH_STEPS, r())), action];
          Object.assign(row, { StartTime: iso(start), EndTime: iso(end), Path: path.join('/'), ExitReason: weighted(EXIT_REASONS, r()) });
          break;
        }
        case 'DtmfEvent': {
          const digits = Array.from({ length: 1 + Math.floor(r() * 6) }, () => pick(DTMF_KEYS, r())).join('');
          const input = r() < 0.3 ? `${digits}#` : digits;
          const source = pick(DTMF_SOURCES, r());
          // Empty when the input was taken: most of the time.
          const error = r() < 0.8 ? '' : pick(DTMF_ERRORS, r());
          Object.assign(row, { DtmfInput: input, DtmfSource: source, ErrorReason: error });
          break;
        }
        case 'CallEvent': {
          const inbound = r() < 0.7;
          const customer = phone(r());
          const ours = cachedId(`${world.seed}|ip-number|${flow.id}`, () => phone(hash(`${world.seed}|ip-number|${flow.id}`)));
          Object.assign(row, {
            Direction: inbound ? 'Inbound' : 'Outbound',
            CallerId: inbound ? customer : ours,
            CalledNumber: inbound ? ours : customer,
            StartTime: iso(start),
            EndTime: iso(end),
            Disposition: weighted(DISPOSITIONS, r()),
          });
          break;
        }
        case 'MsgEvent': {
          const inbound = r() < 0.4;
          const channel = weighted(CHANNELS, r());
          Object.assign(row, { Direction: inbound ? 'Inbound' : 'Outbound', Channel: channel, Status: inbound ? 'Received' : weighted(OUTBOUND_STATUSES, r()) });
          break;
        }
      }
      out.push({ ts, order: f * 100_000 + k, row });
    }
  });
  out.sort((a, b) => a.ts - b.ts || a.order - b.order);
  return out.map((e) => e.row);
}

/** Every event of `schema` with TimeStamp in [fromMs, toMs), ordered by TimeStamp: the oracle of the tests. */
export function eventsBetween(world: EventWorld, schema: SchemaName, fromMs: number, toMs: number): EventRow[] {
  const out: EventRow[] = [];
  if (!(toMs > fromMs)) return out;
  for (let m = Math.floor(fromMs / MINUTE) * MINUTE; m < toMs; m += MINUTE) {
    for (const row of minuteEvents(world, schema, m)) {
      const ts = Date.parse(row.TimeStamp!);
      if (ts >= fromMs && ts < toMs) out.push(row);
    }
  }
  return out;
}

/** One CSV field, quoted as RFC 4180 asks when it holds a comma, a double quote, CR or LF. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** CSV lines (header first), each ending in CRLF. */
export function csvText(lines: ReadonlyArray<readonly string[]>): string {
  return lines.map((l) => `${l.map(csvField).join(',')}\r\n`).join('');
}
