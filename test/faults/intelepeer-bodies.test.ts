import fc from 'fast-check';
import { parse as parseCsv } from 'csv-parse/sync';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { App, VERSION } from '../../src/app.js';
import { ManualClock } from '../../src/engine/clock.js';
import { HttpClient } from '../../src/http/client.js';
import { UpstreamError } from '../../src/http/errors.js';
import { createHttpMetrics } from '../../src/http/metrics.js';
import { renderLandingPage } from '../../src/server/landing.js';
import type { FaultRule } from '../../src/simulator/faults.js';
import { Simulator } from '../../src/simulator/server.js';
import { SIM_SFTP_PASSWORD } from '../../src/simulator/sftp-server.js';
import {
  AUTH_PATH, INTELEPEER_DEMO_PASSWORD, INTELEPEER_DEMO_USERNAME, IntelePeerApiError, NO_DATA_MESSAGE, NOT_FINISHED_SENTENCE, QUERY_PATH, type IntelePeerFake,
} from '../../src/sources/intelepeer/fake.js';
import { InsightsClient, TokenSource } from '../../src/sources/intelepeer/client.js';
import { intelepeer } from '../../src/sources/intelepeer/index.js';
import { parseExposition, type ParsedSample } from '../helpers/exposition.js';
import { fmt, report } from './figures.js';
import { bootExporter, depthOf, stateRoot } from './harness.js';

// Property: whatever IntelePeer answers to its four calls (the token, a submit, a status read, a
// result read: valid, nearly valid, hostile) and whatever the .csv.gz result files hold (valid CSV
// with quotes, commas, line breaks, BOM, unicode, extra columns in any order; or a header without
// a field asked for, rows of another width, a quote left open, not gzip, gzip cut short, an empty
// file), served by the simulator (fault rules in place of the fake's answers, files written into
// the folder its embedded SFTP server serves) to the real exporter (App, engine inline, state file,
// manual clock), the IntelePeer collector never crashes, its exposition parses, no counter
// decreases, and every counter reads exactly what a reference model of the answers and files says:
// each interval counted once, with the events of its files as parsed independently; the failures
// by reason, resubmissions, jobs by phase, parse errors and requests by code. The IntelePeer
// password, the SFTP password and the Bearer tokens reach no log line, /metrics, the landing page
// or the state file. Each sequence ends with a restart from the state file and calm polls.

/**
 * Bugs this test found (the regressions at the end show each). While a flag is true the property
 * passes as the exporter is today: the generators avoid what triggers the bug, or the model counts
 * it as the exporter does (said at each flag). Once the source is fixed, set the flag to false and
 * make the matching `it.fails` an `it`.
 */
const KNOWN_BUGS = {
  /** A token answer that is not JSON or has no usable token, met while a result is read, counts as a corrupt result (the model counts it so). */
  authMalformedIsCorruptResult: false,
  /** A token no HTTP header can hold (a NUL, DEL, beyond Latin-1) is taken, and every later call fails before it is sent: no 401 renews it (never generated). */
  unsendableToken: false,
  /** The messages of a Failed or Canceled status answer are logged as they are, a token they echo too (never generated). */
  messagesLogged: false,
  /** A missing result file is not counted in intelepeer_sftp_errors_total{reason="not_found"}, documented as "a result file missing" (that series not checked). */
  notFoundUncounted: false,
};

const C = 'intelepeer_queries';
const M = 60_000;
/** 2026-11-23 20:00:05 UTC. */
const T0 = Date.UTC(2026, 10, 23, 20, 0, 5);
const USER = INTELEPEER_DEMO_USERNAME;
const PASSWORD = INTELEPEER_DEMO_PASSWORD;
const SFTP_PASSWORD = SIM_SFTP_PASSWORD;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const MAX_RUNNING = 10;
const MAX_DOWNLOAD_ATTEMPTS = 2;
const QUERY_TIMEOUT = 3 * M;
const SUBMIT_BACKOFF = 30_000;
const SUBMIT_BACKOFF_MAX = 15 * M;

const EP = { auth: '_rest/v4/authenticate', submit: 'dwh/Q', status: 'dwh/Q/{guid}/status', result: 'dwh/Q/{guid}' } as const;
type Ep = keyof typeof EP;
const ENDPOINTS = Object.keys(EP) as Ep[];
const API: Record<Ep, string> = { auth: 'intelepeer_auth', submit: 'intelepeer', status: 'intelepeer', result: 'intelepeer' };
const statusPath = (guid: string) => `${QUERY_PATH}/${guid}/status`;
const resultPath = (guid: string) => `${QUERY_PATH}/${guid}`;

const PHASES = ['queued', 'running', 'downloading'] as const;
type Phase = (typeof PHASES)[number];
const FAILURE_REASONS = ['rejected', 'throttled', 'submit', 'status', 'canceled', 'lost', 'timeout', 'download', 'corrupt'] as const;
type FailureReason = (typeof FAILURE_REASONS)[number];
const RETRY_REASONS = ['canceled', 'lost', 'timeout', 'download', 'corrupt'] as const;
type RetryReason = (typeof RETRY_REASONS)[number];
const SFTP_REASONS = ['host_key', 'auth', 'connect', 'timeout', 'not_found', 'io'] as const;

interface QDef {
  name: string;
  event: string;
  groupBy: string[];
  /** The labels of groupBy (snake_case), written out. */
  labels: string[];
  /** The fields asked for: group_by, then the histogram's fields; TimeStamp when none. */
  fields: string[];
  hist?: { name: string; start: string; end: string };
  filters?: Record<string, Record<string, string>>;
  maxInterval: number;
  lag: number;
  lookback: number;
}
const QUERIES: QDef[] = [
  { name: 'exits', event: 'ApplicationExitEvent', groupBy: ['FlowName', 'ExitReason'], labels: ['flow_name', 'exit_reason'], fields: ['FlowName', 'ExitReason'], maxInterval: M, lag: 10 * M, lookback: 3 * M },
  {
    name: 'calls', event: 'CallEvent', groupBy: ['Direction'], labels: ['direction'], fields: ['Direction', 'StartTime', 'EndTime'],
    hist: { name: 'call', start: 'StartTime', end: 'EndTime' }, maxInterval: 4 * M, lag: 10 * M, lookback: 4 * M,
  },
  {
    name: 'msgs', event: 'MsgEvent', groupBy: ['Channel', 'FlowName'], labels: ['channel', 'flow_name'], fields: ['Channel', 'FlowName'],
    filters: { Direction: { $eq: 'Outbound' } }, maxInterval: 2 * M, lag: 12 * M, lookback: 2 * M,
  },
  { name: 'dtmf', event: 'DtmfEvent', groupBy: [], labels: [], fields: ['TimeStamp'], maxInterval: M, lag: 10 * M, lookback: 2 * M },
];
const QUERY = new Map(QUERIES.map((q) => [q.name, q]));
/** Every query's group labels in order of first use: each event series carries them all. */
const GROUP_LABELS = ['flow_name', 'exit_reason', 'direction', 'channel'];

const configText = (dir: string) => `
engine: { staleness: 30m, shutdown_grace: 200ms, state_file: ${join(dir, 'state.json')} }
sources:
  intelepeer:
    username: placeholder
    password: placeholder
    retries: 0
    request_timeout: 5s
    connect_timeout: 5s
    concurrency: ${MAX_RUNNING}
    timeout: 50s
    max_running_queries: ${MAX_RUNNING}
    max_download_attempts: ${MAX_DOWNLOAD_ATTEMPTS}
    query_timeout: ${QUERY_TIMEOUT / M}m
    sftp:
      host: 127.0.0.1
      username: placeholder
      password: placeholder
      host_key_fingerprint: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
      connect_timeout: 5s
    queries:
${QUERIES.map((q) => `      - { name: ${q.name}, event: ${q.event}, schedule: "* * * * *", lag: ${q.lag / M}m, initial_lookback: ${q.lookback / M}m, max_interval: ${q.maxInterval / M}m, group_by: [${q.groupBy.join(', ')}]${q.hist ? `, histograms: [{ name: ${q.hist.name}, start: ${q.hist.start}, end: ${q.hist.end} }]` : ''}${q.filters ? `, filters: ${JSON.stringify(q.filters)}` : ''} }`).join('\n')}
`;

// ---------------------------------------------------------------------------------------------
// Generated answers. A spec is rendered into a body once the request it answers is known (the
// token it carried, the guid asked for, the interval submitted). Texts may hold placeholders:
// @@TOKEN@@ (the Bearer token the request carried), @@BEARER64@@ (its header base64'd), @@GUID@@,
// @@PASSWORD@@ and @@PW64@@ (the login, on the token endpoint only), @@HUGE@@ (300,000 characters).

type Body = { t: 'text'; http: number; text: string } | { t: 'json'; http: number; value: unknown };

const okHttp = fc.constantFrom(200, 200, 200, 201, 202);
const errHttp = fc.constantFrom(400, 401, 403, 404, 409, 429, 500, 502, 503);
const anyHttp = fc.oneof({ weight: 60, arbitrary: okHttp }, { weight: 10, arbitrary: fc.constant(204) }, { weight: 30, arbitrary: errHttp });
const text = (http: fc.Arbitrary<number>, t: fc.Arbitrary<string>): fc.Arbitrary<Body> => fc.record({ t: fc.constant('text' as const), http, text: t });
const json = (http: fc.Arbitrary<number>, v: fc.Arbitrary<unknown>): fc.Arbitrary<Body> => fc.record({ t: fc.constant('json' as const), http, value: v });

const extraFields = fc.option(
  fc.oneof(
    fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    fc.constant({ note: '@@x2000@@', nested: { a: [1, { b: null }] } }),
    fc.constant({ expires: '2026-11-24T20:00:00Z', scope: ['dwh'], guid: null }),
  ),
  { nil: null },
);

