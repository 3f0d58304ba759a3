import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import bcrypt from 'bcryptjs';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { BasicAuth, createBcryptThread, parseBasicAuth, type PasswordChecker } from '../../src/server/basic-auth.js';
import { Exposition } from '../../src/server/exposition.js';
import { loadWebConfig, WebConfigError } from '../../src/server/web-config.js';
import { subjectAltNames, WebServer } from '../../src/server/web-server.js';
import { parseExposition, value } from '../helpers/exposition.js';
import { requirePromtool } from '../helpers/promtool.js';
import type { LogLine } from '../helpers/stack.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';

// Cost 4: the cheapest bcrypt; the rules do not depend on the cost.
const PASSWORD = 'right horse battery';
const HASH = bcrypt.hashSync(PASSWORD, 4);
const OTHER_HASH = bcrypt.hashSync('another password', 4);
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

// Every file of this test lives under one temporary folder, removed at the end.
const root = mkdtempSync(join(tmpdir(), 'webcfg-'));
let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki(mkdtempSync(join(root, 'pki-')));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes `text` as web.yml in a new folder holding copies of the test PKI's files; returns its path. */
function webConfig(text: string): string {
  const dir = mkdtempSync(join(root, 'cfg-'));
  for (const f of ['ca.crt', 'server.crt', 'server.key', 'client.crt', 'other-ca.crt']) copyFileSync(join(pki.dir, f), join(dir, f));
  const path = join(dir, 'web.yml');
  writeFileSync(path, text);
  return path;
}

