/**
 * IntelePeer Insights' fake (upstream-apis.md section 5) under /intelepeer: token authentication,
 * and the asynchronous data-warehouse queries (submit, poll the status, read the result sentence)
 * whose results it writes as gzipped CSV files into `filesDir`, the SFTP login's home. Admin routes
 * under /_admin/intelepeer show the queries and turn the knobs. Everything is computed from the
 * seed and the injected clock when asked; there are no timers.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Response, Router } from 'express';
import type { Clock } from '../../engine/clock.js';
import type { Fake, FakeOptions } from '../../simulator/fake.js';
import {
  csvText, DEMO_FLOWS, eventsBetween, guidFrom, hash, INTELEPEER_DEMO_CUSTOMER_ID, isSchemaName, SCHEMAS,
  type EventRow, type EventWorld, type IntelePeerFlow, type SchemaName,
} from './fake-data.js';

export {
  COMMON_FIELDS, csvField, csvText, DEMO_FLOWS, EVENTS_PER_MINUTE_PER_FLOW, eventsBetween, INTELEPEER_DEMO_CUSTOMER_ID, minuteEvents,
  SCHEMA_NAMES, SCHEMAS, type EventRow, type EventWorld, type IntelePeerFlow, type SchemaName,
} from './fake-data.js';

export const INTELEPEER_DEMO_USERNAME = 'demo-intelepeer';
export const INTELEPEER_DEMO_PASSWORD = 'demo-intelepeer-password';
export const AUTH_PATH = '/intelepeer/_rest/v4/authenticate';
export const QUERY_PATH = '/intelepeer/_rest/v4/dwh/Q';

/** A token is valid this long from the time it was issued [doc]. */
export const TOKEN_TTL_MS = 86_400_000;
/** Queries one user may have Pending at once [doc]. */
export const MAX_PENDING_PER_USER = 2;
/**
 * The warehouse keeps a week of events [assumed], and nothing after a query's submission: a
 * query's rows have TimeStamp in [submittedAt - retention, submittedAt) besides its own interval,
 * so an open-ended interval is bounded.
 */
export const INTELEPEER_RETENTION_MS = 7 * 86_400_000;
export const NO_DATA_MESSAGE = 'No data found for the given filters';
export const NOT_FINISHED_SENTENCE = 'Process has not finish yet, please verify the status of your request';
export const FAILED_SENTENCE = 'Process failed';

export const QUERY_STATUSES = ['Pending', 'Completed', 'Failed', 'Canceled'] as const;
export type QueryStatus = (typeof QUERY_STATUSES)[number];

export const OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'] as const;
export type Operator = (typeof OPERATORS)[number];
/** A field's conditions, all of which a row must meet (string comparison). */
export type Conditions = Partial<Record<Operator, string>>;

export interface IntelePeerFakeOptions {
  seed: number;
  clock: Clock;
  /** The folder result files are written into, at the relative paths GET Q/{guid} lists. */
  filesDir: string;
  /** Logins: username -> password (default the demo one). */
  users?: Readonly<Record<string, string>>;
  /** Multiplies every event rate (default 1). */
  rate?: number;
  /** Default DEMO_FLOWS. */
  flows?: readonly IntelePeerFlow[];
  /** Every event's CustomerId and the folder under reports/ (default INTELEPEER_DEMO_CUSTOMER_ID). */
  customerId?: string;
  /** Initial knobs (see the setters). */
  pendingMs?: number;
  cancelShare?: number;
  rowsPerFile?: number;
}

/** A query as it stands at the time asked (the clock's now). */
export interface IntelePeerQuery {
  guid: string;
  username: string;
  schema: SchemaName;
  /** The rows' TimeStamp interval [from, to), epoch ms: its operators, bounded by the retention and the submission. */
  from: number;
  to: number;
  fields: string[];
  /** field -> conditions; {} when the query had none. */
  filters: Record<string, Conditions>;
  status: QueryStatus;
  /** Relative paths under filesDir; [] unless Completed. */
  files: string[];
  /** The rows it matched. */
  rows: number;
  submittedAt: number;
  /** When it stops being Pending. */
  finishesAt: number;
}