const deepText = fc.tuple(fc.integer({ min: 2, max: 3000 }), fc.constantFrom('[', '{"a":'), fc.boolean()).map(([n, open, closed]) => {
  const close = open === '[' ? ']' : '}';
  return open.repeat(n) + '"x"' + (closed ? close.repeat(n) : '');
});
/** Bodies that are not JSON (or, by chance, are: the model judges every body it serves). */
const notJson = (valid: string) => fc.oneof(
  { weight: 30, arbitrary: fc.tuple(fc.nat(), fc.constantFrom('', ',', '}', '"', '\\', '\u0000', 'x')).map(([at, insert]) => valid.slice(0, at % valid.length) + insert) },
  { weight: 20, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
  { weight: 10, arbitrary: deepText },
  { weight: 20, arbitrary: fc.constantFrom('', ' ', 'null', 'NaN', 'undefined', '<html><body><h1>502 Bad Gateway</h1></body></html>', 'Service Unavailable', `\ufeff${valid}`, `${valid}${valid}`, valid.replace(/"/g, "'"), `${valid.slice(0, -1)},}`, '@@HUGE@@') },
);
/** Error bodies of the query API echoing the Bearer token, as a careless gateway does. */
const tokenEcho = fc.constantFrom(
  '{"message":"Unauthorized","request":{"headers":{"authorization":"Bearer @@TOKEN@@"}}}',
  '<html><body>401: Bearer @@TOKEN@@</body></html>',
  'invalid token @@TOKEN@@',
  '{"seen":"@@BEARER64@@"}',
  '{"code":401,"message":"Unauthorized","token":"@@TOKEN@@"}',
  '@@TOKEN@@',
  '@@TOKEN@@\n',
);
const plainErrors = fc.constantFrom('{"code":500,"message":"Internal Server Error"}', '<html>503 Service Unavailable</html>', '', 'upstream timed out', '{"code":404,"message":"Not Found"}', '{"code":401,"message":"Unauthorized"}', '@@HUGE@@');
const errorBody = (http: fc.Arbitrary<number>) => text(http, fc.oneof(plainErrors, tokenEcho));

// ---- the token ------------------------------------------------------------------------------

type TokenShape = 'b64' | 'hex' | 'jwt' | 'long' | 'short' | 'latin1' | 'punct' | 'password' | 'astral' | 'bmp' | 'ctl' | 'del';
const SENDABLE: TokenShape[] = ['b64', 'b64', 'b64', 'b64', 'hex', 'jwt', 'long', 'short', 'latin1', 'punct', 'password'];
/** Tokens the exporter takes but no HTTP header can hold (KNOWN_BUGS.unsendableToken). */
const UNSENDABLE: TokenShape[] = ['astral', 'bmp', 'ctl', 'del'];
const tokenShape: fc.Arbitrary<TokenShape> = KNOWN_BUGS.unsendableToken
  ? fc.constantFrom(...SENDABLE)
  : fc.oneof({ weight: 100, arbitrary: fc.constantFrom(...SENDABLE) }, { weight: 10, arbitrary: fc.constantFrom(...UNSENDABLE) });

function makeToken(shape: TokenShape, n: number): string {
  switch (shape) {
    case 'b64': return Buffer.from(`generated token ${n} ${'k'.repeat(n % 9)}`).toString('base64url');
    case 'hex': return createHash('sha256').update(`t${n}`).digest('hex');
    case 'jwt': return `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: USER, n })).toString('base64url')}.c2ln${n}`;
    case 'long': return `L${n}-`.padEnd(8192, 'q');
    case 'short': return `t${n % 10}`;
    case 'latin1': return `tökén-ÿ-${n}`;
    case 'punct': return `!#$%&'*+-.^_\`|~:${n}`;
    case 'password': return PASSWORD;
    case 'astral': return `🚀tok-${n}`;
    case 'bmp': return `トークン-${n}`;
    case 'ctl': return `tok\u0000${n}`;
    case 'del': return `tok\u007f${n}`;
  }
}
/** Whether a header can carry it (what undici accepts). */
const sendable = (t: string) => !/[^\t\x20-\x7e\x80-\xff]/.test(t);

type AuthSpec = { t: 'real' } | { t: 'token'; http: number; shape: TokenShape; extra: Record<string, unknown> | null; first: boolean } | Body;
const badToken = fc.oneof(
  fc.record({ token: fc.oneof(fc.constantFrom('', ' ', 'a b', 'a\tb', 'tok\n', '\u00a0tok', '\ufefftok', 'tok\u2028', ' tok', '@@x8193@@', '@@HUGE@@', '@@PASSWORD@@ '), fc.constantFrom(null, 42, true, [], {}, ['abc123'], { value: 'abc123' })) }, { requiredKeys: [] }),
  fc.constantFrom({}, { Token: 'abc12345' }, { data: { token: 'abc12345' } }, [{ token: 'abc12345' }], 'abc12345', null, 0, true, []),
  fc.jsonValue({ maxDepth: 2 }),
);
const passwordEcho = fc.constantFrom(
  '{"code":401,"message":"Invalid username or password","username":"demo-intelepeer","password":"@@PASSWORD@@"}',
  '<html>login failed for demo-intelepeer / @@PASSWORD@@</html>',
  '@@PASSWORD@@',
  '{"received":"@@PW64@@"}',
  'Basic @@PW64@@',
  '{"token":null,"password":"@@PASSWORD@@"}',
  '{"token":"@@PASSWORD@@ "}',
);
const authSpec: fc.Arbitrary<AuthSpec> = fc.oneof(
  { weight: 20, arbitrary: fc.constant({ t: 'real' as const }) },
  { weight: 30, arbitrary: fc.record({ t: fc.constant('token' as const), http: okHttp, shape: tokenShape, extra: extraFields, first: fc.boolean() }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('token' as const), http: fc.oneof(errHttp, fc.constant(204)), shape: tokenShape, extra: fc.constant(null), first: fc.boolean() }) },
  { weight: 18, arbitrary: json(okHttp, badToken) },
  { weight: 12, arbitrary: text(anyHttp, notJson('{"token":"abc12345"}')) },
  { weight: 18, arbitrary: text(fc.constantFrom(400, 401, 401, 403, 429, 500, 503), fc.oneof(passwordEcho, plainErrors)) },
  { weight: 4, arbitrary: text(okHttp, passwordEcho) },
);

/** Token answers while submitting: one in ten fails. */
const authSubmitSpec: fc.Arbitrary<AuthSpec> = fc.oneof({ weight: 19, arbitrary: authSpec.filter((a) => a.t === 'real' || (a.t === 'token' && a.http >= 200 && a.http < 300)) }, { weight: 1, arbitrary: authSpec });

// ---- the submit -----------------------------------------------------------------------------

type IdShape = 'guid' | 'len100' | 'digits' | 'under' | 'short';
const idShape = fc.constantFrom<IdShape>('guid', 'guid', 'guid', 'len100', 'digits', 'under', 'short');
type SubmitSpec = { t: 'real' } | { t: 'id'; http: number; shape: IdShape; extra: Record<string, unknown> | null; first: boolean } | Body;
const badId = fc.oneof(
  fc.record({ id: fc.constantFrom('', '@@x101@@', 'a/b', '../etc', 'a b', 'ü', '🚀', 'a.b', '.', '..', 'a?b', 'a#b', 'a%2Fb', 'a\u0000b', '@@HUGE@@', 42, 0, -1, 1e21, null, true, [], ['abc'], {}, { id: 'abc' }) }),
  fc.constantFrom({}, { Id: 'abc' }, { guid: 'abc' }, { data: { id: 'abc' } }, [{ id: 'abc' }], 'abc', null, 0, [], true),
  fc.jsonValue({ maxDepth: 2 }),
);
const DOCUMENTED_400 = [
  '{"code":400,"message":{"Date_Filters":{"message":"Invalid date filters [\'$gte: 2026-11-23T19:50:00\']","code":"422-6"}}}',
  '{"code":400,"message":{"Operators":"Invalid operators [\'$in\']"}}',
  '{"code":400,"message":"ApplicationExitEvents is not a valid schema name."}',
  '{"code":400,"message":"FlowNames is not a valid field."}',
  '{"code":400,"message":"None is not a valid field."}',
];
const submitSpec: fc.Arbitrary<SubmitSpec> = fc.oneof(
  { weight: 10, arbitrary: fc.constant({ t: 'real' as const }) },
  { weight: 55, arbitrary: fc.record({ t: fc.constant('id' as const), http: fc.constantFrom(201, 201, 201, 200, 202), shape: idShape, extra: extraFields, first: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('id' as const), http: fc.oneof(errHttp, fc.constant(204)), shape: idShape, extra: fc.constant(null), first: fc.boolean() }) },
  { weight: 3, arbitrary: json(okHttp, badId) },
  { weight: 2, arbitrary: text(anyHttp, notJson('{"id":"8c9b3ab6-5c1d-4e1f-9d0e-2a4b6c8d0e1f"}')) },
  { weight: 25, arbitrary: text(fc.constant(400), fc.constantFrom(...DOCUMENTED_400)) },
  { weight: 2, arbitrary: text(fc.constant(429), fc.constantFrom('{"code":429,"message":"max concurrent queries per user (2) reached"}', 'Too Many Requests', '')) },
  { weight: 2, arbitrary: errorBody(fc.constantFrom(403, 404, 500, 502, 503)) },
  { weight: 20, arbitrary: errorBody(fc.constant(401)) },
);

// ---- the status ------------------------------------------------------------------------------

const STATUSES = ['Pending', 'Completed', 'Failed', 'Canceled'] as const;
type QStatus = (typeof STATUSES)[number];
type StatusSpec =
  | { t: 'real' }
  | { t: 'status'; http: number; status: QStatus; messages: unknown; guid: 'asked' | 'other' | 'none'; extra: Record<string, unknown> | null }
  /** The documented unknown-guid answer, `pad` characters into the body (the exporter reads the first 200). */
  | { t: 'lost'; http: number; style: number; pad: number }
  | Body;
const MESSAGES_ECHO = [['Bearer @@TOKEN@@'], ['request by @@TOKEN@@ canceled']];
const messages = fc.oneof(
  { weight: 40, arbitrary: fc.constant(undefined) },
  { weight: 30, arbitrary: fc.constant([NO_DATA_MESSAGE]) },
  { weight: 20, arbitrary: fc.constantFrom<unknown>([], 'No data', [1, null, {}], ['@@x1000@@'], ['line1\nline2', 'ü 🚀'], { message: 'x' }) },
  ...(KNOWN_BUGS.messagesLogged ? [] : [{ weight: 10, arbitrary: fc.constantFrom<unknown>(...MESSAGES_ECHO) }]),
);
const validStatus = fc.oneof(
  { weight: 55, arbitrary: fc.constant<QStatus>('Completed') },
  { weight: 20, arbitrary: fc.constant<QStatus>('Pending') },
  { weight: 12, arbitrary: fc.constant<QStatus>('Failed') },
  { weight: 8, arbitrary: fc.constant<QStatus>('Canceled') },
);
const badStatus = fc.oneof(
  fc.record({ status: fc.constantFrom('Running', 'completed', 'COMPLETED', 'Cancelled', 'Done', '', ' Pending', 'Pending ', 'Failed\u0000', 0, 1, null, true, ['Completed'], { status: 'Completed' }), guid: fc.constant('@@GUID@@') }, { requiredKeys: [] }),
  fc.constantFrom({}, { Status: 'Completed' }, { data: { status: 'Completed' } }, [{ status: 'Completed' }], 'Completed', null, [], 0),
  fc.jsonValue({ maxDepth: 2 }),
);
const statusSpec: fc.Arbitrary<StatusSpec> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ t: 'real' as const }) },
  { weight: 60, arbitrary: fc.record({ t: fc.constant('status' as const), http: okHttp, status: validStatus, messages, guid: fc.constantFrom<'asked' | 'other' | 'none'>('asked', 'asked', 'other', 'none'), extra: extraFields }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('status' as const), http: fc.oneof(errHttp, fc.constant(204)), status: validStatus, messages: fc.constant(undefined), guid: fc.constant<'asked'>('asked'), extra: fc.constant(null) }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('lost' as const), http: fc.constantFrom(500, 500, 500, 500, 502, 404), style: fc.integer({ min: 0, max: 3 }), pad: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 150, max: 260 })) }) },
  { weight: 8, arbitrary: json(okHttp, badStatus) },
  { weight: 5, arbitrary: text(anyHttp, notJson('{"status":"Completed","guid":"x"}')) },
  { weight: 6, arbitrary: errorBody(fc.constantFrom(403, 404, 429, 500, 502, 503)) },
  { weight: 35, arbitrary: errorBody(fc.constant(401)) },
);

// ---- the result ------------------------------------------------------------------------------

/** File names a result sentence may list: all safe (relative, no `..`, no control character). */
const SAFE_SHAPES = ['plain', 'plain', 'plain', 'unicode', 'space', 'squote', 'dquote', 'backslash', 'comma', 'bracket', 'dotslash', 'deep', 'noext', 'upre', 'percent', 'longname', 'doubleslash'] as const;
/** ... and names the exporter must refuse. */
const REFUSED_SHAPES = ['dotdot', 'dotdotonly', 'abs', 'ctl', 'tab', 'nl', 'del', 'empty', 'toolong'] as const;
type PathShape = (typeof SAFE_SHAPES)[number] | (typeof REFUSED_SHAPES)[number];
interface PathItem {
  shape: PathShape;
  /** The file is not written: SFTP answers no such file. */
  missing: boolean;
  quote: "'" | '"';
  u: boolean;
}
type ResultSpec =
  | { t: 'real' }
  | { t: 'paths'; http: number; items: PathItem[]; lead: string; sep: string; tail: string; trailingComma: boolean; extra: Record<string, unknown> | null }
  | { t: 'notFinished'; http: number; sentence: string }
  | Body;
const pathItem = (shape: fc.Arbitrary<PathShape>) => fc.record({
  shape,
  missing: fc.oneof({ weight: 120, arbitrary: fc.constant(false) }, { weight: 10, arbitrary: fc.constant(true) }),
  quote: fc.constantFrom<"'" | '"'>("'", "'", "'", '"'),
  u: fc.boolean(),
});
const safeItems = fc.oneof({ weight: 40, arbitrary: fc.array(pathItem(fc.constantFrom(...SAFE_SHAPES)), { minLength: 1, maxLength: 2 }) }, { weight: 10, arbitrary: fc.array(pathItem(fc.constantFrom(...SAFE_SHAPES)), { minLength: 3, maxLength: 5 }) });
const refusedItems = fc.tuple(fc.array(pathItem(fc.constantFrom(...SAFE_SHAPES)), { maxLength: 2 }), pathItem(fc.constantFrom(...REFUSED_SHAPES)), fc.nat()).map(([safe, bad, at]) => {
  const out = [...safe];
  out.splice(at % (safe.length + 1), 0, bad);
  return out;
});
const sentenceParts = {
  lead: fc.constantFrom('Process finished. Download: ', 'Process finished. Download: ', 'Download:', 'Process finished.\nDownload:\t', 'Process finished. Download:   '),
  sep: fc.constantFrom(', ', ', ', ',', ' ,  ', ',\n'),
  tail: fc.constantFrom('', '', '.', ' ', ' .\n'),
  trailingComma: fc.oneof({ weight: 90, arbitrary: fc.constant(false) }, { weight: 10, arbitrary: fc.constant(true) }),
};
const GARBAGE_SENTENCES = [
  'Process failed', 'Process finished.', 'Process finished. Download: []', 'Process finished. Download: [ ]', "Download : [u'a.csv.gz']",
  "Process finished. Download: [u'a.csv.gz'] (expires in 7 days)", "Process finished. Download: [u'a.csv.gz' u'b.csv.gz']",
  'Process finished. Download: [a.csv.gz]', "Process finished. Download: ['a.csv.gz'", "Process finished. Download: u'a.csv.gz'",
  "Process finished. Download: [u'a\\\nb.csv.gz']", "Process finished. Download: [b'a.csv.gz']", "Process finished. Download: [r'a.csv.gz']",
  'Process not finished yet', '', ' ', 'null', "Process finished. Download: ['reports/../../etc/passwd']", "Process finished. Download: ['/etc/shadow']",
];
/** Status sentences of no download list: filtered so that none names one by chance (the model could not judge it). */
const garbageSentence = fc.oneof(fc.constantFrom(...GARBAGE_SENTENCES), fc.string({ maxLength: 40 })).filter((s) => !/download/i.test(s) || GARBAGE_SENTENCES.includes(s));
const badResult = fc.oneof(
  fc.record({ status: fc.oneof(garbageSentence, fc.constantFrom<unknown>(null, 0, true, [], ["u'a.csv.gz'"], { Download: ['a.csv.gz'] })), guid: fc.constant('@@GUID@@') }, { requiredKeys: [] }),
  fc.constantFrom<unknown>({}, { Status: NOT_FINISHED_SENTENCE }, [{ status: 'x' }], 'Process finished', null, 0, []),
  fc.jsonValue({ maxDepth: 2 }).filter((v) => !/download/i.test(JSON.stringify(v) ?? '')),
);
const resultSpec: fc.Arbitrary<ResultSpec> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ t: 'real' as const }) },
  { weight: 35, arbitrary: fc.record({ t: fc.constant('paths' as const), http: okHttp, items: safeItems, ...sentenceParts, extra: extraFields }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('paths' as const), http: okHttp, items: refusedItems, ...sentenceParts, extra: fc.constant(null) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('paths' as const), http: fc.oneof(errHttp, fc.constant(204)), items: safeItems, ...sentenceParts, extra: fc.constant(null) }) },
  { weight: 30, arbitrary: fc.record({ t: fc.constant('notFinished' as const), http: okHttp, sentence: fc.constantFrom(NOT_FINISHED_SENTENCE, NOT_FINISHED_SENTENCE, 'PROCESS HAS NOT FINISH YET', 'Process has not finished yet, please retry', 'has not finish') }) },
  { weight: 8, arbitrary: json(okHttp, badResult) },
  { weight: 5, arbitrary: text(anyHttp, notJson(`{"status":"${NOT_FINISHED_SENTENCE}"}`).filter((t) => !/download/i.test(t))) },
  { weight: 6, arbitrary: errorBody(fc.constantFrom(403, 404, 429, 500, 502, 503)) },
  { weight: 55, arbitrary: errorBody(fc.constant(401)) },
);

// ---- result files ----------------------------------------------------------------------------