async function problemsOf(text: string): Promise<string[]> {
  try {
    await loadWebConfig(webConfig(text));
  } catch (e) {
    if (e instanceof WebConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected the web config to be refused');
}

const TLS = 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n';
const EXAMPLE = readFileSync(new URL('../../config/web-config.example.yml', import.meta.url), 'utf8');

describe('web config: what is accepted', () => {
  it('an empty file is plain HTTP without auth (as the toolkit)', async () => {
    const c = await loadWebConfig(webConfig(''));
    expect(c.tls).toBeUndefined();
    expect(c.users.size).toBe(0);
    expect(c.headers).toEqual({});
    expect(c.rateLimit).toBeUndefined();
  });

  it('the shipped example parses: TLS 1.2+, one user, two headers; relative paths from its own folder', async () => {
    const path = webConfig(EXAMPLE);
    const c = await loadWebConfig(path);
    expect(c.tls?.clientAuth).toBe('NoClientCert');
    expect(c.tls?.context.minVersion).toBe('TLSv1.2');
    expect(c.tls?.context.maxVersion).toBe('TLSv1.3');
    expect([...c.users.keys()]).toEqual(['prometheus']);
    expect(bcrypt.compareSync('example-password', c.users.get('prometheus')!)).toBe(true);
    expect(c.headers).toEqual({ 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'deny' });
    expect(c.files).toEqual([path, join(path, '../server.crt'), join(path, '../server.key')]);
  });

  it('reads YAML as yaml.v2 does: 1.1 booleans, any scalar as a string; inline PEM; client auth, ciphers and curves mapped to OpenSSL names', async () => {
    const cert = readFileSync(pki.serverCert, 'utf8').replace(/\n/g, '\n    ');
    const key = readFileSync(pki.serverKey, 'utf8').replace(/\n/g, '\n    ');
    const c = await loadWebConfig(
      webConfig(`tls_server_config:
  cert: |
    ${cert}
  key: |
    ${key}
  client_auth_type: RequireClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
  prefer_server_cipher_suites: off
  client_allowed_sans: [prometheus.example]
http_server_config:
  http2: no
basic_auth_users:
  1234: ${HASH}
`),
    );
    expect(c.tls?.clientAuth).toBe('RequireAnyClientCert');
    expect(c.tls?.allowedSans).toEqual(['prometheus.example']);
    expect(c.tls?.context.minVersion).toBe('TLSv1.3');
    expect(c.tls?.context.ciphers).toBe('ECDHE-ECDSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256');
    expect(c.tls?.context.ecdhCurve).toBe('X25519:P-256');
    expect(c.tls?.context.honorCipherOrder).toBe(false);
    expect(c.http2).toBe(false);
    expect([...c.users.keys()]).toEqual(['1234']);
  });

  it('rate_limit takes a Go duration or nanoseconds; an interval of 0 is no limit', async () => {
    expect((await loadWebConfig(webConfig('rate_limit: { interval: 1m30s, burst: 5 }'))).rateLimit).toEqual({ intervalMs: 90_000, burst: 5 });
    expect((await loadWebConfig(webConfig('rate_limit: { interval: 500000000, burst: 1 }'))).rateLimit).toEqual({ intervalMs: 500, burst: 1 });
    expect((await loadWebConfig(webConfig('rate_limit: { interval: 0, burst: 5 }'))).rateLimit).toBeUndefined();
  });
});

/**
 * Refused here, accepted by the toolkit: a file that cannot work as meant (checked against
 * promtool below). rate_limit is newer than promtool 2.42's toolkit, which refuses the key.
 */
const STRICTER_THAN_TOOLKIT = new Set([
  'verifying policy without a client CA',
  'client CA file without a certificate',
  'min above max',
  'a header value with a line break',
  'a bcrypt hash cut short',
]);
const NOT_IN_PROMTOOL_2_42 = new Set(['SANs without a client certificate policy', 'rate limit interval']);

const cases: Array<[string, string, string | ((dir: string) => string)]> = [
    ['unknown key (UnmarshalStrict)', 'tls_server_config:\n  cert_filse: server.crt\n', 'tls_server_config.cert_filse: unknown key (known: cert, key, client_ca, cert_file, key_file, client_auth_type, client_ca_file, cipher_suites, curve_preferences, min_version, max_version, prefer_server_cipher_suites, client_allowed_sans)'],
    ['unknown top-level key', 'basic_auth_user: {}\n', 'basic_auth_user: unknown key (known: tls_server_config, http_server_config, basic_auth_users, rate_limit)'],
    ['duplicate key', `${TLS}${TLS}`, 'yaml: Map keys must be unique at line 4, column 1'],
    ['not a mapping', 'junk\n', 'the file: expected a mapping with tls_server_config, http_server_config, basic_auth_users, rate_limit'],
    ['cert without key', 'tls_server_config:\n  cert_file: server.crt\n', 'tls_server_config.key_file: missing one of key or key_file'],
    ['key without cert', 'tls_server_config:\n  key_file: server.key\n', 'tls_server_config.cert_file: missing one of cert or cert_file'],
    ['client auth alone turns TLS on and needs a cert', 'tls_server_config:\n  client_auth_type: RequestClientCert\n  key_file: server.key\n', 'tls_server_config.cert_file: missing one of cert or cert_file'],
    ['cert file missing', 'tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n', (dir) => `tls_server_config.cert_file: cannot read ${join(dir, 'nope.crt')}: no such file or directory (ENOENT)`],
    ['cert file not PEM', 'tls_server_config:\n  cert_file: web.yml\n  key_file: server.key\n', 'tls_server_config.cert_file: no PEM certificate found'],
    ['key file not a key', 'tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n', /^tls_server_config\.key_file: not a valid PEM private key/.source],
    ['key of another certificate', 'tls_server_config:\n  cert_file: client.crt\n  key_file: server.key\n', 'tls_server_config.key_file: the private key does not match the certificate of cert_file'],
    ['client CA without a policy', `${TLS}  client_ca_file: ca.crt\n`, "tls_server_config.client_ca_file: client CA's have been configured without a Client Auth Policy (set client_auth_type, e.g. RequireAndVerifyClientCert)"],
    ['verifying policy without a client CA', `${TLS}  client_auth_type: RequireAndVerifyClientCert\n`, 'tls_server_config.client_auth_type: RequireAndVerifyClientCert verifies client certificates and needs client_ca_file (or client_ca) naming the CA that issues them'],
    ['client CA file without a certificate', `${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n`, 'tls_server_config.client_ca_file: no PEM certificate found'],
    ['unknown client auth type', `${TLS}  client_auth_type: RequireCert\n`, 'tls_server_config.client_auth_type: invalid ClientAuth "RequireCert"; expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert'],
    ['bad TLS version', `${TLS}  min_version: TLS1.2\n`, 'tls_server_config.min_version: unknown TLS version "TLS1.2"; expected TLS10, TLS11, TLS12 or TLS13'],
    ['min above max', `${TLS}  min_version: TLS13\n  max_version: TLS12\n`, 'tls_server_config.min_version: TLS13 is above max_version TLS12: no TLS version is left'],
    ['unknown cipher', `${TLS}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n`, 'tls_server_config.cipher_suites[0]: unknown cipher "TLS_RSA_WITH_RC4_128_SHA"; Go\'s crypto/tls CipherSuites() names it (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)'],
    ['cipher_suites not a list', `${TLS}  cipher_suites: TLS_AES_128_GCM_SHA256\n`, 'tls_server_config.cipher_suites: expected a list'],
    ['unknown curve', `${TLS}  curve_preferences: [P256]\n`, 'tls_server_config.curve_preferences[0]: unknown curve "P256"; expected CurveP256, CurveP384, CurveP521 or X25519'],
    ['SANs without a client certificate policy', `${TLS}  client_allowed_sans: [x]\n`, 'tls_server_config.client_allowed_sans: needs a client_auth_type that asks for a client certificate (RequireAndVerifyClientCert)'],
    ['a header the toolkit does not allow', 'http_server_config:\n  headers:\n    Server: nginx\n', 'http_server_config.headers.Server: HTTP header "Server" can not be configured; allowed: Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection'],
    ['header names are case-sensitive, as in the toolkit', 'http_server_config:\n  headers:\n    x-frame-options: deny\n', /^http_server_config\.headers\.x-frame-options: HTTP header "x-frame-options" can not be configured/.source],
    ['an enumerated header value', 'http_server_config:\n  headers:\n    X-Frame-Options: DENY\n', 'http_server_config.headers.X-Frame-Options: invalid value "DENY"; expected one of "deny", "sameorigin"'],
    ['a header value with a line break', 'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\nb"\n', 'http_server_config.headers.Content-Security-Policy: the value has a character not allowed in an HTTP header (a line break or a control character)'],
    ['http2 not a boolean', 'http_server_config:\n  http2: maybe\n', 'http_server_config.http2: expected true or false'],
    ['a password instead of a bcrypt hash', 'basic_auth_users:\n  alice: hunter2\n', 'basic_auth_users.alice: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04 to 31, and 60 characters in all)'],
    ['a bcrypt hash cut short', `basic_auth_users:\n  alice: ${HASH.slice(0, 59)}\n`, 'basic_auth_users.alice: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04 to 31, and 60 characters in all)'],
    ['users not a mapping', 'basic_auth_users: [alice]\n', 'basic_auth_users: expected a mapping'],
    ['rate limit interval', 'rate_limit:\n  interval: 1 second\n  burst: 1\n', 'rate_limit.interval: expected a Go duration such as "1s", "500ms" or "1m30s"'],
];

describe('web config: what is refused, naming the key', () => {
  for (const [name, text, expected] of cases) {
    it(name, async () => {
      const path = webConfig(text);
      let problems: string[] = [];
      try {
        await loadWebConfig(path);
      } catch (e) {
        if (!(e instanceof WebConfigError)) throw e;
        problems = e.problems;
      }
      if (typeof expected === 'function') expect(problems).toEqual([expected(join(path, '..'))]);
      else if (expected.startsWith('^')) expect(problems).toEqual([expect.stringMatching(new RegExp(expected))]);
      else expect(problems).toEqual([expected]);
    });
  }

  it('names every problem of a file at once, and never prints a hash', async () => {
    const bad = '$2y$10$' + 'x'.repeat(40);
    const problems = await problemsOf(`http_server_config:\n  http2: maybe\n  headers: { X-Frame-Options: allow }\nbasic_auth_users:\n  alice: "${bad}"\nrate_limit: { interval: soon }\n`);
    expect(problems).toEqual([
      'http_server_config.http2: expected true or false',
      'http_server_config.headers.X-Frame-Options: invalid value "allow"; expected one of "deny", "sameorigin"',
      'basic_auth_users.alice: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04 to 31, and 60 characters in all)',
      'rate_limit.interval: expected a Go duration such as "1s", "500ms" or "1m30s"',
    ]);
    expect(problems.join('\n')).not.toContain(bad);
  });

  it('an unreadable file says so', async () => {
    await expect(loadWebConfig(join(tmpdir(), 'no-such-web-config.yml'))).rejects.toMatchObject({ problems: ['cannot read file: no such file or directory (ENOENT)'] });
  });
});

describe('basic auth', () => {
  /** The real bcrypt thread, with its comparisons counted. */
  function countingChecker(): PasswordChecker & { calls: Array<{ hash: string }> } {
    const real = createBcryptThread();
    const calls: Array<{ hash: string }> = [];
    return {
      calls,
      compare(password, hash) {
        calls.push({ hash });
        return real.compare(password, hash);
      },
      stop: () => real.stop(),
    };
  }
  let checker: ReturnType<typeof countingChecker> | undefined;
  afterEach(async () => {
    await checker?.stop();
    checker = undefined;
  });

  it('parses the header as Go does', () => {
    expect(parseBasicAuth(basic('alice', 'pa:ss'))).toEqual({ user: 'alice', password: 'pa:ss' });
    expect(parseBasicAuth(`bAsIc ${Buffer.from('a:b').toString('base64')}`)).toEqual({ user: 'a', password: 'b' });
    expect(parseBasicAuth(undefined)).toBeUndefined();
    expect(parseBasicAuth(`Bearer ${Buffer.from('a:b').toString('base64')}`)).toBeUndefined();
    expect(parseBasicAuth(`Basic ${Buffer.from('no-colon').toString('base64')}`)).toBeUndefined();
    expect(parseBasicAuth('Basic !!!')).toBeUndefined();
  });

  it('checks a right password once with bcrypt, then answers from the cache without bcrypt', async () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    auth.setUsers(new Map([['alice', HASH]]));
    const first = auth.check(basic('alice', PASSWORD));
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toBe('allow');
    expect(auth.check(basic('alice', PASSWORD))).toBe('allow'); // synchronous: a cache hit
    expect(checker.calls).toHaveLength(1);
  });

  it('a wrong password is never cached: bcrypt every time', async () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    auth.setUsers(new Map([['alice', HASH]]));
    expect(await auth.check(basic('alice', 'wrong'))).toBe('unauthorized');
    expect(await auth.check(basic('alice', 'wrong'))).toBe('unauthorized');
    expect(checker.calls).toHaveLength(2);
  });

  it('an unknown user costs a bcrypt comparison against a configured hash, and is refused even with a user\'s password', async () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    auth.setUsers(new Map([['alice', HASH]]));
    expect(await auth.check(basic('mallory', PASSWORD))).toBe('unauthorized');
    expect(checker.calls).toEqual([{ hash: HASH }]);
  });

  it('no or malformed credentials are refused at once, without bcrypt', () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    auth.setUsers(new Map([['alice', HASH]]));
    expect(auth.check(undefined)).toBe('unauthorized');
    expect(auth.check('Basic %%%')).toBe('unauthorized');
    expect(checker.calls).toHaveLength(0);
  });

  it('concurrent identical checks share one comparison; new users forget the cache', async () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    auth.setUsers(new Map([['alice', HASH]]));
    expect(await Promise.all([auth.check(basic('alice', PASSWORD)), auth.check(basic('alice', PASSWORD))])).toEqual(['allow', 'allow']);
    expect(checker.calls).toHaveLength(1);
    auth.setUsers(new Map([['alice', OTHER_HASH]]));
    expect(await auth.check(basic('alice', PASSWORD))).toBe('unauthorized');
    expect(await auth.check(basic('alice', 'another password'))).toBe('allow');
    expect(checker.calls).toHaveLength(3);
  });

  it('no users: everything is allowed', () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    expect(auth.check(undefined)).toBe('allow');
  });

  it('more than 64 checks waiting for bcrypt: the next one is answered busy at once', async () => {
    checker = countingChecker();
    const auth = new BasicAuth(checker);
    auth.setUsers(new Map([['alice', HASH]]));
    const waiting = Array.from({ length: 64 }, (_, i) => auth.check(basic('alice', `guess ${i}`)) as Promise<string>);
    expect(auth.check(basic('alice', 'guess 64'))).toBe('busy');
    await checker.stop(); // rejects the ones still waiting
    await Promise.allSettled(waiting);
  });

  it('reads the SANs of a certificate as Go lists them', () => {
    expect(subjectAltNames('DNS:a.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, email:x@example, URI:spiffe://example/p, DNS:"b,c"')).toEqual(['a.example', '127.0.0.1', '::1', 'x@example', 'spiffe://example/p', 'b,c']);
  });
});

