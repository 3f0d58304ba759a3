import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import express from 'express';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/engine/clock.js';
import {
  AUTH_PATH, DEMO_FLOWS, formatQueryDate, INTELEPEER_DEMO_CUSTOMER_ID, INTELEPEER_DEMO_PASSWORD, INTELEPEER_DEMO_USERNAME,
  IntelePeerFake, QUERY_PATH, SCHEMAS, type EventRow,
} from '../../src/sources/intelepeer/fake.js';

const SEED = 7;
const T = Date.UTC(2026, 10, 23, 20, 0, 0) + 250;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const LOGIN = { username: INTELEPEER_DEMO_USERNAME, password: INTELEPEER_DEMO_PASSWORD };
const UNAUTHORIZED = { code: 401, message: 'Unauthorized' };
const NOT_FINISHED = 'Process has not finish yet, please verify the status of your request';

let clock: ManualClock;
let fake: IntelePeerFake;
let dir: string;
let server: Server;
let url: string;

// The source is not registered (and the Simulator needs its SFTP server): the fake on a bare
// express app, with the JSON body parsing the simulator gives its fakes and its admin routes.
beforeEach(async () => {
  clock = new ManualClock(T);
  dir = mkdtempSync(join(tmpdir(), 'intelepeer-fake-'));
  fake = IntelePeerFake.create({ seed: SEED, clock, cardinality: 50, filesDir: dir });
  const app = express();
  const admin = express.Router();
  admin.use(express.json());
  fake.admin(admin);
  app.use('/_admin', admin);
  const router = express.Router();
  router.use(express.json());
  fake.mount(router);
  app.use(router);
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, headers: Record<string, string> = {}, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed as Record<string, unknown>, text, type: res.headers.get('content-type') ?? '' };
}

async function login(): Promise<Record<string, string>> {
  const r = await call('POST', AUTH_PATH, {}, LOGIN);
  expect(r.status).toBe(200);
  return { authorization: `Bearer ${r.body.token as string}` };
}

/** A query over [from, to) of one schema (seconds precision, as the API wants). */
const body = (schema: string, fields: string[], from: number, to: number, filters?: Record<string, Record<string, string>>) => ({
  timestamp: { $gte: formatQueryDate(from), $lt: formatQueryDate(to) },
  data: { [schema]: { fields } },
  ...(filters ? { filters: { [schema]: filters } } : {}),
});

const HOUR_START = Date.UTC(2026, 10, 23, 19, 0, 0);
const AEE_FIELDS = ['FlowId', 'FlowName', 'ExitReason', 'StartTime', 'EndTime', 'TimeStamp'];
const lastHour = (filters?: Record<string, Record<string, string>>) => body('ApplicationExitEvent', AEE_FIELDS, HOUR_START, HOUR_START + HOUR, filters);

const submit = (auth: Record<string, string>, b: unknown) => call('POST', QUERY_PATH, auth, b);
const status = (auth: Record<string, string>, guid: string) => call('GET', `${QUERY_PATH}/${guid}/status`, auth);
const result = (auth: Record<string, string>, guid: string) => call('GET', `${QUERY_PATH}/${guid}`, auth);

/** The paths inside the Python-style list of the result sentence. */
function filesOf(sentence: string): string[] {
  const m = /^Process finished\. Download: \[(.*)\]$/.exec(sentence);
  expect(m).not.toBeNull();
  return [...m![1]!.matchAll(/u'([^']*)'/g)].map((x) => x[1]!);
}

const project = (rows: EventRow[], fields: string[]) => rows.map((r) => fields.map((f) => r[f]!));
const readCsv = (path: string): string[][] => parse(gunzipSync(readFileSync(join(dir, path))).toString('utf8')) as string[][];