const FILE_KINDS = {
  counted: ['valid', 'big', 'headerOnly', 'gzEmpty', 'multiMember', 'trailingZeros'],
  corrupt: ['missingField', 'width', 'openQuote', 'strayQuote', 'notGzip', 'truncated', 'empty', 'trailingJunk', 'garbage'],
} as const;
type FileKind = (typeof FILE_KINDS.counted)[number] | (typeof FILE_KINDS.corrupt)[number];
interface FileSpec {
  kind: FileKind;
  /** Per row: numbers picking each column's value. */
  rows: number[][];
  eol: '\r\n' | '\n' | '\r';
  bom: boolean;
  quoteAll: boolean;
  /** Rotation and direction of the columns. */
  order: number;
  extra: number;
  blank: boolean;
  finalEol: boolean;
  /** Where the file is cut, split or broken (a fraction, or a row). */
  at: number;
  junk: number[];
}
const fileKind = fc.oneof(
  { weight: 120, arbitrary: fc.constant<FileKind>('valid') },
  { weight: 3, arbitrary: fc.constant<FileKind>('big') },
  { weight: 30, arbitrary: fc.constantFrom<FileKind>('headerOnly', 'gzEmpty', 'multiMember', 'trailingZeros') },
  { weight: 50, arbitrary: fc.constantFrom<FileKind>(...FILE_KINDS.corrupt) },
);
const fileSpec: fc.Arbitrary<FileSpec> = fc.record({
  kind: fileKind,
  rows: fc.array(fc.array(fc.nat({ max: 1000 }), { minLength: 6, maxLength: 6 }), { minLength: 1, maxLength: 7 }),
  eol: fc.constantFrom<'\r\n' | '\n' | '\r'>('\r\n', '\r\n', '\n', '\r'),
  bom: fc.boolean(),
  quoteAll: fc.boolean(),
  order: fc.nat({ max: 20 }),
  extra: fc.nat({ max: 3 }),
  blank: fc.boolean(),
  finalEol: fc.boolean(),
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  junk: fc.array(fc.nat({ max: 255 }), { maxLength: 40 }),
});

/** Group values: quotes, commas, line breaks, unicode, empty, long. */
const VALUES = [
  'Main IVR', 'Soporte técnico', 'Billing, "VIP"\nafter hours', 'Outbound', '', ' ', 'a,b', 'say "hi"', 'two\r\nlines\rcr', 'ラベル値 🚀',
  'back\\slash\ttab\u2028sep', '=1+1', 'z'.repeat(120),
];
/** Time values and what they are (undefined: not a time), as ISO 8601 or `YYYY-MM-DD HH:MM:SS` taken as UTC. */
const TIME_VALUES: Array<[string, number | undefined]> = [
  ['2026-11-23T19:50:00Z', Date.UTC(2026, 10, 23, 19, 50, 0)],
  ['2026-11-23T19:55:30.250Z', Date.UTC(2026, 10, 23, 19, 55, 30, 250)],
  ['2026-11-23 19:52:00', Date.UTC(2026, 10, 23, 19, 52, 0)],
  [' 2026-11-23T20:51:00+01:00 ', Date.UTC(2026, 10, 23, 19, 51, 0)],
  ['2026-11-23T19:53Z', Date.UTC(2026, 10, 23, 19, 53, 0)],
  ['2026-11-23T19:58:00.000Z', Date.UTC(2026, 10, 23, 19, 58, 0)],
  ['', undefined], ['yesterday', undefined], ['1764000000', undefined], ['2026-11-23', undefined], ['NaN', undefined], ['2026-11-23T19:50:00.1234567890Z', undefined],
];
const TIME_OF = new Map(TIME_VALUES);
const STAMPS = ['2026-11-23T19:50:00.000Z', '', 'not a time', '2026-11-23 19:51:00'];
/** Extra columns the exporter did not ask for (names not among any query's fields). */
const EXTRA_COLUMNS = ['Extra', 'ünïcødé', 'with,comma', 'say "x"', '', 'EventName'];

/** An independent reading of an event time (the fake's ISO times, and the table above); throws on anything else. */
function refTime(s: string): number | undefined {
  if (TIME_OF.has(s)) return TIME_OF.get(s);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(s)) return Date.parse(s);
  throw new Error(`the model cannot read the time ${JSON.stringify(s)}`);
}

type FileVerdict = { ok: true; events: Map<string, number>; durations: Map<string, number>; rows: number } | { ok: false; why: string };

/** A CSV field, quoted when it must be (or always). */
const csvField = (v: string, always: boolean) => (always || /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/** Counts of rows (each a record of column -> value) as the model reads them: by group values, and valid durations. */
function tallyRows(q: QDef, records: Array<Record<string, string>>): FileVerdict {
  const events = new Map<string, number>();
  const durations = new Map<string, number>();
  for (const r of records) {
    const key = JSON.stringify(q.groupBy.map((f) => r[f] ?? ''));
    events.set(key, (events.get(key) ?? 0) + 1);
    if (q.hist) {
      const a = refTime(r[q.hist.start] ?? '');
      const b = refTime(r[q.hist.end] ?? '');
      if (a !== undefined && b !== undefined && b >= a) durations.set(key, (durations.get(key) ?? 0) + 1);
    }
  }
  return { ok: true, events, durations, rows: records.length };
}

/** Reads a result file as the exporter must: gzip, CSV with a header naming the fields asked for (csv-parse/sync, independently of the exporter's stream). */
function readResult(bytes: Buffer, q: QDef): FileVerdict {
  let records: Array<Record<string, string>>;
  try {
    records = parseCsv(gunzipSync(bytes), { columns: true, bom: true, skip_empty_lines: true, relax_column_count: false }) as Array<Record<string, string>>;
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
  // A header is checked against the fields asked for on its first row (a file of no row has nothing to count).
  if (records.length > 0) {
    const missing = q.fields.filter((f) => !Object.hasOwn(records[0]!, f));
    if (missing.length > 0) return { ok: false, why: `no ${missing.join(', ')}` };
  }
  return tallyRows(q, records);
}

/** Renders a file spec for a query: its bytes, and what it holds by construction. */
function renderFile(spec: FileSpec, q: QDef): { bytes: Buffer; expect: FileVerdict } {
  const extras = EXTRA_COLUMNS.slice(0, spec.kind === 'missingField' ? Math.max(1, spec.extra) : spec.extra);
  let cols = [...q.fields, ...extras];
  const rot = spec.order % cols.length;
  cols = [...cols.slice(rot), ...cols.slice(0, rot)];
  if (spec.order % 2 === 1) cols.reverse();
  if (spec.kind === 'missingField') {
    const drop = q.fields[spec.order % q.fields.length]!;
    cols = cols.filter((c) => c !== drop);
  }
  const big = spec.kind === 'big';
  const rowSpecs = big ? Array.from({ length: 400 + (spec.order * 53) % 1100 }, (_, i) => Array.from({ length: 6 }, (_, k) => (i * 7 + k * 13 + spec.order) % 997)) : spec.rows;
  const records: Array<Record<string, string>> = [];
  const lines: string[] = [];
  for (const picks of rowSpecs) {
    const record: Record<string, string> = {};
    cols.forEach((c, i) => {
      const n = picks[i % picks.length]! + i;
      if (q.hist && (c === q.hist.start || c === q.hist.end)) record[c] = TIME_VALUES[(c === q.hist.start ? picks[4]! : picks[5]!) % TIME_VALUES.length]![0];
      else if (c === 'TimeStamp') record[c] = STAMPS[n % STAMPS.length]!;
      else record[c] = VALUES[n % VALUES.length]!;
    });
    const line = cols.map((c) => csvField(record[c]!, spec.quoteAll)).join(',');
    lines.push(line);
    // An empty line is no record (skip_empty_lines): a one-column row of an unquoted empty value.
    if (line !== '') records.push(record);
  }
  const header = cols.map((c) => csvField(c, spec.quoteAll)).join(',');
  const kind = spec.kind;
  const atRow = Math.floor(spec.at * lines.length);
  if (kind === 'width' && lines.length > 0) lines[Math.min(atRow, lines.length - 1)] += ',x';
  if (kind === 'strayQuote' && lines.length > 0) lines[Math.min(atRow, lines.length - 1)] = ['ab"cd', ...cols.slice(1).map(() => 'v')].join(',');
  const body = kind === 'headerOnly' ? [] : lines;
  let csv = (spec.bom ? '\ufeff' : '') + [header, ...body.flatMap((l) => (spec.blank ? [l, ''] : [l]))].join(spec.eol) + (spec.finalEol ? spec.eol : '');
  if (kind === 'openQuote') csv += `${spec.finalEol ? '' : spec.eol}"open,${cols.map(() => 'v').join(',')}${spec.eol}`;
  if (kind === 'gzEmpty') csv = '';
  const raw = Buffer.from(csv, 'utf8');
  const gz = gzipSync(raw);
  let bytes: Buffer;
  switch (kind) {
    case 'notGzip': bytes = raw.length > 0 ? raw : Buffer.from('A,B\r\n'); break;
    case 'truncated': bytes = gz.subarray(0, 1 + Math.floor(spec.at * (gz.length - 2))); break;
    case 'empty': bytes = Buffer.alloc(0); break;
    case 'trailingJunk': bytes = Buffer.concat([gz, Buffer.from(`junk ${spec.junk.length}\n`)]); break;
    case 'trailingZeros': bytes = Buffer.concat([gz, Buffer.alloc(1 + (spec.junk.length % 16))]); break;
    case 'multiMember': {
      const cut = Math.floor(spec.at * raw.length);
      bytes = Buffer.concat([gzipSync(raw.subarray(0, cut)), gzipSync(raw.subarray(cut))]);
      break;
    }
    case 'garbage': bytes = Buffer.from(spec.junk); break;
    default: bytes = gz;
  }
  let expect: FileVerdict;
  if (kind === 'garbage') expect = { ok: false, why: 'random bytes' };
  else if ((FILE_KINDS.corrupt as readonly string[]).includes(kind) && !(kind === 'missingField' && records.length === 0) && !((kind === 'width' || kind === 'strayQuote') && lines.length === 0)) expect = { ok: false, why: kind };
  else expect = tallyRows(q, kind === 'headerOnly' || kind === 'gzEmpty' ? [] : records);
  return { bytes, expect };
}

/** Two verdicts alike (the generator's self-check). */
function sameVerdict(a: FileVerdict, b: FileVerdict): boolean {
  if (a.ok !== b.ok) return false;
  if (!a.ok || !b.ok) return true;
  const m = (x: Map<string, number>) => JSON.stringify([...x].sort());
  return m(a.events) === m(b.events) && m(a.durations) === m(b.durations) && a.rows === b.rows;
}

// ---- a poll ----------------------------------------------------------------------------------

interface Step {
  /** A calm poll: every answer is IntelePeer's own (the fake's, or as IntelePeer would for a query a generated answer made up); submits reach the fake. */
  calm: boolean;
  advance: number;
  /** Token answers while following jobs and reading results... */
  auth: AuthSpec[];
  /** ... and while submitting (mostly good: a failed submit pauses every submit, and the other parsers want the queries). */
  authSubmit: AuthSpec[];
  submit: SubmitSpec[];
  status: StatusSpec[];
  result: ResultSpec[];
  files: FileSpec[];
  /** For each file the fake writes: replaced by a generated one? */
  overwrite: boolean[];
}
const step: fc.Arbitrary<Step> = fc.record({
  calm: fc.oneof({ weight: 11, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  advance: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 45_000, max: 120_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 10_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 180_000, max: 420_000 }) }),
  auth: fc.array(authSpec, { minLength: 4, maxLength: 8 }),
  authSubmit: fc.array(authSubmitSpec, { minLength: 2, maxLength: 4 }),
  submit: fc.array(submitSpec, { minLength: 6, maxLength: 10 }),
  status: fc.array(statusSpec, { minLength: 6, maxLength: 10 }),
  result: fc.array(resultSpec, { minLength: 6, maxLength: 12 }),
  files: fc.array(fileSpec, { minLength: 3, maxLength: 6 }),
  overwrite: fc.array(fc.boolean(), { minLength: 2, maxLength: 5 }),
});

// ---------------------------------------------------------------------------------------------
// The reference model: what the exporter must make of each answer and file, judged without its code.


/** A body as the client reads it: an error status, not JSON (or nested past 64 levels), or a JSON value (null when empty). */
function readBody(http: number, body: string): { kind: 'http' } | { kind: 'notJson' } | { kind: 'json'; v: unknown } {
  if (http < 200 || http >= 300) return { kind: 'http' };
  const t = http === 204 ? '' : Buffer.from(body, 'utf8').toString('utf8');
  if (t.length === 0) return { kind: 'json', v: null };
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return { kind: 'notJson' };
  }
  return depthOf(v) > 64 ? { kind: 'notJson' } : { kind: 'json', v };
}
const field = (v: unknown, k: string): unknown => (v !== null && v !== undefined ? (v as Record<string, unknown>)[k] : undefined);

/**
 * What an answer is: ok (with what it says), notFinished (a result sentence saying so), http (an
 * error status), notJson (2xx, not JSON or nested past 64 levels), shape (2xx JSON not of the
 * expected shape; for a result, without a list of safe paths).
 */
interface Verdict {
  kind: 'ok' | 'notFinished' | 'http' | 'notJson' | 'shape';
  token?: string;
  id?: string;
  status?: QStatus;
  messages?: unknown;
  paths?: string[];
}

/** A token as the exporter takes it today: a string of 1 to 8192 characters, no white space. */
/** A token the exporter takes: 1 to 8,192 visible ASCII characters (anything else no header can hold safely). */
const tokenTaken = (t: unknown): t is string => typeof t === 'string' && /^[\x21-\x7e]{1,8192}$/.test(t);
/** Status messages as the exporter keeps them (they are logged): the token in use and any Bearer credential taken out, 300 characters at most. */
const keptMessages = (ms: unknown, token: string): string[] =>
  Array.isArray(ms) ? ms.filter((m): m is string => typeof m === 'string').map((m) => (token ? m.split(token).join('[redacted]') : m).replace(/(bearer\s+)\S+/gi, '$1[redacted]').slice(0, 300)) : [];