/** A result file written, in the order written. */
export interface WrittenFile {
  path: string;
  guid: string;
  /** Data rows (the header not counted). */
  rows: number;
  /** truncated: cut at half its gzip bytes (corruptNext); garbled: a row has one column too many (garbleNext). */
  fault: 'truncated' | 'garbled' | null;
}

export interface IntelePeerKnobs {
  pendingMs: number;
  cancelShare: number;
  rowsPerFile: number;
  /** Remaining counts of the one-shot faults. */
  cancelNext: number;
  corruptNext: number;
  garbleNext: number;
}

/** An answer other than 2xx: the status and the exact body the API sends. */
export class IntelePeerApiError extends Error {
  constructor(readonly status: number, readonly body: unknown) {
    super(`${status} ${JSON.stringify(body)}`);
  }
}

/** A bad admin change (400). */
export class IntelePeerFakeError extends Error {}

interface StoredQuery {
  number: number;
  guid: string;
  username: string;
  schema: SchemaName;
  fields: string[];
  filters: Record<string, Conditions>;
  from: number;
  to: number;
  submittedAt: number;
  finishesAt: number;
  rows: number;
  /** Knobs as they were at submission: later changes do not touch a query already submitted. */
  rowsPerFile: number;
  canceledByShare: boolean;
  /** Set once, by settle(), when it stops being Pending. */
  outcome?: Exclude<QueryStatus, 'Pending'>;
  files: string[];
  written: boolean;
}

const badRequest = (message: unknown) => new IntelePeerApiError(400, { code: 400, message });
const UNAUTHORIZED = { code: 401, message: 'Unauthorized' };
const BAD_LOGIN = { code: 401, message: 'Invalid username or password' };

/** A Python repr of a string, as the API's messages quote values. */
const py = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const pyList = (items: readonly string[]) => `[${items.map(py).join(', ')}]`;
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));

/** Parses `YYYY-MM-DDTHH:MM:SSZ` to epoch ms; undefined when it is not exactly that or not a real time. */
export function parseQueryDate(s: unknown): number | undefined {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(s)) return undefined;
  const ms = Date.parse(s);
  // Date.parse rolls nothing over for ISO strings but 24:00:00; the round trip refuses both that and 02-30.
  return Number.isFinite(ms) && new Date(ms).toISOString().replace('.000Z', 'Z') === s ? ms : undefined;
}