describe('WebServer (plain HTTP): headers, auth, health, rate limit, reload', () => {
  const servers: WebServer[] = [];
  afterAll(async () => {
    for (const s of servers) {
      await s.stop();
      s.server.closeAllConnections();
      await new Promise<void>((r) => s.server.close(() => r()));
    }
  });

  async function start(text: string) {
    const file = webConfig(text);
    const logs: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
        cb();
      },
    });
    const registry = new Registry();
    const exposition = new Exposition();
    exposition.update([{ name: 'data', text: Buffer.from('up_test 1\n'), gzip: Buffer.alloc(0) }], []);
    const web = await WebServer.create({
      file,
      deps: { exposition, status: () => [], ready: () => true, version: 'test' },
      log: createLogger('debug', sink),
      registry,
    });
    servers.push(web);
    await new Promise<void>((r) => web.server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(web.server.address() as { port: number }).port}`;
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await request(`${url}${path}`, { headers });
      return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
    };
    const metric = async (name: string, labels: Record<string, string> = {}) => value(parseExposition(await registry.metrics()), name, labels);
    return { web, file, logs, get, metric };
  }

  it('answers 401 with WWW-Authenticate: Basic, the configured headers on every answer, /-/healthy open, and counts the refusals', async () => {
    const s = await start(`http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n    Content-Security-Policy: "default-src 'none'"\nbasic_auth_users:\n  alice: ${HASH}\n`);
    const none = await s.get('/metrics');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Basic');
    expect(none.headers['x-frame-options']).toBe('sameorigin');
    expect((await s.get('/metrics', { authorization: basic('alice', 'wrong') })).status).toBe(401);
    expect((await s.get('/-/ready', { authorization: basic('bob', PASSWORD) })).status).toBe(401);
    expect(await s.metric('conviva_exporter_http_auth_failures_total')).toBe(3);

    const ok = await s.get('/metrics', { authorization: basic('alice', PASSWORD) });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('up_test 1\n');
    expect(ok.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(ok.headers['x-frame-options']).toBe('sameorigin');
    expect(ok.headers['content-security-policy']).toBe("default-src 'none'");
    expect((await s.get('/-/ready', { authorization: basic('alice', PASSWORD) })).status).toBe(200);
    expect((await s.get('/nope', { authorization: basic('alice', PASSWORD) })).status).toBe(404);

    const healthy = await s.get('/-/healthy');
    expect(healthy.status).toBe(200);
    expect(healthy.headers['x-frame-options']).toBe('sameorigin');
    // only that exact path is open
    for (const p of ['/-/healthy/', '/-/HEALTHY', '/-/healthy/../metrics']) expect((await s.get(p)).status, p).toBe(401);
    expect(await s.metric('conviva_exporter_http_auth_failures_total')).toBe(6);
    expect(JSON.stringify(s.logs)).not.toContain(PASSWORD);
  });

  it('rate_limit: past the burst, 429 (before auth); /-/healthy is not limited', async () => {
    const s = await start('rate_limit: { interval: 1h, burst: 2 }\n');
    expect((await s.get('/metrics')).status).toBe(200);
    expect((await s.get('/')).status).toBe(200);
    expect((await s.get('/metrics')).status).toBe(429);
    expect((await s.get('/-/healthy')).status).toBe(200);
  });

  it('re-reads a changed file: a valid one is applied; a bad one is refused, logged once per version, and the running one kept', async () => {
    const s = await start(`basic_auth_users:\n  alice: ${HASH}\n`);
    const asAlice = (pw: string) => s.get('/metrics', { authorization: basic('alice', pw) }).then((r) => r.status);
    s.web.watch();
    await s.web.check();
    expect(await asAlice(PASSWORD)).toBe(200);
    expect(await s.metric('conviva_exporter_web_config_reloads_total', { result: 'success' })).toBe(0);
    expect(await s.metric('conviva_exporter_web_config_last_reload_successful')).toBe(1);
    const loadedAt = await s.metric('conviva_exporter_web_config_last_reload_success_timestamp_seconds');
    expect(loadedAt).toBeGreaterThan(Date.now() / 1000 - 60);

    // a valid change: the new password works, the old one no longer does
    writeFileSync(s.file, `basic_auth_users:\n  alice: ${OTHER_HASH}\nhttp_server_config:\n  headers: { X-Content-Type-Options: nosniff }\n`);
    await s.web.check();
    expect(await asAlice('another password')).toBe(200);
    expect(await asAlice(PASSWORD)).toBe(401);
    expect((await s.get('/-/healthy')).headers['x-content-type-options']).toBe('nosniff');
    expect(await s.metric('conviva_exporter_web_config_reloads_total', { result: 'success' })).toBe(1);
    expect(s.logs.filter((l) => l.msg === 'web configuration reloaded')).toHaveLength(1);

    // a bad change, then the same content again as a new file (renamed over it): refused and
    // logged once, the running one kept
    const failures = () => s.logs.filter((l) => l.msg === 'web configuration reload failed: keeping the running configuration');
    writeFileSync(s.file, 'basic_auth_users:\n  alice: hunter2\n');
    await s.web.check();
    writeFileSync(`${s.file}.new`, 'basic_auth_users:\n  alice: hunter2\n');
    renameSync(`${s.file}.new`, s.file);
    await s.web.check();
    await s.web.check();
    expect(failures()).toHaveLength(1);
    expect(failures()[0]).toMatchObject({ level: 50, file: s.file, problems: ['basic_auth_users.alice: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04 to 31, and 60 characters in all)'] });
    expect(await asAlice('another password')).toBe(200);
    expect(await s.metric('conviva_exporter_web_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(await s.metric('conviva_exporter_web_config_last_reload_successful')).toBe(0);

    // another bad version is logged again; turning TLS on needs a restart
    writeFileSync(s.file, `${TLS}basic_auth_users:\n  alice: ${HASH}\n`);
    await s.web.check();
    expect(failures()).toHaveLength(2);
    expect(failures()[1]!.problems).toEqual(['tls_server_config: the new version turns TLS on: switching between plain HTTP and TLS needs a restart']);
    expect(await asAlice(PASSWORD)).toBe(401);
    expect(await s.metric('conviva_exporter_web_config_reloads_total', { result: 'failure' })).toBe(2);

    // mended: applied
    writeFileSync(s.file, `basic_auth_users:\n  alice: ${HASH}\n`);
    await s.web.check();
    expect(await asAlice(PASSWORD)).toBe(200);
    expect(await s.metric('conviva_exporter_web_config_reloads_total', { result: 'success' })).toBe(2);
    expect(await s.metric('conviva_exporter_web_config_last_reload_successful')).toBe(1);
    expect(JSON.stringify(s.logs)).not.toContain(PASSWORD);
  });

  it('the watcher itself picks a change up within about a second', async () => {
    const s = await start(`basic_auth_users:\n  alice: ${HASH}\n`);
    s.web.watch();
    await s.web.check();
    writeFileSync(s.file, `basic_auth_users:\n  alice: ${OTHER_HASH}\n`);
    const end = Date.now() + 5000;
    while (Date.now() < end && s.logs.every((l) => l.msg !== 'web configuration reloaded')) await new Promise((r) => setTimeout(r, 50));
    expect(s.logs.some((l) => l.msg === 'web configuration reloaded')).toBe(true);
  });
});

describe("promtool check web-config (Debian's prometheus 2.42)", () => {
  const promtool = (path: string) => spawnSync('promtool', ['check', 'web-config', path], { encoding: 'utf8', timeout: 30_000 });

  it('accepts config/web-config.example.yml (a verbatim copy, with test certificates at the paths it names)', (ctx) => {
    requirePromtool(ctx);
    const r = promtool(webConfig(EXAMPLE));
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // and refuses it without the certificate files, which is why the test makes them
    const alone = mkdtempSync(join(root, 'alone-'));
    writeFileSync(join(alone, 'web.yml'), EXAMPLE);
    expect(promtool(join(alone, 'web.yml')).status).not.toBe(0);
  });

  it('refuses every file refused here, except the few this exporter refuses on purpose', (ctx) => {
    requirePromtool(ctx);
    for (const [name, text] of cases) {
      if (NOT_IN_PROMTOOL_2_42.has(name)) continue;
      const r = promtool(webConfig(text));
      if (STRICTER_THAN_TOOLKIT.has(name)) expect(r.status, `${name}: promtool accepts it (a departure)\n${r.stdout}${r.stderr}`).toBe(0);
      else expect(r.status, `${name}: promtool refuses it too\n${r.stdout}${r.stderr}`).not.toBe(0);
    }
  });
});