/** A token answer: usable when its token can go in a header (KNOWN_BUGS.unsendableToken: the exporter takes others too). */
function judgeAuth(http: number, body: string): Verdict {
  const r = readBody(http, body);
  if (r.kind !== 'json') return r;
  const t = field(r.v, 'token');
  return tokenTaken(t) && sendable(t) ? { kind: 'ok', token: t } : { kind: 'shape' };
}
function judgeSubmit(http: number, body: string): Verdict {
  const r = readBody(http, body);
  if (r.kind !== 'json') return r;
  const id = field(r.v, 'id');
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,100}$/.test(id) ? { kind: 'ok', id } : { kind: 'shape' };
}
function judgeStatus(http: number, body: string): Verdict {
  const r = readBody(http, body);
  if (r.kind !== 'json') return r;
  const s = field(r.v, 'status');
  return r.v !== null && typeof r.v === 'object' && typeof s === 'string' && (STATUSES as readonly string[]).includes(s) ? { kind: 'ok', status: s as QStatus, messages: field(r.v, 'messages') } : { kind: 'shape' };
}
/** A result answer; `paths` is what a generated sentence lists by construction (undefined: no list, or a list with a refused path). */
function judgeResult(http: number, body: string, built?: { paths: string[] | undefined }): Verdict {
  const r = readBody(http, body);
  if (r.kind !== 'json') return r;
  const s = field(r.v, 'status');
  if (typeof s !== 'string') return { kind: 'shape' };
  if (/has not finish/i.test(s)) return { kind: 'notFinished' };
  if (built) return built.paths && built.paths.length > 0 ? { kind: 'ok', paths: built.paths } : { kind: 'shape' };
  // Not built by the test: a sentence of no usable list, or one of the fake's own.
  if (GARBAGE_SENTENCES.includes(s)) return { kind: 'shape' };
  const m = /^Process finished\. Download: \[(.*)\]$/s.exec(s);
  if (!m) {
    if (/download/i.test(s)) throw new Error(`the model cannot judge the sentence ${JSON.stringify(s)}`);
    return { kind: 'shape' };
  }
  return { kind: 'ok', paths: m[1]!.split(', ').map((p) => /^u'(.*)'$/s.exec(p)![1]!.replace(/\\(.)/g, '$1')) };
}

/** The start of an error body as the client keeps it (trimmed, the request's token taken out, 200 characters). */
function detailOf(body: string, token: string): string {
  let t = body.trim();
  const secrets = new Set([`Bearer ${token}`, token]);
  for (const s of [...secrets]) {
    secrets.add(b64(s));
    secrets.add(b64(s).replace(/=+$/, ''));
  }
  for (const s of [...secrets].filter((x) => x.length >= 4).sort((a, b) => b.length - a.length)) t = t.split(s).join('[REDACTED]');
  t = t.replace(/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]+/gi, '$1 [REDACTED]');
  return t.slice(0, 200);
}

/** What a failed call left: its HTTP status (when one came), whether the answer was unreadable, whether it came from the token endpoint. */
interface CallError {
  status: number | undefined;
  malformed: boolean;
  auth: boolean;
  /** The documented unknown-guid answer (500, "could not get QueryRequest" in the first 200 characters). */
  lost: boolean;
}

/** A small deterministic hash (FNV-1a). */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

interface MJob {
  query: string;
  from: number;
  to: number;
  cutAt: number;
  phase: Phase;
  guid?: string;
  submittedAt?: number;
  downloadFailures: number;
  notBefore?: number;
  refusals?: number;
}
interface MQuery {
  planned?: number;
  origin?: number;
  lastTick?: number;
  events: Map<string, number>;
  durations: Map<string, number>;
  data: number;
  noData: number;
  lastCounted?: number;
  failures: Record<FailureReason, number>;
  retries: Record<RetryReason, number>;
}
/** A query IntelePeer knows: the fake's, or one a generated submit answer made up (which the test answers for). */
interface Upstream {
  real: boolean;
  query: string;
  submittedAt: number;
  /** Made up: how it ends, and when. */
  outcome?: QStatus | 'stuck';
  finishAt?: number;
  files?: string[];
}

const newQuery = (): MQuery => ({
  events: new Map(), durations: new Map(), data: 0, noData: 0,
  failures: Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>,
  retries: Object.fromEntries(RETRY_REASONS.map((r) => [r, 0])) as Record<RetryReason, number>,
});

const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
/** The POST Q body of an interval, as the API documents it. */
const queryBody = (q: QDef, job: MJob) => ({
  timestamp: { $gte: isoSeconds(job.from), $lt: isoSeconds(job.to) },
  data: { [q.event]: { fields: q.fields } },
  ...(q.filters ? { filters: { [q.event]: q.filters } } : {}),
});


// ---- rendering -------------------------------------------------------------------------------

/** Expands the placeholders of a generated text. */
function fill(t: string, token: string | undefined, guid = ''): string {
  if (!t.includes('@@')) return t;
  let out = t.split('@@TOKEN@@').join(token ?? 'none').split('@@BEARER64@@').join(b64(`Bearer ${token ?? 'none'}`)).split('@@GUID@@').join(guid);
  out = out.split('@@PASSWORD@@').join(PASSWORD).split('@@PW64@@').join(b64(`${USER}:${PASSWORD}`)).split('@@HUGE@@').join('h'.repeat(100_000));
  return out.replace(/@@x(\d+)@@/g, (_m, n: string) => 'x'.repeat(Number(n)));
}
const renderBody = (b: Body, token: string | undefined, guid = '') => fill(b.t === 'text' ? b.text : (JSON.stringify(b.value) ?? ''), token, guid);
const withExtra = (core: Record<string, unknown>, extra: Record<string, unknown> | null, first: boolean) => JSON.stringify(extra === null ? core : first ? { ...extra, ...core } : { ...core, ...extra });

/** A generated token answer (`n` makes the token unique). While KNOWN_BUGS.unsendableToken, a token no header can hold is answered 401 instead. */
function renderAuth(s: Exclude<AuthSpec, { t: 'real' }>, n: number): [number, string] {
  let out: [number, string] = s.t === 'token' ? [s.http, fill(withExtra({ token: makeToken(s.shape, n) }, s.extra, s.first), undefined)] : [s.http, renderBody(s, undefined)];
  const r = readBody(...out);
  if (KNOWN_BUGS.unsendableToken && r.kind === 'json' && tokenTaken(field(r.v, 'token')) && !sendable(field(r.v, 'token') as string)) out = [401, '{"code":401,"message":"Invalid username or password"}'];
  return out;
}
function renderSubmit(s: Exclude<SubmitSpec, { t: 'real' }>, id: (shape: IdShape) => string, token: string): [number, string] {
  return s.t === 'id' ? [s.http, fill(withExtra({ id: id(s.shape) }, s.extra, s.first), token)] : [s.http, renderBody(s, token)];
}
function renderStatus(s: Exclude<StatusSpec, { t: 'real' }>, guid: string, token: string): [number, string] {
  if (s.t === 'status') {
    const core: Record<string, unknown> = { status: s.status };
    if (s.guid !== 'none') core.guid = s.guid === 'asked' ? guid : 'ffffffff-0000-4000-8000-000000000000';
    if (s.messages !== undefined) core.messages = s.messages;
    return [s.http, fill(withExtra(core, s.extra, true), token, guid)];
  }
  if (s.t === 'lost') {
    const doc = `[{"message":"could not get QueryRequest object: ${guid} not found","code":500}]`;
    const styles = [
      `${' '.repeat(s.pad)}${doc}`,
      `{"detail":"${'d'.repeat(s.pad)}","errors":${doc}}`,
      `{"auth":"Bearer ${token}","pad":"${'p'.repeat(s.pad)}","errors":${doc}}`,
      `${' '.repeat(s.pad)}[{"message":"Could Not Get queryrequest Object: ${guid}","code":500}]`,
    ];
    return [s.http, styles[s.style]!];
  }
  return [s.http, renderBody(s, token, guid)];
}

/** A file a generated sentence lists: written (or not: no such file) by whoever serves the sentence. */
interface Listed {
  path: string;
  missing: boolean;
}
/** A generated result sentence: its text, the paths it lists by construction (undefined when one is refused), the files to write. */
function buildSentence(s: Extract<ResultSpec, { t: 'paths' }>, next: () => number): { sentence: string; paths: string[] | undefined; files: Listed[] } {
  const paths: string[] = [];
  const files: Listed[] = [];
  let refused = false;
  const items = s.items.map((it) => {
    const k = next();
    const base = `gen/${k}`;
    const names: Record<PathShape, string> = {
      plain: `${base}/part-${k}.csv.gz`,
      unicode: `${base}/résumé-ラ-${k}.csv.gz`,
      space: `${base}/with space ${k}.csv.gz`,
      squote: `${base}/it's-${k}.csv.gz`,
      dquote: `${base}/say"hi"-${k}.csv.gz`,
      backslash: `${base}/back\\slash-${k}.csv.gz`,
      comma: `${base}/a, b-${k}.csv.gz`,
      bracket: `${base}/[x]-${k}.csv.gz`,
      dotslash: `./${base}/dot-${k}.csv.gz`,
      deep: `${base}/a/b/c/d-${k}.csv.gz`,
      noext: `${base}/${k}`,
      upre: `${base}/u'${k}`,
      percent: `${base}/%41-${k}.csv.gz`,
      longname: `${base}/${'n'.repeat(200)}-${k}.csv.gz`,
      doubleslash: `${base}//double-${k}.csv.gz`,
      dotdot: `${base}/../${k}.csv.gz`,
      dotdotonly: '..',
      abs: `/${base}/abs-${k}.csv.gz`,
      ctl: `${base}/a\u0001${k}.csv.gz`,
      tab: `${base}/a\t${k}.csv.gz`,
      nl: `${base}/a\n${k}.csv.gz`,
      del: `${base}/a\u007f${k}.csv.gz`,
      empty: '',
      toolong: `${base}/${Array.from({ length: 6 }, () => 'l'.repeat(200)).join('/')}.csv.gz`,
    };
    const path = names[it.shape];
    if ((REFUSED_SHAPES as readonly string[]).includes(it.shape)) refused = true;
    else {
      paths.push(path);
      files.push({ path, missing: it.missing });
    }
    const escaped = path.replace(/\\/g, '\\\\').split(it.quote).join(`\\${it.quote}`);
    return `${it.u ? 'u' : ''}${it.quote}${escaped}${it.quote}`;
  });
  const list = `[${items.join(s.sep)}${s.trailingComma && items.length > 0 ? ',' : ''}]`;
  return { sentence: `${s.lead}${list}${s.tail}`, paths: refused ? undefined : paths, files: refused ? [] : files };
}
/** A generated result answer, with what a built sentence lists. */
function renderResult(s: Exclude<ResultSpec, { t: 'real' }>, guid: string, token: string, next: () => number): { http: number; body: string; built?: { paths: string[] | undefined }; files: Listed[] } {
  if (s.t === 'paths') {
    const { sentence, paths, files } = buildSentence(s, next);
    return { http: s.http, body: fill(withExtra({ status: sentence, guid }, s.extra, true), token, guid), built: { paths }, files };
  }
  if (s.t === 'notFinished') return { http: s.http, body: JSON.stringify({ status: s.sentence, guid }), files: [] };
  return { http: s.http, body: renderBody(s, token, guid), files: [] };
}

// ---------------------------------------------------------------------------------------------

const bump = (m: Map<string, number>, k: string, n = 1) => m.set(k, (m.get(k) ?? 0) + n);
/** How the figures sort an answer: its verdict, the status read, and a submit's 400s and 429s apart. */
const verdictKey = (ep: Ep, http: number, v: Verdict) => (v.kind === 'ok' && ep === 'status' ? v.status! : v.kind === 'http' && ep === 'submit' && (http === 400 || http === 429) ? `http${http}` : v.kind);
const stats = {
  sequences: 0,
  polls: 0,
  runs: { success: 0, failure: 0 },
  generated: { auth: 0, submit: 0, status: 0, result: 0 } as Record<Ep, number>,
  simulator: { auth: 0, submit: 0, status: 0, result: 0 } as Record<Ep, number>,
  verdicts: { auth: new Map<string, number>(), submit: new Map<string, number>(), status: new Map<string, number>(), result: new Map<string, number>() } as Record<Ep, Map<string, number>>,
  reauth: 0,
  files: { generated: new Map<string, number>(), real: 0, listedMissing: 0, read: 0, corrupt: 0, missing: 0 },
  lost: 0,
  intervals: { data: 0, noData: 0, events: 0 },
  retried: new Map<string, number>(),
  sessions: 0,
  maxJobs: 0,
  countersChecked: 0,
  linesScanned: 0,
  pagesScanned: 0,
};


/** A listening simulator with its embedded SFTP server. */
async function startSimulator(clock: ManualClock, seed: number): Promise<Simulator> {
  const sim = new Simulator({ clock, seed, sources: [intelepeer], sftp: 'embedded' });
  await sim.listen('127.0.0.1', 0);
  return sim;
}