/** `YYYY-MM-DDTHH:MM:SSZ` of epoch ms (milliseconds dropped), as a query's timestamp wants it. */
export function formatQueryDate(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** The sentence GET Q/{guid} answers for a Completed query: its files as a Python 2 list. */
export function downloadSentence(paths: readonly string[]): string {
  return `Process finished. Download: [${paths.map((p) => `u${py(p)}`).join(', ')}]`;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether a row meets every condition: plain string comparison of the field's text with the value. */
export function matchesFilters(row: EventRow, filters: Readonly<Record<string, Conditions>>): boolean {
  for (const [field, conds] of Object.entries(filters)) {
    const v = row[field] ?? '';
    for (const [op, x] of Object.entries(conds) as Array<[Operator, string]>) {
      const ok = op === '$eq' ? v === x : op === '$ne' ? v !== x : op === '$gt' ? v > x : op === '$gte' ? v >= x : op === '$lt' ? v < x : v <= x;
      if (!ok) return false;
    }
  }
  return true;
}

interface ParsedQuery {
  schema: SchemaName;
  fields: string[];
  filters: Record<string, Conditions>;
  /** The interval of the timestamp operators; undefined where open. */
  lo: number | undefined;
  hi: number | undefined;
}

/**
 * Validates a POST Q body, checking in this order: the body is an object; `data` names exactly one
 * schema; its `fields` are a non-empty list of that schema's fields; `filters` name that schema and
 * its fields; every operator (timestamp and filters) is one of the six; `timestamp` is one lower
 * and/or one upper bound with valid dates, lower <= upper. `scope` and unknown keys are ignored.
 */
export function parseQueryBody(body: unknown): ParsedQuery {
  if (!isObject(body)) throw badRequest('Invalid request body');
  const data = body.data;
  const keys = isObject(data) ? Object.keys(data) : [];
  const unknownSchema = keys.find((k) => !isSchemaName(k));
  if (unknownSchema !== undefined) throw badRequest(`${unknownSchema} is not a valid schema name.`);
  if (keys.length !== 1) throw badRequest(`${keys.length ? keys.join(', ') : 'None'} is not a valid schema name.`);
  const schema = keys[0] as SchemaName;
  const known = SCHEMAS[schema].fields;
  const spec = (data as Record<string, unknown>)[schema];
  const fields = isObject(spec) ? spec.fields : undefined;
  if (!Array.isArray(fields) || fields.length === 0) throw badRequest('None is not a valid field.');
  for (const f of fields) if (typeof f !== 'string' || !known.includes(f)) throw badRequest(`${show(f)} is not a valid field.`);

  const badOps: string[] = [];
  const filters: Record<string, Conditions> = {};
  if (body.filters !== undefined && body.filters !== null) {
    if (!isObject(body.filters)) throw badRequest(`${show(body.filters)} is not a valid schema name.`);
    for (const [s, byField] of Object.entries(body.filters)) {
      // A filter on another schema than the one queried cannot apply: refused as that schema's name.
      if (s !== schema) throw badRequest(`${s} is not a valid schema name.`);
      if (!isObject(byField)) throw badRequest(`${show(byField)} is not a valid field.`);
      for (const [field, conds] of Object.entries(byField)) {
        if (!known.includes(field)) throw badRequest(`${field} is not a valid field.`);
        if (!isObject(conds)) {
          badOps.push(show(conds));
          continue;
        }
        const c: Conditions = {};
        for (const [op, v] of Object.entries(conds)) {
          if (!(OPERATORS as readonly string[]).includes(op)) badOps.push(op);
          else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') c[op as Operator] = String(v);
          else badOps.push(`${op}: ${show(v)}`);
        }
        filters[field] = c;
      }
    }
  }
  const ts = body.timestamp;
  if (isObject(ts)) for (const op of Object.keys(ts)) if (!(OPERATORS as readonly string[]).includes(op)) badOps.push(op);
  if (badOps.length) throw badRequest({ Operators: `Invalid operators ${pyList(badOps)}` });

  const badDates = (items: string[]) => badRequest({ Date_Filters: { message: `Invalid date filters ${pyList(items)}`, code: '422-6' } });
  if (!isObject(ts)) throw badDates([ts === undefined ? 'timestamp' : `timestamp: ${show(ts)}`]);
  const entries = Object.entries(ts);
  const items = entries.map(([op, v]) => `${op}: ${show(v)}`);
  const wrong = entries.filter(([op, v]) => op === '$eq' || op === '$ne' || parseQueryDate(v) === undefined);
  if (wrong.length) throw badDates(wrong.map(([op, v]) => `${op}: ${show(v)}`));
  const lower = entries.filter(([op]) => op === '$gt' || op === '$gte');
  const upper = entries.filter(([op]) => op === '$lt' || op === '$lte');
  if (entries.length === 0 || lower.length > 1 || upper.length > 1) throw badDates(items.length ? items : ['timestamp: {}']);
  // Event times have milliseconds: > t is >= t + 1 ms, <= t is < t + 1 ms.
  const lo = lower[0] ? parseQueryDate(lower[0][1])! + (lower[0][0] === '$gt' ? 1 : 0) : undefined;
  const hi = upper[0] ? parseQueryDate(upper[0][1])! + (upper[0][0] === '$lte' ? 1 : 0) : undefined;
  if (lo !== undefined && hi !== undefined && parseQueryDate(lower[0]![1])! > parseQueryDate(upper[0]![1])!) throw badDates(items);
  return { schema, fields: fields as string[], filters, lo, hi };
}

const intIn = (v: unknown, name: string, min: number): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new IntelePeerFakeError(`${name}: an integer >= ${min}`);
  return v;
};

/** IntelePeer Insights: tokens, queries that go Pending -> Completed/Failed/Canceled on the clock, and their result files. */
export class IntelePeerFake implements Fake {
  private readonly users: Readonly<Record<string, string>>;
  private readonly world: EventWorld;
  private readonly customerId: string;
  private readonly tokens = new Map<string, { username: string; expiresAt: number }>();
  private readonly byGuid = new Map<string, StoredQuery>();
  private readonly submitted: StoredQuery[] = [];
  private readonly written: WrittenFile[] = [];
  private tokensIssued = 0;
  private pendingMs: number;
  private cancelShare: number;
  private rowsPerFile: number;
  private cancelCount = 0;
  private corruptCount = 0;
  private garbleCount = 0;

  constructor(private readonly o: IntelePeerFakeOptions) {
    this.users = o.users ?? { [INTELEPEER_DEMO_USERNAME]: INTELEPEER_DEMO_PASSWORD };
    this.customerId = o.customerId ?? INTELEPEER_DEMO_CUSTOMER_ID;
    this.world = { seed: o.seed, rate: o.rate ?? 1, flows: o.flows ?? DEMO_FLOWS, customerId: this.customerId };
    this.pendingMs = 20_000;
    this.cancelShare = 0;
    this.rowsPerFile = 5000;
    if (o.pendingMs !== undefined) this.setPendingMs(o.pendingMs);
    if (o.cancelShare !== undefined) this.setCancelShare(o.cancelShare);
    if (o.rowsPerFile !== undefined) this.setRowsPerFile(o.rowsPerFile);
  }

  /**
   * The simulator's hook: the demo login and flows, writing into the simulator's files folder.
   * `cardinality` and `lateRevisions` do not apply: the flows are fixed and events are never revised.
   */
  static create(options: FakeOptions & Omit<Partial<IntelePeerFakeOptions>, 'seed' | 'clock' | 'filesDir'>): IntelePeerFake {
    const { cardinality: _cardinality, lateRevisions: _lateRevisions, ...rest } = options;
    return new IntelePeerFake(rest);
  }

  // ---- the oracle ----------------------------------------------------------------------------

  /** Every event of `schema` (every field) with TimeStamp in [fromMs, toMs), ordered by TimeStamp. */
  events(schema: string, fromMs: number, toMs: number): EventRow[] {
    if (!isSchemaName(schema)) throw new IntelePeerFakeError(`${schema} is not a valid schema name.`);
    return eventsBetween(this.world, schema, fromMs, toMs);
  }

  /** Every query submitted, oldest first, as it stands at the clock's now. */
  queries(): IntelePeerQuery[] {
    this.settle();
    return this.submitted.map((q) => ({
      guid: q.guid, username: q.username, schema: q.schema, from: q.from, to: q.to, fields: [...q.fields],
      filters: structuredClone(q.filters), status: q.outcome ?? 'Pending', files: q.outcome === 'Completed' ? [...q.files] : [],
      rows: q.rows, submittedAt: q.submittedAt, finishesAt: q.finishesAt,
    }));
  }

  /** Every result file written, oldest first (corrupted and garbled ones too). */
  writtenFiles(): WrittenFile[] {
    return this.written.map((f) => ({ ...f }));
  }

  /** Successful logins so far. */
  authentications(): number {
    return this.tokensIssued;
  }

  knobs(): IntelePeerKnobs {
    return {
      pendingMs: this.pendingMs, cancelShare: this.cancelShare, rowsPerFile: this.rowsPerFile,
      cancelNext: this.cancelCount, corruptNext: this.corruptCount, garbleNext: this.garbleCount,
    };
  }

  // ---- knobs ---------------------------------------------------------------------------------

  /** How long a query submitted from now on stays Pending. */
  setPendingMs(ms: number): void {
    this.pendingMs = intIn(ms, 'pendingMs', 0);
  }

  /** Share of queries submitted from now on that end Canceled (chosen per guid by the seeded hash), 0..1. */
  setCancelShare(x: number): void {
    if (typeof x !== 'number' || !(x >= 0 && x <= 1)) throw new IntelePeerFakeError('cancelShare: a share 0..1');
    this.cancelShare = x;
  }

  /** Rows per result file, for queries submitted from now on. */
  setRowsPerFile(n: number): void {
    this.rowsPerFile = intIn(n, 'rowsPerFile', 1);
  }

  /** The next n queries to finish (queries already finished excepted) end Canceled, whatever they matched. */
  cancelNext(n: number): void {
    this.settle();
    this.cancelCount = intIn(n, 'cancelNext', 0);
  }

  /** The next n result files written are cut at half their gzip bytes. */
  corruptNext(n: number): void {
    this.corruptCount = intIn(n, 'corruptNext', 0);
  }

  /** The next n result files written are valid gzip of a CSV one of whose rows has a column too many. */
  garbleNext(n: number): void {
    this.garbleCount = intIn(n, 'garbleNext', 0);
  }

  /** Every token issued so far stops being valid (a client must log in again on the 401). */
  expireTokens(): void {
    this.tokens.clear();
  }

  // ---- the API -------------------------------------------------------------------------------

  /** POST authenticate: a token valid TOKEN_TTL_MS from now, or the 401. */
  authenticate(body: unknown): { token: string } {
    const b = isObject(body) ? body : {};
    const { username, password } = b;
    if (typeof username !== 'string' || typeof password !== 'string' || !Object.hasOwn(this.users, username) || this.users[username] !== password) {
      throw new IntelePeerApiError(401, BAD_LOGIN);
    }
    const now = this.o.clock.now();
    this.tokensIssued++;
    const bytes = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) bytes.writeUInt32BE(Math.floor(hash(`${this.o.seed}|ip-token|${this.tokensIssued}|${now}|${i}`) * 0x1_0000_0000), i * 4);
    const token = bytes.toString('base64url');
    this.tokens.set(token, { username, expiresAt: now + TOKEN_TTL_MS });
    return { token };
  }

  /** The user of a valid `Authorization: Bearer` header, or the 401. */
  authorize(header: string | undefined): string {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    const t = m ? this.tokens.get(m[1]!) : undefined;
    // A clock stepped back keeps a token valid: only its end is checked.
    if (!t || this.o.clock.now() >= t.expiresAt) throw new IntelePeerApiError(401, UNAUTHORIZED);
    return t.username;
  }

  /** POST Q by `username`: 201 {id}, or a 400 for a bad body, or the 429 when the user has MAX_PENDING_PER_USER Pending. */
  submit(username: string, body: unknown): { id: string } {
    const p = parseQueryBody(body);
    this.settle();
    const pending = this.submitted.filter((q) => q.username === username && q.outcome === undefined).length;
    if (pending >= MAX_PENDING_PER_USER) {
      throw new IntelePeerApiError(429, { code: 429, message: `max concurrent queries per user (${MAX_PENDING_PER_USER}) reached` });
    }
    const now = this.o.clock.now();
    const number = this.submitted.length + 1;
    let guid = '';
    // From the seed, the counter and the submission time, so a restarted simulator does not hand out its previous life's guids.
    for (let salt = 0; guid === '' || this.byGuid.has(guid); salt++) guid = guidFrom((k) => hash(`${this.o.seed}|ip-query|${number}|${now}|${salt}|${k}`));
    const from = Math.max(p.lo ?? -Infinity, now - INTELEPEER_RETENTION_MS);
    const to = Math.min(p.hi ?? Infinity, now);
    const q: StoredQuery = {
      number, guid, username, schema: p.schema, fields: p.fields, filters: p.filters, from, to, submittedAt: now,
      finishesAt: now + this.pendingMs, rows: this.rowsOf(p.schema, from, to, p.filters, p.fields).length,
      rowsPerFile: this.rowsPerFile, canceledByShare: hash(`${this.o.seed}|ip-cancel|${guid}`) < this.cancelShare, files: [], written: false,
    };
    this.submitted.push(q);
    this.byGuid.set(guid, q);
    return { id: guid };
  }

  /** GET Q/{guid}/status; writes the result files the first time it sees the query Completed. */
  status(guid: string): { status: QueryStatus; guid: string; messages?: string[] } {
    const q = this.find(guid);
    this.writeFiles(q);
    const status = q.outcome ?? 'Pending';
    return status === 'Failed' ? { status, guid, messages: [NO_DATA_MESSAGE] } : { status, guid };
  }

  /** GET Q/{guid}: the sentence; writes the result files the first time it sees the query Completed. */
  result(guid: string): { status: string; guid: string } {
    const q = this.find(guid);
    this.writeFiles(q);
    if (q.outcome === undefined) return { status: NOT_FINISHED_SENTENCE, guid };
    return { status: q.outcome === 'Completed' ? downloadSentence(q.files) : FAILED_SENTENCE, guid };
  }

  mount(router: Router): void {
    router.post(AUTH_PATH, (req, res) => this.answer(res, 200, () => this.authenticate(req.body)));
    router.get(QUERY_PATH, (req, res) => this.answer(res, 200, () => {
      this.authorize(req.headers.authorization);
      return SCHEMAS;
    }));
    router.post(QUERY_PATH, (req, res) => this.answer(res, 201, () => this.submit(this.authorize(req.headers.authorization), req.body)));
    router.get(`${QUERY_PATH}/:guid/status`, (req, res) => this.answer(res, 200, () => {
      this.authorize(req.headers.authorization);
      return this.status(String(req.params.guid));
    }));
    // Before the GET route, which would answer HEAD too. A HEAD writes the files as a GET does.
    router.head(`${QUERY_PATH}/:guid`, (req, res) => this.answer(res, 200, () => {
      this.authorize(req.headers.authorization);
      this.result(String(req.params.guid));
      return undefined;
    }));
    router.get(`${QUERY_PATH}/:guid`, (req, res) => this.answer(res, 200, () => {
      this.authorize(req.headers.authorization);
      return this.result(String(req.params.guid));
    }));
  }

  /**
   * GET /_admin/intelepeer/state (knobs, authentications, queries, written files), GET
   * /_admin/intelepeer/queries, and POST /_admin/intelepeer/knobs with any of pendingMs, cancelShare,
   * rowsPerFile, cancelNext, corruptNext, garbleNext (numbers) and expireTokens (true): the knobs after.
   */
  admin(router: Router): void {
    router.get('/intelepeer/state', (_req, res) => {
      res.json({ knobs: this.knobs(), authentications: this.authentications(), queries: this.queries(), writtenFiles: this.writtenFiles() });
    });
    router.get('/intelepeer/queries', (_req, res) => {
      res.json(this.queries());
    });
    router.post('/intelepeer/knobs', (req, res) => {
      try {
        const body: unknown = req.body;
        if (!isObject(body)) throw new IntelePeerFakeError('expected an object: pendingMs, cancelShare, rowsPerFile, cancelNext, corruptNext, garbleNext, expireTokens');
        const setters: Record<string, (v: never) => void> = {
          pendingMs: (v) => this.setPendingMs(v), cancelShare: (v) => this.setCancelShare(v), rowsPerFile: (v) => this.setRowsPerFile(v),
          cancelNext: (v) => this.cancelNext(v), corruptNext: (v) => this.corruptNext(v), garbleNext: (v) => this.garbleNext(v),
        };
        const unknown = Object.keys(body).find((k) => k !== 'expireTokens' && !Object.hasOwn(setters, k));
        if (unknown !== undefined) throw new IntelePeerFakeError(`${unknown}: unknown knob`);
        if (body.expireTokens !== undefined && body.expireTokens !== true) throw new IntelePeerFakeError('expireTokens: true or absent');
        // Check every value before changing any.
        const before = { ...this.knobs() };
        try {
          for (const [k, v] of Object.entries(body)) if (k !== 'expireTokens') setters[k]!(v as never);
        } catch (e) {
          this.pendingMs = before.pendingMs;
          this.cancelShare = before.cancelShare;
          this.rowsPerFile = before.rowsPerFile;
          this.cancelCount = before.cancelNext;
          this.corruptCount = before.corruptNext;
          this.garbleCount = before.garbleNext;
          throw e;
        }
        if (body.expireTokens === true) this.expireTokens();
        res.json(this.knobs());
      } catch (e) {
        if (!(e instanceof IntelePeerFakeError)) throw e;
        res.status(400).json({ message: e.message });
      }
    });
  }

  // ---- inside --------------------------------------------------------------------------------

  private answer(res: Response, status: number, fn: () => unknown): void {
    try {
      const body = fn();
      if (body === undefined) res.status(status).end();
      else res.status(status).json(body);
    } catch (e) {
      if (!(e instanceof IntelePeerApiError)) throw e;
      res.status(e.status).json(e.body);
    }
  }

  private find(guid: string): StoredQuery {
    this.settle();
    const q = this.byGuid.get(guid);
    if (!q) throw new IntelePeerApiError(500, [{ message: `could not get QueryRequest object: ${guid} not found`, code: 500 }]);
    return q;
  }

  /**
   * Decides the outcome of every query whose Pending time is over, in the order they finish, once:
   * a clock stepped back later leaves it as it is. cancelNext comes first, then the cancel share,
   * then Failed when it matched nothing, else Completed with one file per rowsPerFile rows.
   */
  private settle(): void {
    const now = this.o.clock.now();
    const due = this.submitted.filter((q) => q.outcome === undefined && q.finishesAt <= now).sort((a, b) => a.finishesAt - b.finishesAt || a.number - b.number);
    for (const q of due) {
      if (this.cancelCount > 0) {
        this.cancelCount--;
        q.outcome = 'Canceled';
      } else if (q.canceledByShare) q.outcome = 'Canceled';
      else if (q.rows === 0) q.outcome = 'Failed';
      else {
        q.outcome = 'Completed';
        const n = Math.ceil(q.rows / q.rowsPerFile);
        q.files = Array.from({ length: n }, (_, i) => `reports/${this.customerId}/${q.guid}_QueryExport_${q.submittedAt}__${String(i).padStart(12, '0')}.csv.gz`);
      }
    }
  }

  private rowsOf(schema: SchemaName, from: number, to: number, filters: Record<string, Conditions>, fields: readonly string[]): string[][] {
    return eventsBetween(this.world, schema, from, to).filter((r) => matchesFilters(r, filters)).map((r) => fields.map((f) => r[f] ?? ''));
  }

  /** Writes a Completed query's files (once), each through a temporary name so a reader never sees half of one. */
  private writeFiles(q: StoredQuery): void {
    if (q.outcome !== 'Completed' || q.written) return;
    q.written = true;
    const rows = this.rowsOf(q.schema, q.from, q.to, q.filters, q.fields);
    q.files.forEach((path, i) => {
      const chunk = rows.slice(i * q.rowsPerFile, (i + 1) * q.rowsPerFile);
      let fault: WrittenFile['fault'] = null;
      if (this.corruptCount > 0) {
        this.corruptCount--;
        fault = 'truncated';
      } else if (this.garbleCount > 0) {
        this.garbleCount--;
        fault = 'garbled';
      }
      const lines = [q.fields, ...chunk];
      if (fault === 'garbled') {
        const at = 1 + Math.floor((chunk.length - 1) / 2);
        lines[at] = [...lines[at]!, 'garbled'];
      }
      let gz = gzipSync(Buffer.from(csvText(lines), 'utf8'));
      if (fault === 'truncated') gz = gz.subarray(0, Math.floor(gz.length / 2));
      const abs = join(this.o.filesDir, path);
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(`${abs}.part`, gz);
      renameSync(`${abs}.part`, abs);
      this.written.push({ path, guid: q.guid, rows: chunk.length, fault });
    });
  }
}