describe('IntelePeer fake: authentication', () => {
  it('issues an opaque token for the right login, 401 for any other; counts logins', async () => {
    for (const b of [{ ...LOGIN, password: 'wrong' }, { ...LOGIN, username: 'someone' }, {}, { username: INTELEPEER_DEMO_USERNAME }]) {
      expect(await call('POST', AUTH_PATH, {}, b)).toMatchObject({ status: 401, body: { code: 401, message: 'Invalid username or password' } });
    }
    expect(fake.authentications()).toBe(0);
    const a = await call('POST', AUTH_PATH, {}, LOGIN);
    expect(a.status).toBe(200);
    expect(a.type).toContain('application/json');
    expect(Object.keys(a.body)).toEqual(['token']);
    expect(a.body.token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const b = await call('POST', AUTH_PATH, {}, LOGIN);
    expect(b.body.token).not.toBe(a.body.token);
    expect(fake.authentications()).toBe(2);
  });

  it('needs a Bearer token of an unexpired login on every other route; a token lasts 24 h', async () => {
    const auth = await login();
    const wrong: Array<Record<string, string>> = [{}, { authorization: 'Bearer nope' }, { authorization: auth.authorization!.replace('Bearer ', 'Basic ') }];
    for (const headers of wrong) {
      expect(await call('GET', QUERY_PATH, headers)).toMatchObject({ status: 401, body: UNAUTHORIZED });
      expect(await submit(headers, lastHour())).toMatchObject({ status: 401, body: UNAUTHORIZED });
      expect(await status(headers, 'x')).toMatchObject({ status: 401, body: UNAUTHORIZED });
      expect(await result(headers, 'x')).toMatchObject({ status: 401, body: UNAUTHORIZED });
    }
    expect(fake.queries()).toEqual([]);
    clock.set(T + 24 * HOUR - 1);
    expect((await call('GET', QUERY_PATH, auth)).status).toBe(200);
    clock.set(T + 24 * HOUR);
    expect(await call('GET', QUERY_PATH, auth)).toMatchObject({ status: 401, body: UNAUTHORIZED });
  });

  it('expireTokens makes every issued token invalid; a new login works', async () => {
    const auth = await login();
    fake.expireTokens();
    expect(await call('GET', QUERY_PATH, auth)).toMatchObject({ status: 401, body: UNAUTHORIZED });
    const again = await login();
    expect((await call('GET', QUERY_PATH, again)).status).toBe(200);
    // The same through the admin knob.
    expect((await call('POST', '/_admin/intelepeer/knobs', {}, { expireTokens: true })).status).toBe(200);
    expect((await call('GET', QUERY_PATH, again)).status).toBe(401);
    expect(fake.authentications()).toBe(2);
  });
});

describe('IntelePeer fake: queries', () => {
  let auth: Record<string, string>;
  beforeEach(async () => {
    auth = await login();
  });

  it('lists the four schemas with the common fields and their own', async () => {
    const r = await call('GET', QUERY_PATH, auth);
    expect(r.status).toBe(200);
    const common = ['EventName', 'EventVersion', 'TimeStamp', 'CustomerId', 'FlowId', 'FlowName', 'ActionId', 'ActionName', 'IsTriggerAction', 'SessionId', 'TransactionId', 'ApplicationRegion'];
    expect(r.body).toEqual({
      ApplicationExitEvent: { fields: [...common, 'StartTime', 'EndTime', 'Path', 'ExitReason'] },
      DtmfEvent: { fields: [...common, 'DtmfInput', 'DtmfSource', 'ErrorReason'] },
      CallEvent: { fields: [...common, 'Direction', 'CallerId', 'CalledNumber', 'StartTime', 'EndTime', 'Disposition'] },
      MsgEvent: { fields: [...common, 'Direction', 'Channel', 'Status'] },
    });
    expect(r.body).toEqual(JSON.parse(JSON.stringify(SCHEMAS)));
  });

  it('answers every documented 400 exactly, and submits nothing', async () => {
    const refused = async (b: unknown, message: unknown) => {
      expect(await submit(auth, b)).toEqual(expect.objectContaining({ status: 400, body: { code: 400, message } }));
    };
    const dates = (items: string) => ({ Date_Filters: { message: `Invalid date filters ${items}`, code: '422-6' } });
    const ok = lastHour();
    await refused({ ...ok, timestamp: { $gte: '2026-11-23 19:00:00' } }, dates("['$gte: 2026-11-23 19:00:00']"));
    await refused({ ...ok, timestamp: { $gte: '2026-02-30T00:00:00Z' } }, dates("['$gte: 2026-02-30T00:00:00Z']"));
    await refused({ ...ok, timestamp: { $gte: '2026-11-23T19:00:00.000Z' } }, dates("['$gte: 2026-11-23T19:00:00.000Z']"));
    await refused({ ...ok, timestamp: { $eq: '2026-11-23T19:00:00Z' } }, dates("['$eq: 2026-11-23T19:00:00Z']"));
    await refused({ ...ok, timestamp: { $gte: '2026-11-23T20:00:00Z', $lte: '2026-11-23T19:00:00Z' } }, dates("['$gte: 2026-11-23T20:00:00Z', '$lte: 2026-11-23T19:00:00Z']"));
    await refused({ ...ok, timestamp: { $gte: '2026-11-23T19:00:00Z', $gt: '2026-11-23T19:00:00Z' } }, dates("['$gte: 2026-11-23T19:00:00Z', '$gt: 2026-11-23T19:00:00Z']"));
    await refused({ ...ok, timestamp: {} }, dates("['timestamp: {}']"));
    await refused({ data: ok.data }, dates("['timestamp']"));
    await refused({ ...ok, timestamp: { $since: '2026-11-23T19:00:00Z' } }, { Operators: "Invalid operators ['$since']" });
    await refused(lastHour({ ExitReason: { $like: 'Hang%' } }), { Operators: "Invalid operators ['$like']" });
    await refused({ ...ok, data: { CallDetailRecord: { fields: ['FlowId'] } } }, 'CallDetailRecord is not a valid schema name.');
    await refused({ ...ok, data: { ApplicationExitEvent: { fields: ['FlowId'] }, DtmfEvent: { fields: ['FlowId'] } } }, 'ApplicationExitEvent, DtmfEvent is not a valid schema name.');
    await refused({ timestamp: ok.timestamp }, 'None is not a valid schema name.');
    await refused({ ...ok, filters: { DtmfEvent: { FlowId: { $eq: 'x' } } } }, 'DtmfEvent is not a valid schema name.');
    await refused({ ...ok, data: { ApplicationExitEvent: { fields: ['FlowId', 'flowname'] } } }, 'flowname is not a valid field.');
    await refused({ ...ok, data: { ApplicationExitEvent: { fields: ['FlowId', 'DtmfInput'] } } }, 'DtmfInput is not a valid field.');
    await refused({ ...ok, data: { ApplicationExitEvent: { fields: [] } } }, 'None is not a valid field.');
    await refused(lastHour({ Channel: { $eq: 'SMS' } }), 'Channel is not a valid field.');
    expect(fake.queries()).toEqual([]);
  });

  it('takes a query Pending -> Completed after pendingMs, answering the sentences of each stage', async () => {
    const r = await submit(auth, lastHour());
    expect(r.status).toBe(201);
    expect(Object.keys(r.body)).toEqual(['id']);
    const guid = r.body.id as string;
    expect(guid).toMatch(GUID);
    expect((await status(auth, guid)).body).toEqual({ status: 'Pending', guid });
    expect((await result(auth, guid)).body).toEqual({ status: NOT_FINISHED, guid });
    clock.set(T + 19_999);
    expect((await status(auth, guid)).body).toEqual({ status: 'Pending', guid });
    expect(readdirSync(dir)).toEqual([]);
    clock.set(T + 20_000);
    expect((await status(auth, guid)).body).toEqual({ status: 'Completed', guid });
    const q = fake.queries()[0]!;
    expect(q).toMatchObject({ guid, username: INTELEPEER_DEMO_USERNAME, schema: 'ApplicationExitEvent', from: HOUR_START, to: HOUR_START + HOUR, fields: AEE_FIELDS, status: 'Completed', submittedAt: T, finishesAt: T + 20_000 });
    expect(q.rows).toBe(fake.events('ApplicationExitEvent', HOUR_START, HOUR_START + HOUR).length);
    expect(q.files).toEqual([`reports/${INTELEPEER_DEMO_CUSTOMER_ID}/${guid}_QueryExport_${T}__000000000000.csv.gz`]);
    // The status call wrote the file already.
    expect(existsSync(join(dir, q.files[0]!))).toBe(true);
    expect((await result(auth, guid)).body).toEqual({ status: `Process finished. Download: [u'${q.files[0]}']`, guid });

    // A new pendingMs applies to queries submitted after it.
    fake.setPendingMs(5_000);
    const next = (await submit(auth, lastHour())).body.id as string;
    clock.advance(5_000);
    expect((await status(auth, next)).body.status).toBe('Completed');
  });

  it('allows two Pending queries per user: the third gets 429 until one completes', async () => {
    const first = await submit(auth, lastHour());
    clock.advance(5_000);
    const second = await submit(auth, lastHour());
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(await submit(auth, lastHour())).toEqual(expect.objectContaining({ status: 429, body: { code: 429, message: 'max concurrent queries per user (2) reached' } }));
    // A bad query is still a 400, not a 429.
    expect((await submit(auth, { ...lastHour(), data: { Nope: { fields: [] } } })).status).toBe(400);
    clock.set(T + 20_000);
    expect((await submit(auth, lastHour())).status).toBe(201);
    expect((await submit(auth, lastHour())).status).toBe(429);
    expect(fake.queries().map((q) => q.status)).toEqual(['Completed', 'Pending', 'Pending']);

    // The cap is per user.
    const two = new IntelePeerFake({ seed: SEED, clock, filesDir: dir, users: { a: 'pa', b: 'pb' } });
    two.submit('a', lastHour());
    two.submit('a', lastHour());
    expect(() => two.submit('a', lastHour())).toThrow(/429/);
    expect(two.submit('b', lastHour()).id).toMatch(GUID);
  });

  it('ends Failed with a message when no row matched', async () => {
    const guid = (await submit(auth, lastHour({ FlowId: { $eq: 'no-such-flow' } }))).body.id as string;
    clock.advance(20_000);
    expect((await status(auth, guid)).body).toEqual({ status: 'Failed', guid, messages: ['No data found for the given filters'] });
    expect((await result(auth, guid)).body).toEqual({ status: 'Process failed', guid });
    expect(fake.queries()[0]).toMatchObject({ status: 'Failed', rows: 0, files: [] });
    // An interval in the future has no data yet: rows are only what happened before the submission.
    const ahead = (await submit(auth, body('CallEvent', ['FlowId'], T + MINUTE, T + HOUR))).body.id as string;
    clock.advance(20_000);
    expect((await status(auth, ahead)).body.status).toBe('Failed');
    expect(fake.writtenFiles()).toEqual([]);
  });

  it('ends the next n queries to finish Canceled with cancelNext, and a share of them with cancelShare', async () => {
    const a = (await submit(auth, lastHour())).body.id as string;
    clock.advance(1_000);
    const b = (await submit(auth, lastHour())).body.id as string;
    fake.cancelNext(1);
    clock.advance(60_000);
    expect((await status(auth, b)).body).toEqual({ status: 'Completed', guid: b });
    expect((await status(auth, a)).body).toEqual({ status: 'Canceled', guid: a });
    expect((await result(auth, a)).body).toEqual({ status: 'Process failed', guid: a });
    expect(fake.knobs().cancelNext).toBe(0);

    expect((await call('POST', '/_admin/intelepeer/knobs', {}, { cancelShare: 1 })).body).toMatchObject({ cancelShare: 1 });
    const c = (await submit(auth, lastHour())).body.id as string;
    clock.advance(20_000);
    expect((await status(auth, c)).body.status).toBe('Canceled');

    // About half with a share of 0.5, decided per guid.
    const many = new IntelePeerFake({ seed: SEED, clock, filesDir: dir, cancelShare: 0.5, users: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`u${i}`, 'p'])) });
    for (let i = 0; i < 100; i++) many.submit(`u${i}`, body('MsgEvent', ['FlowId'], HOUR_START, HOUR_START + HOUR));
    clock.advance(20_000);
    const canceled = many.queries().filter((q) => q.status === 'Canceled').length;
    expect(canceled).toBeGreaterThan(30);
    expect(canceled).toBeLessThan(70);
  });

  it('writes gzipped CSV whose rows are exactly the events of the interval, projected, quoted as RFC 4180', async () => {
    const guid = (await submit(auth, lastHour())).body.id as string;
    clock.advance(20_000);
    const files = filesOf((await result(auth, guid)).body.status as string);
    expect(files).toHaveLength(1);
    const raw = gunzipSync(readFileSync(join(dir, files[0]!))).toString('utf8');
    expect(raw.startsWith('FlowId,FlowName,ExitReason,StartTime,EndTime,TimeStamp\r\n')).toBe(true);
    expect(raw.endsWith('\r\n')).toBe(true);
    expect(raw).toContain('"Billing, ""VIP""\nafter hours"');
    const events = fake.events('ApplicationExitEvent', HOUR_START, HOUR_START + HOUR);
    const rows = readCsv(files[0]!);
    expect(rows[0]).toEqual(AEE_FIELDS);
    expect(rows.slice(1)).toEqual(project(events, AEE_FIELDS));
    expect(rows.some((r) => r[1] === 'Billing, "VIP"\nafter hours')).toBe(true);
    expect(rows.some((r) => r[1] === 'Soporte técnico')).toBe(true);
    expect(fake.writtenFiles()).toEqual([{ path: files[0], guid, rows: events.length, fault: null }]);
    // Written once: another look does not write again.
    await status(auth, guid);
    await call('HEAD', `${QUERY_PATH}/${guid}`, auth);
    expect(fake.writtenFiles()).toHaveLength(1);
  });

  it('applies $gt/$lte and filters (string comparison) to the rows', async () => {
    const fields = ['TimeStamp', 'FlowId', 'Direction', 'Disposition'];
    const from = HOUR_START + 10 * MINUTE;
    const to = HOUR_START + 40 * MINUTE;
    const b = {
      timestamp: { $gt: formatQueryDate(from), $lte: formatQueryDate(to) },
      data: { CallEvent: { fields } },
      filters: { CallEvent: { FlowId: { $ne: DEMO_FLOWS[0]!.id }, Disposition: { $gte: 'B', $lt: 'O' } } },
    };
    const guid = (await submit(auth, b)).body.id as string;
    clock.advance(20_000);
    const files = filesOf((await result(auth, guid)).body.status as string);
    const expected = fake.events('CallEvent', from + 1, to + 1)
      .filter((e) => e.FlowId !== DEMO_FLOWS[0]!.id && e.Disposition! >= 'B' && e.Disposition! < 'O');
    expect(expected.length).toBeGreaterThan(0);
    expect(new Set(expected.map((e) => e.Disposition))).not.toContain('Answered');
    expect(readCsv(files[0]!).slice(1)).toEqual(project(expected, fields));
  });

  it('splits the result into one file per rowsPerFile rows', async () => {
    fake.setRowsPerFile(100);
    const guid = (await submit(auth, lastHour())).body.id as string;
    clock.advance(20_000);
    const files = filesOf((await result(auth, guid)).body.status as string);
    const events = fake.events('ApplicationExitEvent', HOUR_START, HOUR_START + HOUR);
    expect(files).toHaveLength(Math.ceil(events.length / 100));
    expect(files.length).toBeGreaterThan(3);
    files.forEach((f, i) => expect(f).toBe(`reports/${INTELEPEER_DEMO_CUSTOMER_ID}/${guid}_QueryExport_${T}__${String(i).padStart(12, '0')}.csv.gz`));
    const all: string[][] = [];
    for (const f of files) {
      const rows = readCsv(f);
      expect(rows[0]).toEqual(AEE_FIELDS);
      expect(rows.length - 1).toBeLessThanOrEqual(100);
      all.push(...rows.slice(1));
    }
    expect(all).toEqual(project(events, AEE_FIELDS));
    expect(fake.queries()[0]!.files).toEqual(files);
  });

  it('cuts the next files written with corruptNext, and garbles them with garbleNext', async () => {
    fake.setRowsPerFile(300);
    fake.corruptNext(1);
    fake.garbleNext(1);
    const guid = (await submit(auth, lastHour())).body.id as string;
    clock.advance(20_000);
    const files = filesOf((await result(auth, guid)).body.status as string);
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(() => gunzipSync(readFileSync(join(dir, files[0]!)))).toThrow();
    expect(() => readCsv(files[1]!)).toThrow(/Invalid Record Length/);
    const good = readCsv(files[2]!);
    expect(good[0]).toEqual(AEE_FIELDS);
    expect(fake.writtenFiles().map((f) => f.fault)).toEqual(['truncated', 'garbled', ...files.slice(2).map(() => null)]);
    expect(fake.knobs()).toMatchObject({ corruptNext: 0, garbleNext: 0 });
  });

  it('answers HEAD with no body; unknown guids with the documented 500', async () => {
    const guid = (await submit(auth, lastHour())).body.id as string;
    const head = await call('HEAD', `${QUERY_PATH}/${guid}`, auth);
    expect(head).toMatchObject({ status: 200, text: '' });
    const missing = '00000000-0000-4000-8000-000000000000';
    const body500 = [{ message: `could not get QueryRequest object: ${missing} not found`, code: 500 }];
    expect(await status(auth, missing)).toMatchObject({ status: 500, body: body500 });
    expect(await result(auth, missing)).toMatchObject({ status: 500, body: body500 });
    expect((await call('HEAD', `${QUERY_PATH}/${missing}`, auth)).status).toBe(500);
  });

  it('survives a clock stepped back: a finished query stays finished, and everything answers', async () => {
    const guid = (await submit(auth, lastHour())).body.id as string;
    clock.advance(30_000);
    expect((await status(auth, guid)).body.status).toBe('Completed');
    clock.set(T - HOUR);
    expect((await status(auth, guid)).body.status).toBe('Completed');
    expect((await call('GET', QUERY_PATH, auth)).status).toBe(200);
    const early = await submit(auth, body('DtmfEvent', ['FlowId', 'DtmfInput'], T - 3 * HOUR, T));
    expect(early.status).toBe(201);
    expect((await status(auth, early.body.id as string)).body.status).toBe('Pending');
    expect((await call('POST', AUTH_PATH, {}, LOGIN)).status).toBe(200);
    clock.set(T - 2 * HOUR);
    expect(fake.queries().map((q) => q.status)).toEqual(['Completed', 'Pending']);
  });

  it('shows its state and turns its knobs through the admin routes', async () => {
    await submit(auth, lastHour());
    const state = await call('GET', '/_admin/intelepeer/state');
    expect(state.body).toMatchObject({ knobs: { pendingMs: 20_000, cancelShare: 0, rowsPerFile: 5000 }, authentications: 1, writtenFiles: [] });
    expect((state.body.queries as unknown[]).length).toBe(1);
    expect((await call('GET', '/_admin/intelepeer/queries')).body).toEqual(JSON.parse(JSON.stringify(fake.queries())));
    const set = await call('POST', '/_admin/intelepeer/knobs', {}, { pendingMs: 1000, rowsPerFile: 10, corruptNext: 2, garbleNext: 1, cancelNext: 3 });
    expect(set).toMatchObject({ status: 200, body: { pendingMs: 1000, cancelShare: 0, rowsPerFile: 10, corruptNext: 2, garbleNext: 1, cancelNext: 3 } });
    for (const [b, message] of [[{ pendingMs: -1 }, 'pendingMs'], [{ cancelShare: 2 }, 'cancelShare'], [{ rowsPerFile: 0 }, 'rowsPerFile'], [{ colour: 1 }, 'colour'], [{ expireTokens: 'yes' }, 'expireTokens'], [{ pendingMs: 5, rowsPerFile: 1.5 }, 'rowsPerFile']] as const) {
      expect(await call('POST', '/_admin/intelepeer/knobs', {}, b)).toMatchObject({ status: 400, body: { message: expect.stringContaining(message) } });
    }
    // A refused change changes nothing.
    expect(fake.knobs()).toMatchObject({ pendingMs: 1000, rowsPerFile: 10 });
  });
});