/** Samples by family name. */
function byName(samples: ParsedSample[]): (name: string, match?: Record<string, string>) => ParsedSample[] {
  const index = new Map<string, ParsedSample[]>();
  for (const s of samples) {
    const list = index.get(s.name);
    if (list) list.push(s);
    else index.set(s.name, [s]);
  }
  return (name, match = {}) => (index.get(name) ?? []).filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** One poll's requests as the model expects them, and the rules that answer them. */
interface PollPlan {
  step: Step;
  now: number;
  rules: FaultRule[];
  expected: string[];
  cursor: Record<Ep | 'authSubmit' | 'files' | 'overwrite', number>;
  phase: 'follow' | 'download' | 'submit';
  errors: number;
  /** Jobs submitted straight to the fake (calm polls): their guids are known once the poll ran. */
  passThrough: MJob[];
  /** Tokens used or handed out this poll. */
  tokens: Set<string>;
}

class Sequence {
  readonly dir: string;
  readonly statePath: string;
  readonly clock: ManualClock;
  sim!: Simulator;
  readonly lines: string[] = [];
  readonly text: string;
  app!: App;
  fake!: IntelePeerFake;
  // The exporter as the model sees it: jobs, queries (state file), and what one process holds.
  jobs: MJob[] = [];
  readonly q = new Map(QUERIES.map((q) => [q.name, newQuery()]));
  token: string | undefined;
  tokenReal = false;
  pausedUntil = 0;
  backoff = SUBMIT_BACKOFF;
  sftpUp: number | undefined;
  notFound = 0;
  requests = new Map<string, number>();
  parseErrors = new Map<Ep, number>();
  runs = { success: 0, failure: 0 };
  // IntelePeer's side.
  readonly upstream = new Map<string, Upstream>();
  readonly files = new Map<string, FileVerdict>();
  fakeQueries = 0;
  fakeFiles = 0;
  seq = 0;
  readonly allTokens = new Set<string>();
  // Checks.
  readonly totals = new Map<string, number>();
  scanned = 0;

  constructor(readonly seed: number) {
    this.dir = mkdtempSync(join(stateRoot, 'intelepeer-bodies-'));
    this.statePath = join(this.dir, 'state.json');
    this.clock = new ManualClock(T0 + (seed % 60) * 1000);
    this.text = configText(this.dir);
    this.resetProcess();
  }

  async start(): Promise<void> {
    this.sim = await startSimulator(this.clock, this.seed);
    this.fake = this.sim.fake<IntelePeerFake>('intelepeer');
    this.fake.setPendingMs(0);
    this.fake.setRowsPerFile(6);
    this.fake.setCancelShare(0.1);
    this.app = await bootExporter(this.text, this.sim, this.clock, this.lines);
  }

  async restart(): Promise<void> {
    await this.app.stop();
    this.app = await bootExporter(this.text, this.sim, this.clock, this.lines);
    for (const k of [...this.totals.keys()]) if (k.startsWith('conviva_exporter_')) this.totals.delete(k);
    this.resetProcess();
  }

  async close(): Promise<void> {
    await this.app?.stop();
    await this.sim?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** What a process holds and loses at a restart. */
  resetProcess(): void {
    this.token = undefined;
    this.tokenReal = false;
    this.pausedUntil = 0;
    this.backoff = SUBMIT_BACKOFF;
    this.sftpUp = undefined;
    // Not notFound: SFTP errors are kept in the state file, across restarts.
    this.requests.clear();
    this.parseErrors = new Map(ENDPOINTS.map((e) => [e, 0]));
    this.runs = { success: 0, failure: 0 };
  }

  // ---- serving ------------------------------------------------------------------------------

  private next<K extends Ep | 'authSubmit' | 'files' | 'overwrite'>(p: PollPlan, k: K): Step[K][number] {
    const list = p.step[k] as Array<Step[K][number]>;
    return list[p.cursor[k]++ % list.length]!;
  }

  /** Records one answer: the rule serving it, the request expected, and what the exporter counts of it. */
  private serve(p: PollPlan, ep: Ep, path: string, http: number, body: string | undefined, v: Verdict, generated: boolean): void {
    if (body !== undefined) p.rules.push({ kind: 'body', status: http, body, match: path, remaining: 1 });
    p.expected.push(`${path} ${http}`);
    bump(this.requests, `${ep}|${http}`);
    if (v.kind === 'notJson' || v.kind === 'shape') this.parseErrors.set(ep, this.parseErrors.get(ep)! + 1);
    stats[generated ? 'generated' : 'simulator'][ep]++;
    if (generated) bump(stats.verdicts[ep], verdictKey(ep, http, v));
  }

  private fail(v: Verdict, http: number, auth: boolean, lost = false): CallError {
    return { status: v.kind === 'http' || v.kind === 'notJson' ? http : undefined, malformed: v.kind === 'notJson' || v.kind === 'shape', auth, lost };
  }

  /** POST authenticate: one answer; the token, or the error (the call that needed it fails with it). */
  private auth(p: PollPlan, succeed = false): CallError | undefined {
    const s: AuthSpec = p.step.calm || succeed ? { t: 'real' } : this.next(p, p.phase === 'submit' ? 'authSubmit' : 'auth');
    let http: number;
    let body: string;
    if (s.t === 'real') [http, body] = [200, JSON.stringify(this.fake.authenticate({ username: USER, password: PASSWORD }))];
    else [http, body] = renderAuth(s, ++this.seq);
    const v = judgeAuth(http, body);
    this.serve(p, 'auth', AUTH_PATH, http, body, v, s.t !== 'real');
    if (v.kind === 'ok') {
      this.token = v.token!;
      this.tokenReal = s.t === 'real';
      p.tokens.add(this.token);
      this.allTokens.add(this.token);
      return undefined;
    }
    this.token = undefined;
    return this.fail(v, http, true);
  }

  /** One answer of the query API to a request carrying `token`. */
  private answer(p: PollPlan, ep: 'submit' | 'status' | 'result', job: MJob, token: string): { http: number; v: Verdict; err?: CallError } {
    const guid = job.guid ?? '';
    if (ep === 'submit') return this.answerSubmit(p, job, token);
    if (ep === 'status') {
      const path = statusPath(guid);
      const s: StatusSpec = p.step.calm ? { t: 'real' } : this.next(p, 'status');
      let http: number;
      let body: string;
      if (s.t === 'real') [http, body] = this.realStatus(p, guid);
      else [http, body] = renderStatus(s, guid, token);
      const v = judgeStatus(http, body);
      this.serve(p, 'status', path, http, body, v, s.t !== 'real');
      if (v.kind === 'ok') return { http, v };
      return { http, v, err: this.fail(v, http, false, http === 500 && /could not get QueryRequest/i.test(detailOf(body, token))) };
    }
    // The result.
    const path = resultPath(guid);
    const s: ResultSpec = p.step.calm ? { t: 'real' } : this.next(p, 'result');
    let http: number;
    let body: string;
    let built: { paths: string[] | undefined } | undefined;
    if (s.t === 'real') [http, body] = this.realResult(p, job);
    else {
      const r = renderResult(s, guid, token, () => ++this.seq);
      [http, body, built] = [r.http, r.body, r.built];
      for (const f of r.files) {
        if (!f.missing) this.writeGenerated(p, f.path, QUERY.get(job.query)!);
        else stats.files.listedMissing++;
      }
    }
    const v = judgeResult(http, body, built);
    this.serve(p, 'result', path, http, body, v, s.t !== 'real');
    if (v.kind === 'ok' || v.kind === 'notFinished') return { http, v };
    return { http, v, err: this.fail(v, http, false) };
  }

  private answerSubmit(p: PollPlan, job: MJob, token: string): { http: number; v: Verdict; err?: CallError } {
    const q = QUERY.get(job.query)!;
    if (p.step.calm) {
      // Straight to the fake: it knows the token or answers 401; the guid is known after the poll.
      const http = this.tokenReal && this.token === token ? 201 : 401;
      const v: Verdict = http === 201 ? { kind: 'ok', id: '' } : { kind: 'http' };
      this.serve(p, 'submit', QUERY_PATH, http, undefined, v, false);
      return http === 201 ? { http, v } : { http, v, err: this.fail(v, http, false) };
    }
    const s = this.next(p, 'submit');
    let http: number;
    let body: string;
    if (s.t === 'real') {
      const { id } = this.fake.submit(USER, queryBody(q, job));
      this.fakeQueries++;
      this.upstream.set(id, { real: true, query: q.name, submittedAt: p.now });
      [http, body] = [201, JSON.stringify({ id })];
    } else [http, body] = renderSubmit(s, (shape) => this.freshId(shape), token);
    let v = judgeSubmit(http, body);
    // Ids are unique in a sequence (the same id twice would be two jobs reading one path at once).
    if (v.kind === 'ok' && s.t !== 'real' && this.upstream.has(v.id!)) {
      [http, body] = [201, JSON.stringify({ id: this.freshId('guid') })];
      v = judgeSubmit(http, body);
    }
    if (v.kind === 'ok' && s.t !== 'real') {
      const h = hash(v.id!);
      const outcome = (['Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Completed', 'Failed', 'Failed', 'Canceled', 'stuck'] as const)[h % 10]!;
      this.upstream.set(v.id!, { real: false, query: q.name, submittedAt: p.now, outcome, finishAt: p.now + ((h >>> 8) % 3) * M });
    }
    this.serve(p, 'submit', QUERY_PATH, http, body, v, s.t !== 'real');
    return v.kind === 'ok' ? { http, v } : { http, v, err: this.fail(v, http, false) };
  }

  private freshId(shape: IdShape): string {
    const n = ++this.seq;
    const make: Record<IdShape, () => string> = {
      guid: () => `${(n * 2654435761 >>> 0).toString(16).padStart(8, '0')}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`,
      len100: () => `L${n}_`.padEnd(100, 'Z'),
      digits: () => `${1_000_000 + n}`,
      under: () => `__-${n}-__`,
      short: () => ['-', '_', 'Z', '0', 'a-', '_9'].find((x) => !this.upstream.has(x)) ?? `s${n}`,
    };
    const id = make[shape]();
    return this.upstream.has(id) ? `${id}-${n}` : id;
  }

  /** The fake's own status answer (it writes a Completed query's files), or the made-up query's. */
  private realStatus(p: PollPlan, guid: string): [number, string] {
    const u = this.upstream.get(guid)!;
    if (u.real) {
      try {
        const a = this.fake.status(guid);
        this.takeFakeFiles(p);
        return [200, JSON.stringify(a)];
      } catch (e) {
        if (e instanceof IntelePeerApiError) return [e.status, JSON.stringify(e.body)];
        throw e;
      }
    }
    const status = u.outcome === 'stuck' || p.now < u.finishAt! ? 'Pending' : u.outcome!;
    return [200, JSON.stringify(status === 'Failed' ? { status, guid, messages: [NO_DATA_MESSAGE] } : { status, guid })];
  }

  private realResult(p: PollPlan, job: MJob): [number, string] {
    const guid = job.guid!;
    const u = this.upstream.get(guid)!;
    if (u.real) {
      try {
        const a = this.fake.result(guid);
        this.takeFakeFiles(p);
        return [200, JSON.stringify(a)];
      } catch (e) {
        if (e instanceof IntelePeerApiError) return [e.status, JSON.stringify(e.body)];
        throw e;
      }
    }
    if (u.outcome === 'stuck' || p.now < u.finishAt!) return [200, JSON.stringify({ status: NOT_FINISHED_SENTENCE, guid })];
    if (u.outcome !== 'Completed') return [200, JSON.stringify({ status: 'Process failed', guid })];
    if (!u.files) {
      const n = 1 + (hash(`${guid}|files`) % 3);
      u.files = Array.from({ length: n }, (_, i) => `made/${guid}/part${i}.csv.gz`);
      for (const f of u.files) this.writeGenerated(p, f, QUERY.get(u.query)!);
    }
    return [200, JSON.stringify({ status: `Process finished. Download: [${u.files.map((f) => `u'${f}'`).join(', ')}]`, guid })];
  }

  /** The files the fake wrote since last asked: kept as written, or replaced by generated ones. */
  private takeFakeFiles(p: PollPlan): void {
    const written = this.fake.writtenFiles();
    for (const w of written.slice(this.fakeFiles)) {
      const q = QUERY.get(this.upstream.get(w.guid)!.query)!;
      if (!p.step.calm && this.next(p, 'overwrite')) this.writeGenerated(p, w.path, q);
      else {
        this.files.set(w.path, readResult(readFileSync(join(this.sim.filesDir, w.path)), q));
        stats.files.real++;
      }
    }
    this.fakeFiles = written.length;
  }

  /** Writes a generated result file at `path` (a calm poll's: valid); the model's verdict is the construction's, checked against an independent parse. */
  private writeGenerated(p: PollPlan, path: string, q: QDef): void {
    let spec = this.next(p, 'files');
    if (p.step.calm) spec = { ...spec, kind: 'valid' };
    const { bytes, expect: want } = renderFile(spec, q);
    const parsed = readResult(bytes, q);
    if (spec.kind === 'garbage') this.files.set(path, parsed);
    else {
      if (!sameVerdict(want, parsed)) throw new Error(`generator self-check: a ${spec.kind} file reads ${JSON.stringify(parsed, (_k, x: unknown) => (x instanceof Map ? [...x] : x))}, built ${JSON.stringify(want, (_k, x: unknown) => (x instanceof Map ? [...x] : x))}`);
      this.files.set(path, want);
    }
    const abs = join(this.sim.filesDir, path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, bytes);
    bump(stats.files.generated, spec.kind);
  }

  // ---- the exporter's steps, as the model takes them ----------------------------------------

  /** One call of the query API: the token first (when there is none), once more after a 401. */
  private call(p: PollPlan, ep: 'submit' | 'result', job: MJob): { v?: Verdict; err?: CallError } {
    if (this.token === undefined) {
      const e = this.auth(p);
      if (e) return { err: e };
    }
    return this.attempts(p, ep, job, this.token!, this.answer(p, ep, job, this.token!));
  }

  /** A first answer and, after a 401, the new token and a second answer. */
  private attempts(p: PollPlan, ep: 'submit' | 'status' | 'result', job: MJob, used: string, a: { http: number; v: Verdict; err?: CallError }): { v?: Verdict; err?: CallError } {
    if (a.http !== 401) return a.err ? { err: a.err } : { v: a.v };
    stats.reauth++;
    if (this.token === used) this.token = undefined;
    const e = this.auth(p);
    if (e) return { err: e };
    const b = this.answer(p, ep, job, this.token!);
    return b.err ? { err: b.err } : { v: b.v };
  }

  private plan(now: number): void {
    const minute = Math.floor(now / M) * M;
    for (const q of QUERIES) {
      const st = this.q.get(q.name)!;
      const endAt = (tick: number) => Math.floor((tick - q.lag) / 1000) * 1000;
      if (st.planned === undefined) {
        st.lastTick = minute;
        st.planned = endAt(minute) - q.lookback;
        st.origin = st.planned;
        this.cut(q, st, endAt(minute), now);
        continue;
      }
      const last = st.lastTick ?? minute;
      // Every minute is a tick: the newest one since the last handled cuts up to its end.
      if (minute > last) this.cut(q, st, endAt(minute), now);
      st.lastTick = Math.max(last, minute);
    }
  }

  /** [planned, end) in intervals of at most max_interval, a queued last one grown first. */
  private cut(q: QDef, st: MQuery, end: number, now: number): void {
    while (st.planned! < end) {
      const last = this.jobs.findLast((j) => j.query === q.name);
      if (last && last.phase === 'queued' && last.to === st.planned && last.to - last.from < q.maxInterval) {
        last.to = Math.min(end, last.from + q.maxInterval);
        st.planned = last.to;
        continue;
      }
      const to = Math.min(end, st.planned! + q.maxInterval);
      this.jobs.push({ query: q.name, from: st.planned!, to, cutAt: now, phase: 'queued', downloadFailures: 0 });
      st.planned = to;
    }
  }

  private resubmit(job: MJob, reason: RetryReason): void {
    this.q.get(job.query)!.retries[reason]++;
    bump(stats.retried, reason);
    job.phase = 'queued';
    delete job.guid;
    delete job.submittedAt;
    job.downloadFailures = 0;
  }

  private count(job: MJob, now: number, tally?: { events: Map<string, number>; durations: Map<string, number> }): void {
    const st = this.q.get(job.query)!;
    if (tally) {
      for (const [k, n] of tally.events) {
        bump(st.events, k, n);
        stats.intervals.events += n;
      }
      for (const [k, n] of tally.durations) bump(st.durations, k, n);
      st.data++;
      stats.intervals.data++;
    } else {
      st.noData++;
      stats.intervals.noData++;
    }
    st.lastCounted = now;
    this.jobs = this.jobs.filter((j) => j !== job);
  }

  /** Follows the running jobs: one status read each (concurrent: a token asked for once, first answers rendered with it). */
  private follow(p: PollPlan): void {
    const running = this.jobs.filter((j) => j.phase === 'running' && j.guid !== undefined);
    if (running.length === 0) return;
    let shared: CallError | undefined;
    if (this.token === undefined) shared = this.auth(p);
    const used = this.token;
    const firsts = running.map((job) => (shared ? undefined : this.answer(p, 'status', job, used!)));
    // Every read answered 401 asks for a new token; they share one authentication when it
    // succeeds, whichever comes first. When two or more race, the test makes it succeed (a failed
    // one would leave the others' share to timing).
    const n401 = firsts.filter((a) => a?.http === 401).length;
    let renewed: { err?: CallError } | undefined;
    const outcomes = running.map((job, i): { v?: Verdict; err?: CallError } => {
      if (shared) return { err: shared };
      const a = firsts[i]!;
      if (a.http !== 401) return a.err ? { err: a.err } : { v: a.v };
      stats.reauth++;
      if (!renewed) {
        if (this.token === used) this.token = undefined;
        renewed = { err: this.auth(p, n401 >= 2) };
      }
      if (renewed.err) return { err: renewed.err };
      const b = this.answer(p, 'status', job, this.token!);
      return b.err ? { err: b.err } : { v: b.v };
    });
    running.forEach((job, i) => {
      const st = this.q.get(job.query)!;
      const o = outcomes[i]!;
      if (o.err) {
        if (o.err.lost) {
          stats.lost++;
          st.failures.lost++;
          this.resubmit(job, 'lost');
        } else {
          st.failures.status++;
          p.errors++;
        }
        return;
      }
      const status = o.v!.status!;
      if (status === 'Pending' && p.now - job.submittedAt! >= QUERY_TIMEOUT) {
        st.failures.timeout++;
        this.resubmit(job, 'timeout');
      } else if (status === 'Completed') job.phase = 'downloading';
      else if (status === 'Failed') this.count(job, p.now);
      else if (status === 'Canceled') {
        st.failures.canceled++;
        if (job.to - job.from >= 2 * M) {
          const mid = job.from + Math.floor((job.to - job.from) / 2 / 1000) * 1000;
          const second: MJob = { ...job, from: mid, phase: 'queued', downloadFailures: 0 };
          delete second.guid;
          delete second.submittedAt;
          job.to = mid;
          this.jobs.splice(this.jobs.indexOf(job) + 1, 0, second);
        }
        this.resubmit(job, 'canceled');
      }
    });
  }

  /** Reads the finished jobs' results, then their files in one SFTP session. */
  private download(p: PollPlan): void {
    const ready = this.jobs.filter((j) => j.phase === 'downloading' && j.guid !== undefined).sort((a, b) => a.from - b.from);
    const paths = new Map<MJob, string[]>();
    for (const job of ready) {
      const st = this.q.get(job.query)!;
      const o = this.call(p, 'result', job);
      if (o.err) {
        p.errors++;
        // A finished query whose answer names no readable file: like a corrupt file. Any other failure is a failed read.
        const corrupt = o.err.malformed && (!o.err.auth || KNOWN_BUGS.authMalformedIsCorruptResult);
        if (!corrupt) {
          st.failures.status++;
          continue;
        }
        st.failures.corrupt++;
        job.downloadFailures++;
        if (job.downloadFailures >= MAX_DOWNLOAD_ATTEMPTS) this.resubmit(job, 'corrupt');
        continue;
      }
      if (o.v!.kind === 'ok') paths.set(job, o.v!.paths!);
    }
    if (paths.size === 0) return;
    stats.sessions++;
    this.sftpUp = 1;
    for (const [job, files] of paths) {
      const st = this.q.get(job.query)!;
      const tally = { events: new Map<string, number>(), durations: new Map<string, number>() };
      let failed: 'download' | 'corrupt' | undefined;
      for (const f of files) {
        const v = this.files.get(f);
        stats.files.read++;
        if (!v) {
          failed = 'download';
          this.notFound++;
          break;
        }
        if (!v.ok) {
          failed = 'corrupt';
          break;
        }
        for (const [k, n] of v.events) bump(tally.events, k, n);
        for (const [k, n] of v.durations) bump(tally.durations, k, n);
      }
      if (failed) {
        stats.files[failed === 'download' ? 'missing' : 'corrupt']++;
        p.errors++;
        job.downloadFailures++;
        st.failures[failed]++;
        if (job.downloadFailures >= MAX_DOWNLOAD_ATTEMPTS) this.resubmit(job, failed);
        continue;
      }
      this.count(job, p.now, tally);
    }
  }

  /** Submits queued intervals, oldest first, while a slot is free. */
  private submit(p: PollPlan): void {
    if (p.now < this.pausedUntil) return;
    const queued = this.jobs.filter((j) => j.phase === 'queued').sort((a, b) => a.from - b.from || a.query.localeCompare(b.query));
    for (const job of queued) {
      if (this.jobs.filter((j) => j.phase === 'running').length >= MAX_RUNNING) return;
      if (job.notBefore !== undefined && p.now < job.notBefore) continue;
      const st = this.q.get(job.query)!;
      const o = this.call(p, 'submit', job);
      if (o.err) {
        const reason: FailureReason = o.err.status === 429 ? 'throttled' : o.err.status === 400 ? 'rejected' : 'submit';
        st.failures[reason]++;
        if (reason === 'rejected') {
          job.refusals = (job.refusals ?? 0) + 1;
          job.notBefore = p.now + Math.min(SUBMIT_BACKOFF_MAX, SUBMIT_BACKOFF * 2 ** (job.refusals - 1));
          p.errors++;
          continue;
        }
        this.pausedUntil = p.now + this.backoff;
        this.backoff = Math.min(SUBMIT_BACKOFF_MAX, this.backoff * 2);
        if (reason !== 'throttled') p.errors++;
        return;
      }
      this.backoff = SUBMIT_BACKOFF;
      delete job.notBefore;
      delete job.refusals;
      job.guid = o.v!.id!;
      job.phase = 'running';
      job.submittedAt = p.now;
      if (p.step.calm) p.passThrough.push(job);
    }
  }

  // ---- a poll ---------------------------------------------------------------------------------

  async poll(st: Step): Promise<void> {
    this.clock.advance(st.advance);
    const now = this.clock.now();
    const p: PollPlan = {
      step: st, now, rules: [], expected: [], errors: 0, passThrough: [], tokens: new Set(this.token ? [this.token] : []),
      cursor: { auth: 0, authSubmit: 0, submit: 0, status: 0, result: 0, files: 0, overwrite: 0 }, phase: 'follow',
    };
    this.plan(now);
    this.follow(p);
    p.phase = 'download';
    this.download(p);
    p.phase = 'submit';
    this.submit(p);
    // Longest match first: a request takes its own path's rule, never a shorter path's it contains.
    this.sim.faults.set(p.rules.map((r, i) => [r, i] as const).sort((a, b) => b[0].match!.length - a[0].match!.length || a[1] - b[1]).map(([r]) => r));
    this.sim.requests.length = 0;
    const result = await this.app.runner.run(C);
    stats.polls++;
    stats.runs[result === 'success' ? 'success' : 'failure']++;
    expect(this.sim.faults.list(), 'answers never asked for: the exporter did not make the requests the model expects').toEqual([]);
    expect(this.sim.requests.map((r) => `${r.path} ${r.status}`).sort(), 'the requests made').toEqual([...p.expected].sort());
    // The guids the fake gave the submits that reached it, in order; the intervals it was asked for are the jobs'.
    if (p.passThrough.length > 0) {
      const fresh = this.fake.queries().slice(this.fakeQueries);
      expect(fresh.map((f) => [f.from, f.to]), 'the intervals submitted to the fake').toEqual(p.passThrough.map((j) => [j.from, j.to]));
      fresh.forEach((f, i) => {
        const job = p.passThrough[i]!;
        job.guid = f.guid;
        this.upstream.set(f.guid, { real: true, query: job.query, submittedAt: now });
      });
      this.fakeQueries += fresh.length;
    }
    this.runs[p.errors > 0 ? 'failure' : 'success']++;
    expect(result, 'the poll fails exactly when a read, a file or a submit failed').toBe(p.errors > 0 ? 'failure' : 'success');
    stats.maxJobs = Math.max(stats.maxJobs, this.jobs.length);
    await this.check(p);
  }

  /** The exposition, the landing page, the logs and the state file against the model. */
  async check(p: PollPlan): Promise<void> {
    const exposition = await this.app.text();
    const samples = parseExposition(exposition);
    const seen = new Set<string>();
    for (const s of samples) {
      const k = `${s.name}${JSON.stringify(s.labels)}`;
      if (seen.has(k)) expect.fail(`series served twice: ${k}`);
      seen.add(k);
      if (!s.name.startsWith('intelepeer_') && !s.name.startsWith('conviva_exporter_')) continue;
      if (!Number.isFinite(s.value)) expect.fail(`${k} = ${s.value}`);
      if (!/_(total|count|bucket|sum)$/.test(s.name)) continue;
      const before = this.totals.get(k) ?? 0;
      if (s.value < before) expect.fail(`${k} decreased from ${before} to ${s.value}`);
      this.totals.set(k, s.value);
      stats.countersChecked++;
    }
    const get = byName(samples);
    const one = (name: string, match: Record<string, string>) => get(name, match).reduce((a, s) => a + s.value, 0);
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const q of QUERIES) {
      const st = this.q.get(q.name)!;
      const l = { query: q.name };
      const series = (name: string) => {
        const out: Record<string, number> = {};
        for (const s of get(name, l)) {
          if (s.labels.event !== q.event) expect.fail(`${name} of ${q.name} with event ${s.labels.event}`);
          for (const other of GROUP_LABELS) if (!q.labels.includes(other) && (s.labels[other] ?? '') !== '') expect.fail(`${name} of ${q.name} with ${other}="${s.labels[other]}"`);
          out[JSON.stringify(q.labels.map((x) => s.labels[x] ?? ''))] = s.value;
        }
        return out;
      };
      const mine = this.jobs.filter((j) => j.query === q.name);
      got[q.name] = {
        events: series('intelepeer_events_total'),
        durations: q.hist ? series('intelepeer_event_duration_seconds_count') : {},
        counted: { data: one('intelepeer_query_intervals_counted_total', { ...l, result: 'data' }), no_data: one('intelepeer_query_intervals_counted_total', { ...l, result: 'no_data' }) },
        failures: Object.fromEntries(FAILURE_REASONS.map((r) => [r, one('intelepeer_query_failures_total', { ...l, reason: r })])),
        retries: Object.fromEntries(RETRY_REASONS.map((r) => [r, one('intelepeer_query_intervals_retried_total', { ...l, reason: r })])),
        jobs: Object.fromEntries(PHASES.map((ph) => [ph, one('intelepeer_query_jobs', { ...l, phase: ph })])),
        countedUntil: one('intelepeer_query_counted_until_timestamp_seconds', l),
        oldest: one('intelepeer_query_oldest_job_age_seconds', l),
        lastCounted: get('intelepeer_query_last_counted_timestamp_seconds', l).map((s) => s.value),
      };
      want[q.name] = {
        events: Object.fromEntries(st.events),
        durations: q.hist ? Object.fromEntries(st.durations) : {},
        counted: { data: st.data, no_data: st.noData },
        failures: st.failures,
        retries: st.retries,
        jobs: Object.fromEntries(PHASES.map((ph) => [ph, mine.filter((j) => j.phase === ph).length])),
        countedUntil: (mine.length > 0 ? Math.min(...mine.map((j) => j.from)) : st.planned!) / 1000,
        oldest: mine.length === 0 ? 0 : Math.max(0, p.now - Math.min(...mine.map((j) => j.cutAt))) / 1000,
        lastCounted: st.lastCounted === undefined ? [] : [st.lastCounted / 1000],
      };
    }
    for (const ep of ENDPOINTS) {
      const l = { api: API[ep], endpoint: EP[ep] };
      got[ep] = {
        parseErrors: one('conviva_exporter_parse_errors_total', l),
        requests: Object.fromEntries(get('conviva_exporter_http_requests_total', l).filter((s) => s.value > 0).map((s) => [s.labels.code, s.value])),
      };
      want[ep] = {
        parseErrors: this.parseErrors.get(ep),
        requests: Object.fromEntries([...this.requests].filter(([k]) => k.startsWith(`${ep}|`)).map(([k, n]) => [k.split('|')[1], n])),
      };
    }
    got.runs = { success: one('conviva_exporter_collector_runs_total', { collector: C, result: 'success' }), failure: one('conviva_exporter_collector_runs_total', { collector: C, result: 'failure' }) };
    want.runs = this.runs;
    got.sftp = {
      up: get('intelepeer_sftp_up').map((s) => s.value),
      errors: Object.fromEntries(SFTP_REASONS.filter((r) => !(r === 'not_found' && KNOWN_BUGS.notFoundUncounted)).map((r) => [r, one('intelepeer_sftp_errors_total', { reason: r })])),
    };
    want.sftp = {
      up: this.sftpUp === undefined ? [] : [this.sftpUp],
      errors: Object.fromEntries(SFTP_REASONS.filter((r) => !(r === 'not_found' && KNOWN_BUGS.notFoundUncounted)).map((r) => [r, r === 'not_found' ? this.notFound : 0])),
    };
    const stateText = readFileSync(this.statePath, 'utf8');
    const state = JSON.parse(stateText) as { collectors: Record<string, { state: { jobs: MJob[] } }> };
    const jobView = (j: MJob) => [j.query, j.from, j.to, j.cutAt, j.phase, j.guid ?? null, j.submittedAt ?? null, j.downloadFailures, j.notBefore ?? null, j.refusals ?? null];
    got.jobs = state.collectors[C]!.state.jobs.map(jobView);
    want.jobs = this.jobs.map(jobView);
    expect(got).toEqual(want);
    // The secrets in play: in no log line, not on /metrics or the landing page, not in the state file.
    const page = renderLandingPage(this.app.runner.status(), VERSION);
    const fresh = this.lines.slice(this.scanned);
    for (const line of fresh) if (line.includes('"msg":"collector run failed"')) expect.fail(`the collector threw: ${line.slice(0, 500)}`);
    this.scan([...p.tokens], [['the log', fresh.join('\n')], ['/metrics', exposition], ['the landing page', page], ['the state file', stateText]]);
    stats.linesScanned += fresh.length;
    stats.pagesScanned += 3;
    this.scanned = this.lines.length;
  }

  /** Fails when a secret (the passwords, the tokens given, raw or base64'd) is in one of the texts. */
  scan(tokens: string[], texts: Array<[string, string]>): void {
    const secrets = [PASSWORD, b64(PASSWORD), b64(`${USER}:${PASSWORD}`), SFTP_PASSWORD, b64(SFTP_PASSWORD)];
    // Tokens of fewer than 8 characters are words that appear anywhere.
    for (const t of tokens) if (t.length >= 8) secrets.push(t, b64(t), b64(`Bearer ${t}`).replace(/=+$/, ''));
    for (const [where, t] of texts) {
      for (const s of secrets) {
        const at = t.indexOf(s);
        if (at >= 0) expect.fail(`a secret (${s.slice(0, 40)}) is in ${where}: ${t.slice(Math.max(0, t.lastIndexOf('\n', at) + 1), at + 200).slice(0, 600)}`);
      }
    }
  }

  /** After the restart: the whole log, /metrics, the landing page and the state file against every token of the sequence. */
  async finalScan(): Promise<void> {
    const page = renderLandingPage(this.app.runner.status(), VERSION);
    this.scan([...this.allTokens], [['the log', this.lines.join('\n')], ['/metrics', await this.app.text()], ['the landing page', page], ['the state file', readFileSync(this.statePath, 'utf8')]]);
  }
}

const VALID_FILE: FileSpec = { kind: 'valid', rows: [[0, 1, 2, 3, 4, 5], [7, 3, 9, 1, 0, 2]], eol: '\r\n', bom: false, quoteAll: false, order: 0, extra: 0, blank: false, finalEol: true, at: 0, junk: [] };
const CALM: Omit<Step, 'advance'> = { calm: true, auth: [{ t: 'real' }], authSubmit: [{ t: 'real' }], submit: [{ t: 'real' }], status: [{ t: 'real' }], result: [{ t: 'real' }], files: [VALID_FILE], overwrite: [false] };

/** One sequence: a fresh simulator and exporter, the steps' polls, a restart, two calm polls. */
async function runSequence(steps: Step[], seed: number): Promise<void> {
  stats.sequences++;
  const s = new Sequence(seed);
  try {
    await s.start();
    for (const st of steps) await s.poll(st);
    // A restart adopts what the hostile answers left in the state file (jobs in every phase, odd
    // guids, every count); calm polls of IntelePeer's own answers go on from there.
    await s.restart();
    await s.poll({ ...CALM, advance: 60_000 });
    await s.poll({ ...CALM, advance: 60_000 });
    await s.finalScan();
  } finally {
    await s.close();
  }
}


// ---------------------------------------------------------------------------------------------
// The client's parsers alone: the same generated answers, through the real HttpClient (its JSON
// reading, error statuses, redaction, metrics), TokenSource and InsightsClient, against a plain
// HTTP server on loopback serving the generated answers. A poll of the whole exporter costs tens
// of milliseconds (the simulator, SSH, the state file written with fsync after every step); a call
// here costs about a millisecond, so every parser gets its 10,000 answers here too.

/**
 * One run of the client: lists of generated answers, used in turn by a script of calls (each a
 * submit, a status read or a result read; some forget the token first, so the call asks for one).
 * The lists are short and reused with fresh ids, tokens and guids: generating answers costs more
 * than reading them.
 */
interface ClientRun {
  auth: AuthSpec[];
  submit: SubmitSpec[];
  status: StatusSpec[];
  result: ResultSpec[];
  /** Drives the script: which call, and whether the token is forgotten first. */
  seed: number;
  calls: number;
}
const generatedOnly = <T extends { t: string }>(a: fc.Arbitrary<T>) => a.filter((x) => x.t !== 'real');
const clientRun: fc.Arbitrary<ClientRun> = fc.record({
  // Half the tokens good: a failed token answer fails its call, and the calls want answers too.
  auth: fc.array(fc.oneof({ weight: 1, arbitrary: fc.record({ t: fc.constant('token' as const), http: okHttp, shape: tokenShape, extra: extraFields, first: fc.boolean() }) }, { weight: 1, arbitrary: generatedOnly(authSpec) }), { minLength: 20, maxLength: 40 }),
  submit: fc.array(generatedOnly(submitSpec), { minLength: 20, maxLength: 40 }),
  status: fc.array(generatedOnly(statusSpec), { minLength: 20, maxLength: 40 }),
  result: fc.array(generatedOnly(resultSpec), { minLength: 20, maxLength: 40 }),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  calls: fc.integer({ min: 800, max: 1200 }),
});

const clientStats = {
  runs: 0,
  calls: 0,
  generated: { auth: 0, submit: 0, status: 0, result: 0 } as Record<Ep, number>,
  verdicts: { auth: new Map<string, number>(), submit: new Map<string, number>(), status: new Map<string, number>(), result: new Map<string, number>() } as Record<Ep, Map<string, number>>,
  errors: new Map<string, number>(),
};

/** What a call must end in: a value, or an error with its code and status (and which API failed). */
type Outcome = { value: unknown } | { error: { api: string; code: string; status: number | undefined } };
const errorCode = (v: Verdict, http: number) => (v.kind === 'http' ? (http === 429 ? 'UPSTREAM_THROTTLED' : http === 401 || http === 403 ? 'UPSTREAM_AUTH' : 'UPSTREAM_STATUS') : 'UPSTREAM_MALFORMED');

async function runClient(run: ClientRun): Promise<void> {
  clientStats.runs++;
  const registry = new Registry();
  const metrics = createHttpMetrics(registry);
  const parseErrors = new Counter({ name: 'parse_errors_total', help: 'parse errors', labelNames: ['api', 'endpoint'], registers: [registry] });
  const settings = { connectTimeoutMs: 5000, headersTimeoutMs: 5000, bodyTimeoutMs: 5000, maxRetries: 0, retryBaseDelayMs: 1, retryMaxDelayMs: 1, concurrency: 4, metrics, parseErrors, log: pino({ level: 'silent' }) };
  // The answers, in the order the model expects the requests, served by a plain HTTP server on
  // loopback (the calls are made one at a time, so the order holds).
  const queue: Array<{ path: string; status: number; body: string }> = [];
  const asked: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = queue.shift();
      asked.push(`${req.method} ${req.url}`);
      if (!a) res.writeHead(599).end('no answer prepared');
      else if (req.url !== a.path) res.writeHead(598).end(`asked ${req.url}, expected ${a.path}`);
      else res.writeHead(a.status).end(a.status === 204 ? undefined : a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const authHttp = new HttpClient({ ...settings, api: API.auth, baseUrl: `${base}${AUTH_PATH}` });
  const http = new HttpClient({ ...settings, api: API.submit, baseUrl: `${base}${QUERY_PATH}` });
  const tokens = new TokenSource(authHttp, USER, PASSWORD, new ManualClock(T0));
  const client = new InsightsClient(http, tokens);
  const signal = new AbortController().signal;
  const parse = new Map<Ep, number>(ENDPOINTS.map((e) => [e, 0]));
  let token: string | undefined;
  let n = 0;
  let r = run.seed;
  const random = () => ((r = (Math.imul(r, 48271) >>> 0) % 2147483647) / 2147483647);
  const cursor = { auth: 0, submit: 0, status: 0, result: 0 };
  const take = <K extends keyof typeof cursor>(k: K): ClientRun[K][number] => run[k][cursor[k]++ % run[k].length]!;
  try {
    for (let call = 0; call < run.calls; call++) {
      clientStats.calls++;
      const ep = (['submit', 'status', 'result'] as const)[Math.floor(random() * 3)]!;
      const op = { ep, forget: random() < 0.2 };
      const guid = `g${++n}-0000-4000-8000-00000000000${n % 10}`;
      const path = op.ep === 'submit' ? QUERY_PATH : op.ep === 'status' ? statusPath(guid) : resultPath(guid);
      const inPlay: string[] = [];
      if (op.forget && token !== undefined) {
        tokens.invalidate(token);
        token = undefined;
      }
      const judge = (ep: Ep, status: number, body: string, built?: { paths: string[] | undefined }) => {
        const v = ep === 'auth' ? judgeAuth(status, body) : ep === 'submit' ? judgeSubmit(status, body) : ep === 'status' ? judgeStatus(status, body) : judgeResult(status, body, built);
        clientStats.generated[ep]++;
        bump(clientStats.verdicts[ep], verdictKey(ep, status, v));
        if (v.kind === 'notJson' || v.kind === 'shape') parse.set(ep, parse.get(ep)! + 1);
        return v;
      };
      /** One token answer: undefined when it gave a token, else the outcome the call ends in. */
      const authenticate = (spec: AuthSpec): Outcome | undefined => {
        const [status, body] = renderAuth(spec as Exclude<AuthSpec, { t: 'real' }>, ++n);
        queue.push({ path: AUTH_PATH, status, body });
        const v = judge('auth', status, body);
        if (v.kind === 'ok') {
          token = v.token!;
          inPlay.push(token);
          return undefined;
        }
        token = undefined;
        return { error: { api: API.auth, code: errorCode(v, status), status: v.kind === 'http' || v.kind === 'notJson' ? status : undefined } };
      };
      /** One answer of the query API. */
      const answer = (spec: SubmitSpec | StatusSpec | ResultSpec): { status: number; outcome: Outcome } => {
        let status: number;
        let body: string;
        let built: { paths: string[] | undefined } | undefined;
        if (op.ep === 'submit') [status, body] = renderSubmit(spec as Exclude<SubmitSpec, { t: 'real' }>, (shape) => `${shape}-${++n}`.replace(/[^A-Za-z0-9_-]/g, '_'), token!);
        else if (op.ep === 'status') [status, body] = renderStatus(spec as Exclude<StatusSpec, { t: 'real' }>, guid, token!);
        else ({ http: status, body, built } = renderResult(spec as Exclude<ResultSpec, { t: 'real' }>, guid, token!, () => ++n));
        queue.push({ path, status, body });
        const v = judge(op.ep, status, body, built);
        if (v.kind === 'ok' || v.kind === 'notFinished') {
          const value = op.ep === 'submit' ? v.id : op.ep === 'result' ? v.paths : {
            status: v.status,
            messages: keptMessages(v.messages, token!),
          };
          return { status, outcome: { value } };
        }
        return { status, outcome: { error: { api: API[op.ep], code: errorCode(v, status), status: v.kind === 'http' || v.kind === 'notJson' ? status : undefined } } };
      };
      // The model: a token first when there is none; the answer; after a 401, a new token and a second answer.
      let want: Outcome | undefined = token === undefined ? authenticate(take('auth')) : undefined;
      if (!want) {
        const used = token!;
        const first = answer(take(op.ep));
        want = first.outcome;
        if (first.status === 401) {
          if (token === used) token = undefined;
          want = authenticate(take('auth')) ?? answer(take(op.ep)).outcome;
        }
      }
      // The client.
      let got: Outcome;
      try {
        const value = op.ep === 'submit' ? await client.submit({ data: {} }, signal, Date.now() + 60_000) : op.ep === 'status' ? await client.status(guid, signal, Date.now() + 60_000) : await client.result(guid, signal, Date.now() + 60_000);
        got = { value };
      } catch (e) {
        if (!(e instanceof UpstreamError)) throw e;
        got = { error: { api: e.api ?? '', code: e.code, status: e.status } };
        bump(clientStats.errors, e.code);
        // No secret in what is logged of an error: its message, detail and causes.
        const told = [e.message, e.detail ?? '', String((e as { cause?: unknown }).cause ?? '')].join('\n');
        for (const secret of [PASSWORD, b64(PASSWORD), b64(`${USER}:${PASSWORD}`), ...inPlay.filter((t) => t.length >= 8)]) {
          if (told.includes(secret)) expect.fail(`an error of ${op.ep} tells a secret (${secret.slice(0, 30)}): ${told.slice(0, 400)}`);
        }
      }
      if (JSON.stringify(got) !== JSON.stringify(want)) expect(got, `call ${call} (${op.ep}): ${JSON.stringify(asked.slice(-3))}`).toEqual(want);
      if (queue.length > 0) expect(queue, 'answers never asked for').toEqual([]);
    }
    const counted = await registry.getSingleMetric('parse_errors_total')!.get();
    const byEndpoint = Object.fromEntries(counted.values.map((v) => [v.labels.endpoint, v.value]));
    expect(Object.fromEntries(ENDPOINTS.map((e) => [EP[e], byEndpoint[EP[e]] ?? 0]))).toEqual(Object.fromEntries(ENDPOINTS.map((e) => [EP[e], parse.get(e)])));
  } finally {
    await Promise.all([authHttp.close(), http.close()]);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const figure = (m: Map<string, number>, keys: string[]) => keys.map((k) => fmt(m.get(k) ?? 0)).join(' / ');
const sum = (m: Map<string, number>, keys: readonly string[]) => keys.reduce((a, k) => a + (m.get(k) ?? 0), 0);
const done = { exporter: false, client: false };
const seconds = { exporter: 0, client: 0 };

describe('IntelePeer queries collector, property-based', () => {
  afterAll(() => {
    if (!done.exporter || !done.client) return;
    const v = stats.verdicts;
    const c = clientStats.verdicts;
    const files = stats.files.generated;
    report('intelepeer-bodies', {
      order: 6,
      title: 'Property-based: IntelePeer token, query and result answers, and result files',
      about: `\`test/faults/intelepeer-bodies.test.ts\`: fast-check generates answers to IntelePeer's four calls: the token
(tokens in base64url, hex, JWT form, of 8,192 characters, in Latin-1, of punctuation, the password itself; tokens
missing, empty, not strings, with white space, of 8,193 characters; bodies that are not JSON; 400, 401, 403, 429
and 5xx bodies echoing the password raw and base64'd), the submit (\`{"id"}\` with ids of 36 and 100 characters,
digits, \`-\`, \`_\`; ids too long, with slashes, dots, unicode, NUL, numbers, \`null\`, arrays; the documented 400
bodies, 429, 401, 5xx; 201 not JSON), the status (Pending, Completed, Failed and Canceled with extra fields and
messages; unknown statuses, wrong types; the documented unknown-guid 500 \`could not get QueryRequest object\`,
within and beyond the 200 characters the exporter reads; other 500s, 401s) and the result (the Python-list
sentence of 1 to 5 paths, \`u\` prefix or not, single or double quotes, escaped quotes and backslashes, unicode,
spaces, commas, brackets, \`./\` and \`//\`; an empty list; paths with \`..\`, absolute, with control characters or
over 1,024 characters, which must be refused; "has not finish yet"; garbage); and the \`.csv.gz\` result files
(CSV with quotes, commas, CR/LF inside quoted values, unicode, a BOM, empty values, extra columns, the columns in
another order, two gzip members, 1,500 rows; a header without a field asked for, a row of another width, a quote
left open, a stray quote, not gzip, gzip cut short, trailing junk, an empty file, random bytes; a header alone and
an empty gzip, counted as intervals of no event). The simulator serves each answer with a fault rule in place of
the fake's, and its embedded SFTP server the files (some in place of those the fake wrote), to the real exporter
(engine inline, state file, manual clock, four queries, ten running at once); each sequence ends with a restart
from the state file and calm polls of the fake's own answers. After every poll: no crash or unhandled rejection,
exactly the requests a reference model expects, an exposition that parses with no series twice, no counter lower
than before, and every counter as the model says: \`intelepeer_events_total\` and the duration histograms' counts
per label set (from the files as csv-parse/sync reads them), intervals counted, failures by reason, intervals
submitted again, jobs by phase, the counted-until and oldest-job gauges, \`parse_errors_total\` and
\`http_requests_total\` by endpoint and code, partly failed polls; the jobs in the state file are the model's; the
IntelePeer password, the SFTP password and every Bearer token are in no log line, not on \`/metrics\`, the landing
page or in the state file. A poll of the whole exporter costs tens of milliseconds (HTTP and SSH on loopback, the
state file written with fsync at each step), so the same generators also feed the client alone (HttpClient,
TokenSource and InsightsClient, against a plain HTTP server on loopback): 10,000+ answers to each call, each
read as the model says, no secret in an error.`,
      rows: [
        ['sequences (fresh simulator, SFTP server and exporter each, restarted once)', fmt(stats.sequences)],
        ['polls that succeeded / partly failed', `${fmt(stats.runs.success)} / ${fmt(stats.runs.failure)}`],
        ['token answers generated / the fake\'s own', `${fmt(stats.generated.auth)} / ${fmt(stats.simulator.auth)}`],
        ['generated token answers: a token / error status / not JSON / no usable token', figure(v.auth, ['ok', 'http', 'notJson', 'shape'])],
        ['submit answers generated / the fake\'s own', `${fmt(stats.generated.submit)} / ${fmt(stats.simulator.submit)}`],
        ['generated submit answers: an id / 400 / 429 / other error status / not JSON / no usable id', figure(v.submit, ['ok', 'http400', 'http429', 'http', 'notJson', 'shape'])],
        ['status answers generated / IntelePeer\'s own (the fake\'s, or for a query a generated answer made up)', `${fmt(stats.generated.status)} / ${fmt(stats.simulator.status)}`],
        ['generated status answers: Pending / Completed / Failed / Canceled / error status / not JSON / no known status', figure(v.status, ['Pending', 'Completed', 'Failed', 'Canceled', 'http', 'notJson', 'shape'])],
        ['unknown-guid answers taken for a query IntelePeer lost', fmt(stats.lost)],
        ['result answers generated / IntelePeer\'s own', `${fmt(stats.generated.result)} / ${fmt(stats.simulator.result)}`],
        ['generated result answers: download list / not finished / error status / not JSON / no sentence or no usable list', figure(v.result, ['ok', 'notFinished', 'http', 'notJson', 'shape'])],
        ['401s answered by a new token', fmt(stats.reauth)],
        [`result files generated, read as counted (${FILE_KINDS.counted.join(', ')})`, `${fmt(sum(files, FILE_KINDS.counted))}: ${figure(files, [...FILE_KINDS.counted])}`],
        [`result files generated, corrupt (${FILE_KINDS.corrupt.join(', ')})`, `${fmt(sum(files, FILE_KINDS.corrupt))}: ${figure(files, [...FILE_KINDS.corrupt])}`],
        ['result files as the fake wrote them / listed but not written', `${fmt(stats.files.real)} / ${fmt(stats.files.listedMissing)}`],
        ['SFTP sessions', fmt(stats.sessions)],
        ['result file reads: read in full / corrupt / no such file', `${fmt(stats.files.read - stats.files.corrupt - stats.files.missing)} / ${fmt(stats.files.corrupt)} / ${fmt(stats.files.missing)}`],
        ['intervals counted with data / of no data (Failed); events counted', `${fmt(stats.intervals.data)} / ${fmt(stats.intervals.noData)}; ${fmt(stats.intervals.events)}`],
        ['intervals submitted again: canceled / lost / timeout / download / corrupt', figure(stats.retried, [...RETRY_REASONS])],
        ['most intervals waiting at once', fmt(stats.maxJobs)],
        ['counter, bucket and histogram values checked never to decrease', fmt(stats.countersChecked)],
        ['log lines / pages scanned for the passwords and tokens (raw, base64) / found', `${fmt(stats.linesScanned)} / ${fmt(stats.pagesScanned)} / 0`],
        ['the client alone: calls / token, submit, status, result answers generated', `${fmt(clientStats.calls)} / ${ENDPOINTS.map((e) => fmt(clientStats.generated[e])).join(', ')}`],
        ['the client alone: token answers: a token / error status / not JSON / no usable token', figure(c.auth, ['ok', 'http', 'notJson', 'shape'])],
        ['the client alone: submit answers: an id / 400 / 429 / other error status / not JSON / no usable id', figure(c.submit, ['ok', 'http400', 'http429', 'http', 'notJson', 'shape'])],
        ['the client alone: status answers: Pending / Completed / Failed / Canceled / error status / not JSON / no known status', figure(c.status, ['Pending', 'Completed', 'Failed', 'Canceled', 'http', 'notJson', 'shape'])],
        ['the client alone: result answers: download list / not finished / error status / not JSON / no sentence or no usable list', figure(c.result, ['ok', 'notFinished', 'http', 'notJson', 'shape'])],
        ['seconds: the whole exporter / the client alone', `${seconds.exporter.toFixed(1)} / ${seconds.client.toFixed(1)}`],
        ['crashes, unhandled rejections, miscounts, secrets found', '0'],
      ],
    });
  });

  it('the whole exporter against the simulator: generated token, submit, status and result answers and 1,000+ result files, counted exactly, no crash, no secret leaked', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const t0 = performance.now();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 45, maxLength: 55 }), fc.integer({ min: 1, max: 1_000_000 }), async (steps, seed) => {
          await runSequence(steps, seed);
          expect(unhandled, 'unhandled rejections').toEqual([]);
        }),
        // Shrinking replays whole sequences against fresh exporters: slow, and the first
        // counterexample (with the failing assertion's diff) says enough.
        { numRuns: 10, seed: 20261130, endOnFailure: true },
      );
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    seconds.exporter = (performance.now() - t0) / 1000;
    expect(unhandled, 'unhandled rejections').toEqual([]);
    expect(sum(stats.files.generated, [...FILE_KINDS.counted, ...FILE_KINDS.corrupt]), 'result files generated').toBeGreaterThanOrEqual(1_000);
    done.exporter = true;
  });

  it('the client alone: 10,000+ generated answers to each of the four calls, read as the model says, no secret in an error', async () => {
    const t0 = performance.now();
    await fc.assert(
      fc.asyncProperty(clientRun, async (run) => runClient(run)),
      { numRuns: 38, seed: 20261201, endOnFailure: true },
    );
    seconds.client = (performance.now() - t0) / 1000;
    for (const e of ENDPOINTS) expect(clientStats.generated[e], `${e} answers`).toBeGreaterThanOrEqual(10_000);
    done.client = true;
  });
});

// Bugs this property found (see the report): each test states the documented behaviour and fails
// today; `it.fails` keeps the suite green and turns red once the bug is fixed (then make it `it`
// and set its KNOWN_BUGS flag to false, so the property covers it again).
describe('IntelePeer queries collector, regressions this test found (fixed)', () => {
  const SMALL_QUERY = '      - { name: exits, event: ApplicationExitEvent, schedule: "* * * * *", lag: 10m, initial_lookback: 1m, max_interval: 1m, group_by: [FlowName] }';
  /** One query, one interval: the first poll authenticates (`token`) and submits it (guid g1); the simulator's SFTP server serves the files. */
  async function small(token: string) {
    const dir = mkdtempSync(join(stateRoot, 'intelepeer-bodies-'));
    const clock = new ManualClock(T0);
    const sim = await startSimulator(clock, 3);
    const lines: string[] = [];
    const text = configText(dir).replace(/max_download_attempts: \d+/, 'max_download_attempts: 1').replace(/( {4}queries:\n)[\s\S]*$/, `$1${SMALL_QUERY}\n`);
    const app = await bootExporter(text, sim, clock, lines);
    const poll = async (advance: number, rules: FaultRule[]) => {
      clock.advance(advance);
      sim.faults.set(rules);
      sim.requests.length = 0;
      await app.runner.run(C);
      return byName(parseExposition(await app.text()));
    };
    await poll(0, [
      { kind: 'body', status: 200, body: JSON.stringify({ token }), match: AUTH_PATH, remaining: 1 },
      { kind: 'body', status: 201, body: '{"id":"g1"}', match: QUERY_PATH, remaining: 1 },
    ]);
    return {
      sim, lines, poll,
      fake: sim.fake<IntelePeerFake>('intelepeer'),
      async close() {
        await app.stop();
        await sim.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const value = (get: ReturnType<typeof byName>, name: string, labels: Record<string, string>) => get(name, labels).reduce((a, s) => a + s.value, 0);
  const q = { query: 'exits' };

  it('a token answer without a usable token, met while a result is read, is a failed read (reason="status"), not a corrupt result that uses up download attempts and submits the interval again', async () => {
    const s = await small('tok-aaaaaaaaaaaaaaaa');
    try {
      // The result read is answered 401; the new token's answer has none.
      const get = await s.poll(20_000, [
        { kind: 'body', status: 200, body: '{"status":"Completed","guid":"g1"}', match: statusPath('g1'), remaining: 1 },
        { kind: 'body', status: 401, body: '{"code":401,"message":"Unauthorized"}', match: resultPath('g1'), remaining: 1 },
        { kind: 'body', status: 200, body: '{"token":""}', match: AUTH_PATH, remaining: 1 },
      ]);
      expect(value(get, 'conviva_exporter_parse_errors_total', { api: API.auth, endpoint: EP.auth })).toBe(1);
      expect({
        status: value(get, 'intelepeer_query_failures_total', { ...q, reason: 'status' }),
        corrupt: value(get, 'intelepeer_query_failures_total', { ...q, reason: 'corrupt' }),
        retried: value(get, 'intelepeer_query_intervals_retried_total', { ...q, reason: 'corrupt' }),
        downloading: value(get, 'intelepeer_query_jobs', { ...q, phase: 'downloading' }),
      }).toEqual({ status: 1, corrupt: 0, retried: 0, downloading: 1 });
    } finally {
      await s.close();
    }
  });

  it('a token no HTTP header can hold (a NUL, beyond Latin-1) is not kept: the next poll authenticates again and submits', async () => {
    const s = await small('tok\u0000en-0123456789');
    try {
      // The submit could not be sent; a minute on, with IntelePeer's own answers, the interval goes out.
      await s.poll(60_000, []);
      expect(s.sim.requests.filter((r) => r.path === AUTH_PATH).length, 'authentications since the first poll').toBeGreaterThan(0);
      expect(s.fake.queries().length, 'queries submitted to IntelePeer').toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });

  it('the messages of a Failed status answer are not logged with the Bearer token they echo', async () => {
    const token = 'tok-secret-0123456789';
    const s = await small(token);
    try {
      await s.poll(20_000, [{ kind: 'body', status: 200, body: JSON.stringify({ status: 'Failed', guid: 'g1', messages: [`denied for Bearer ${token}`] }), match: statusPath('g1'), remaining: 1 }]);
      expect(s.lines.filter((l) => l.includes('"messages"')).length, 'the answer was read').toBeGreaterThan(0);
      expect(s.lines.filter((l) => l.includes(token))).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('a result file missing on the SFTP server counts in intelepeer_sftp_errors_total{reason="not_found"} (documented: "a result file missing")', async () => {
    const s = await small('tok-aaaaaaaaaaaaaaaa');
    try {
      const get = await s.poll(20_000, [
        { kind: 'body', status: 200, body: '{"status":"Completed","guid":"g1"}', match: statusPath('g1'), remaining: 1 },
        { kind: 'body', status: 200, body: `{"status":"Process finished. Download: [u'missing/none.csv.gz']","guid":"g1"}`, match: resultPath('g1'), remaining: 1 },
      ]);
      expect(value(get, 'intelepeer_query_failures_total', { ...q, reason: 'download' })).toBe(1);
      expect(value(get, 'intelepeer_sftp_errors_total', { reason: 'not_found' })).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('two submits answered with the same id (IntelePeer repeating itself) do not count one result twice', async () => {
    const dir = mkdtempSync(join(stateRoot, 'intelepeer-bodies-'));
    const clock = new ManualClock(T0);
    const sim = await startSimulator(clock, 3);
    // Two intervals to submit at the first poll.
    const text = configText(dir).replace(/( {4}queries:\n)[\s\S]*$/, `$1${SMALL_QUERY.replace('initial_lookback: 1m', 'initial_lookback: 2m')}\n`);
    const app = await bootExporter(text, sim, clock, []);
    try {
      sim.faults.set([
        { kind: 'body', status: 200, body: '{"token":"tok-aaaaaaaaaaaaaaaa"}', match: AUTH_PATH, remaining: 1 },
        { kind: 'body', status: 201, body: '{"id":"g1"}', match: QUERY_PATH, remaining: 2 },
      ]);
      await app.runner.run(C);
      const abs = join(sim.filesDir, 'r/one.csv.gz');
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, gzipSync('FlowName\r\nMain IVR\r\n'));
      clock.advance(20_000);
      sim.faults.set([
        { kind: 'body', status: 200, body: '{"status":"Completed","guid":"g1"}', match: statusPath('g1'), remaining: 2 },
        { kind: 'body', status: 200, body: `{"status":"Process finished. Download: [u'r/one.csv.gz']","guid":"g1"}`, match: resultPath('g1'), remaining: 2 },
      ]);
      await app.runner.run(C);
      const get = byName(parseExposition(await app.text()));
      expect(get('intelepeer_events_total', { query: 'exits', flow_name: 'Main IVR' }).map((x) => x.value), 'the one event of the one file').toEqual([1]);
    } finally {
      await app.stop();
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