describe('IntelePeer fake: events', () => {
  it('fills every field of every schema, at about the documented rates', () => {
    const from = HOUR_START - 2 * HOUR;
    const to = HOUR_START + HOUR;
    const minutes = (to - from) / MINUTE;
    const perMinute = { ApplicationExitEvent: 12, DtmfEvent: 1, CallEvent: 4, MsgEvent: 2 };
    for (const [schema, rate] of Object.entries(perMinute)) {
      const events = fake.events(schema, from, to);
      expect(events.length / minutes).toBeGreaterThan(rate * 0.8);
      expect(events.length / minutes).toBeLessThan(rate * 1.2);
      // Collected, then asserted once: thousands of expect() calls would make this test slow.
      const wrong: string[] = [];
      const check = (ok: boolean, what: string, e: EventRow) => {
        if (!ok) wrong.push(`${what}: ${JSON.stringify(e)}`);
      };
      let last = '';
      for (const e of events) {
        check(JSON.stringify(Object.keys(e)) === JSON.stringify(SCHEMAS[schema as keyof typeof SCHEMAS].fields), 'fields', e);
        check(Object.entries(e).every(([k, v]) => k === 'ErrorReason' || v !== ''), 'empty field', e);
        check(e.EventName === schema && e.CustomerId === INTELEPEER_DEMO_CUSTOMER_ID, 'EventName, CustomerId', e);
        check(ISO_MS.test(e.TimeStamp!) && e.TimeStamp! >= last, 'TimeStamp format and order', e);
        last = e.TimeStamp!;
        const ts = Date.parse(e.TimeStamp!);
        check(ts >= from && ts < to, 'TimeStamp in the interval', e);
        check(DEMO_FLOWS.find((f) => f.id === e.FlowId)?.name === e.FlowName, 'FlowName', e);
        if (e.StartTime !== undefined) {
          const start = Date.parse(e.StartTime);
          const end = Date.parse(e.EndTime!);
          check(ISO_MS.test(e.StartTime) && ISO_MS.test(e.EndTime!), 'StartTime, EndTime format', e);
          check(end <= ts && end - start >= 5_000 && end - start <= 900_000, 'StartTime <= EndTime <= TimeStamp', e);
        }
      }
      expect(wrong).toEqual([]);
      expect(new Set(events.map((e) => e.FlowId)).size).toBe(4);
    }
    const exits = fake.events('ApplicationExitEvent', from, to);
    expect(new Set(exits.map((e) => e.ExitReason))).toEqual(new Set(['Completed', 'Hangup', 'Transfer', 'Error', 'Timeout']));
    const dtmf = fake.events('DtmfEvent', from, to);
    expect(dtmf.some((e) => e.ErrorReason === '')).toBe(true);
    expect(dtmf.some((e) => e.ErrorReason !== '')).toBe(true);
    expect(new Set(fake.events('MsgEvent', from, to).map((e) => e.Channel))).toEqual(new Set(['SMS', 'MMS', 'WhatsApp']));
    expect(new Set(fake.events('CallEvent', from, to).map((e) => e.Direction))).toEqual(new Set(['Inbound', 'Outbound']));
  });

  it('is the same for the same seed, different for another; the rate option scales it', () => {
    const from = HOUR_START;
    const to = HOUR_START + HOUR;
    const other = (seed: number, rate?: number) => IntelePeerFake.create({ seed, clock: new ManualClock(T), cardinality: 50, filesDir: dir, rate });
    for (const schema of Object.keys(SCHEMAS)) expect(other(SEED).events(schema, from, to)).toEqual(fake.events(schema, from, to));
    expect(other(SEED + 1).events('CallEvent', from, to)).not.toEqual(fake.events('CallEvent', from, to));
    const doubled = other(SEED, 2).events('ApplicationExitEvent', from, to).length / fake.events('ApplicationExitEvent', from, to).length;
    expect(doubled).toBeGreaterThan(1.7);
    expect(doubled).toBeLessThan(2.3);
    // Any interval is the concatenation of its parts.
    const mid = from + 17 * MINUTE + 1234;
    expect([...fake.events('MsgEvent', from, mid), ...fake.events('MsgEvent', mid, to)]).toEqual(fake.events('MsgEvent', from, to));
    // Query guids follow the seed and the clock.
    const guids = (f: IntelePeerFake) => [f.submit('demo-intelepeer', lastHour()).id, f.submit('demo-intelepeer', lastHour()).id];
    const a = guids(other(SEED));
    expect(guids(other(SEED))).toEqual(a);
    expect(new Set(a).size).toBe(2);
    expect(guids(other(SEED + 1))).not.toEqual(a);
  });
});
