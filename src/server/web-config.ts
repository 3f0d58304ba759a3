import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Node, type Pair } from 'yaml';

// The web configuration file of the Prometheus exporter-toolkit (web/tls_config.go,
// web/handler.go, docs/web-configuration.md), read as the toolkit reads it: yaml.v2's
// UnmarshalStrict (YAML 1.1 booleans, unknown and duplicate keys refused, any scalar read into a
// string field as written), relative paths against the file's folder, then the toolkit's checks.
// Where this exporter is stricter, the rule says so in a comment.

/** A web config that cannot be used; `problems` are "key.path: reason" lines. */
export class WebConfigError extends Error {
  readonly code = 'WEB_CONFIG_INVALID';
  /**
   * `version`: a digest of what was read, so that a watcher reports one bad version once;
   * `files`: the files read or tried, whose change may mend it.
   */
  constructor(
    readonly problems: string[],
    readonly version = '',
    readonly files: string[] = [],
  ) {
    super(`invalid web configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'WebConfigError';
  }
}

/** client_auth_type, with the toolkit's RequireClientCert folded into RequireAnyClientCert. */
export type ClientAuthType = 'NoClientCert' | 'RequestClientCert' | 'RequireAnyClientCert' | 'VerifyClientCertIfGiven' | 'RequireAndVerifyClientCert';

export interface TlsServerSettings {
  /** For tls.createSecureContext() / server.setSecureContext(): cert, key, ca, versions, ciphers, curves. */
  context: SecureContextOptions;
  clientAuth: ClientAuthType;
  /** client_allowed_sans: a client certificate must carry one of these SANs (DNS, IP, e-mail or URI). */
  allowedSans: string[] | undefined;
}

export interface WebConfig {
  /** The file, absolute. */
  file: string;
  /** TLS settings; undefined: plain HTTP (no TLS key set, as in the toolkit's TLSConfig.IsEnabled). */
  tls: TlsServerSettings | undefined;
  /** http_server_config.http2; read and checked, but this server speaks HTTP/1.1 only. */
  http2: boolean;
  /** http_server_config.headers with a non-empty value: set on every answer. */
  headers: Record<string, string>;
  /** basic_auth_users: user name -> bcrypt hash. Empty: no basic auth. */
  users: Map<string, string>;
  /** rate_limit: a token bucket of `burst` refilled one token per `intervalMs`; undefined: no limit. */
  rateLimit: { intervalMs: number; burst: number } | undefined;
  /** Every file read: the config and the files it names. A change to any of them is a new version. */
  files: string[];
  /** SHA-256 of the paths and contents read: equal digests are the same version. */
  digest: string;
}

/** Largest web config read (a real one is a few hundred bytes, or a few KiB with inline PEM). */
const MAX_BYTES = 1024 * 1024;

const CLIENT_AUTH: Record<string, ClientAuthType> = {
  '': 'NoClientCert',
  NoClientCert: 'NoClientCert',
  RequestClientCert: 'RequestClientCert',
  RequireAnyClientCert: 'RequireAnyClientCert',
  RequireClientCert: 'RequireAnyClientCert', // the toolkit keeps this name for backwards compatibility
  VerifyClientCertIfGiven: 'VerifyClientCertIfGiven',
  RequireAndVerifyClientCert: 'RequireAndVerifyClientCert',
};

const TLS_VERSIONS: Record<string, { node: SecureVersion; rank: number }> = {
  TLS10: { node: 'TLSv1', rank: 0 },
  TLS11: { node: 'TLSv1.1', rank: 1 },
  TLS12: { node: 'TLSv1.2', rank: 2 },
  TLS13: { node: 'TLSv1.3', rank: 3 },
};

/**
 * Go's crypto/tls.CipherSuites() names (what the toolkit accepts) -> OpenSSL's. The TLS 1.3
 * suites are accepted but, as in Go, not configurable: all three stay enabled. The four RSA
 * key-exchange suites are in CipherSuites() of the Go releases that built most exporters.
 */
const CIPHERS: Record<string, string | null> = {
  TLS_AES_128_GCM_SHA256: null,
  TLS_AES_256_GCM_SHA384: null,
  TLS_CHACHA20_POLY1305_SHA256: null,
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
};
const TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

const CURVES: Record<string, string> = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

/** The toolkit's extraHTTPHeaders: the only headers it lets a file set, and the enumerated values. */
const HEADERS: Record<string, string[] | null> = {
  'Strict-Transport-Security': null,
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': null,
  'Content-Security-Policy': null,
};

// What bcryptjs can check: $2a$, $2b$ or $2y$, a two-digit cost of 4..31, 22 salt + 31 hash characters.
const BCRYPT_RE = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

const KEYS = {
  top: ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit'],
  tls: ['cert', 'key', 'client_ca', 'cert_file', 'key_file', 'client_auth_type', 'client_ca_file', 'cipher_suites', 'curve_preferences', 'min_version', 'max_version', 'prefer_server_cipher_suites', 'client_allowed_sans'],
  http: ['http2', 'headers'],
  rate: ['interval', 'burst'],
};

/** The file's fields as the toolkit's structs hold them, before the files they name are read. */
interface Raw {
  tls: {
    cert: string;
    key: string;
    clientCa: string;
    certFile: string;
    keyFile: string;
    clientAuth: string;
    clientCaFile: string;
    ciphers: string[];
    curves: string[];
    minVersion: string;
    maxVersion: string;
    preferServerCipherSuites: boolean;
    allowedSans: string[] | undefined;
  };
  http2: boolean;
  headers: Record<string, string>;
  users: Map<string, string>;
  rateLimit: { intervalMs: number; burst: number } | undefined;
}

/** Reads, checks and resolves a web config file and the files it names; throws WebConfigError naming every problem. */
export async function loadWebConfig(path: string): Promise<WebConfig> {
  const file = resolve(path);
  const digest = createHash('sha256').update(file);
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new WebConfigError([`cannot read file: ${describeErrno(err)}`], digest.update(`\0unreadable ${err.code ?? err.message}`).digest('hex'), [file]);
  }
  digest.update('\0').update(text);
  if (text.length > MAX_BYTES) throw new WebConfigError([`file is ${text.length} bytes; a web configuration is at most ${MAX_BYTES} bytes (1 MiB)`], digest.digest('hex'), [file]);
  const problems: string[] = [];
  const raw = decode(text.toString('utf8'), problems);
  if (problems.length > 0) throw new WebConfigError(problems, digest.digest('hex'), [file]);

  const files = [file];
  const dir = dirname(file);
  const readNamed = async (key: string, name: string): Promise<{ path: string; data: Buffer; ok: boolean } | undefined> => {
    if (name === '') return undefined;
    const p = isAbsolute(name) ? name : resolve(dir, name);
    try {
      return { path: p, data: await readFile(p), ok: true };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      problems.push(`tls_server_config.${key}: cannot read ${p}: ${describeErrno(err)}`);
      return { path: p, data: Buffer.from(`unreadable ${err.code ?? err.message}`), ok: false };
    }
  };
  const t = raw.tls;
  // The toolkit reads cert_file over cert, key_file over key and client_ca_file over client_ca.
  const read = await Promise.all([readNamed('cert_file', t.certFile), readNamed('key_file', t.keyFile), readNamed('client_ca_file', t.clientCaFile)]);
  for (const r of read) {
    if (!r) continue;
    files.push(r.path);
    digest.update(`\0${r.path}\0`).update(r.data);
  }
  const ok = (r: (typeof read)[number]) => (r?.ok ? r.data : undefined);
  const version = digest.digest('hex');
  if (problems.length > 0) throw new WebConfigError(problems, version, files);
  const tls = checkTls(raw, { cert: ok(read[0]), key: ok(read[1]), ca: ok(read[2]) }, problems);
  if (problems.length > 0) throw new WebConfigError(problems, version, files);
  return { file, tls, http2: raw.http2, headers: raw.headers, users: raw.users, rateLimit: raw.rateLimit, files, digest: version };
}

/** yaml.v2 UnmarshalStrict into the toolkit's Config, plus the checks the toolkit makes while reading. */
function decode(text: string, problems: string[]): Raw {
  const raw: Raw = {
    tls: { cert: '', key: '', clientCa: '', certFile: '', keyFile: '', clientAuth: '', clientCaFile: '', ciphers: [], curves: [], minVersion: 'TLS12', maxVersion: 'TLS13', preferServerCipherSuites: true, allowedSans: undefined },
    http2: true,
    headers: {},
    users: new Map(),
    rateLimit: undefined,
  };
  // YAML 1.1 as yaml.v2 reads it (yes/no/on/off are booleans); duplicate keys are errors.
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const at = e.linePos?.[0];
      problems.push(`yaml: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}${at ? ` at line ${at.line}, column ${at.col}` : ''}`);
    }
    return raw;
  }
  if (doc.contents === null || isNull(doc.contents)) return raw; // an empty file: plain HTTP, no auth
  const top = fields(doc.contents, '', KEYS.top, problems);
  if (!top) return raw;

  const tlsNode = top.get('tls_server_config');
  const tls = tlsNode ? fields(tlsNode, 'tls_server_config', KEYS.tls, problems) : undefined;
  if (tls) {
    const t = raw.tls;
    const str = (k: string) => scalarString(tls.get(k), `tls_server_config.${k}`, problems);
    t.cert = str('cert') ?? '';
    t.key = str('key') ?? '';
    t.clientCa = str('client_ca') ?? '';
    t.certFile = str('cert_file') ?? '';
    t.keyFile = str('key_file') ?? '';
    t.clientCaFile = str('client_ca_file') ?? '';
    t.clientAuth = str('client_auth_type') ?? '';
    if (!(t.clientAuth in CLIENT_AUTH)) {
      problems.push(`tls_server_config.client_auth_type: invalid ClientAuth "${t.clientAuth}"; expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert`);
    }
    for (const k of ['min_version', 'max_version'] as const) {
      const v = str(k);
      if (v === undefined) continue;
      if (v in TLS_VERSIONS) {
        if (k === 'min_version') t.minVersion = v;
        else t.maxVersion = v;
      } else problems.push(`tls_server_config.${k}: unknown TLS version "${v}"; expected TLS10, TLS11, TLS12 or TLS13`);
    }
    t.ciphers = stringList(tls.get('cipher_suites'), 'tls_server_config.cipher_suites', problems, (v) => (v in CIPHERS ? undefined : `unknown cipher "${v}"; Go's crypto/tls CipherSuites() names it (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`)) ?? [];
    t.curves = stringList(tls.get('curve_preferences'), 'tls_server_config.curve_preferences', problems, (v) => (v in CURVES ? undefined : `unknown curve "${v}"; expected CurveP256, CurveP384, CurveP521 or X25519`)) ?? [];
    t.allowedSans = stringList(tls.get('client_allowed_sans'), 'tls_server_config.client_allowed_sans', problems, () => undefined);
    t.preferServerCipherSuites = bool(tls.get('prefer_server_cipher_suites'), 'tls_server_config.prefer_server_cipher_suites', problems) ?? true;
  }

  const httpNode = top.get('http_server_config');
  const http = httpNode ? fields(httpNode, 'http_server_config', KEYS.http, problems) : undefined;
  if (http) {
    raw.http2 = bool(http.get('http2'), 'http_server_config.http2', problems) ?? true;
    const headersNode = http.get('headers');
    const headers = headersNode ? entries(headersNode, 'http_server_config.headers', problems) : undefined;
    for (const [name, node] of headers ?? []) {
      const at = `http_server_config.headers.${name}`;
      const value = scalarString(node, at, problems);
      if (value === undefined) continue;
      if (!(name in HEADERS)) {
        problems.push(`${at}: HTTP header "${name}" can not be configured; allowed: ${Object.keys(HEADERS).sort().join(', ')}`);
        continue;
      }
      const allowed = HEADERS[name];
      if (allowed && !allowed.includes(value)) {
        problems.push(`${at}: invalid value "${value}"; expected one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
        continue;
      }
      // Not in the toolkit: a value Node cannot send is refused here rather than on every answer.
      if (/[^\t\x20-\x7e\x80-\xff]/.test(value)) {
        problems.push(`${at}: the value has a character not allowed in an HTTP header (a line break or a control character)`);
        continue;
      }
      if (value !== '') raw.headers[name] = value; // the toolkit's docs: "Unset if blank"
    }
  }

  const usersNode = top.get('basic_auth_users');
  const users = usersNode ? entries(usersNode, 'basic_auth_users', problems) : undefined;
  for (const [user, node] of users ?? []) {
    const at = `basic_auth_users.${user}`;
    const hash = scalarString(node, at, problems);
    if (hash === undefined) continue;
    // The hash is never printed: it is what a guesser would work on offline.
    if (!BCRYPT_RE.test(hash)) problems.push(`${at}: not a bcrypt hash (expected $2a$, $2b$ or $2y$, a cost of 04 to 31, and 60 characters in all)`);
    else raw.users.set(user, hash);
  }

  const rateNode = top.get('rate_limit');
  const rate = rateNode ? fields(rateNode, 'rate_limit', KEYS.rate, problems) : undefined;
  if (rate) {
    const interval = goDuration(rate.get('interval'), 'rate_limit.interval', problems) ?? 0;
    const burst = integer(rate.get('burst'), 'rate_limit.burst', problems) ?? 0;
    // As the toolkit: an interval of 0 (or less) is no limiter; a burst of 0 refuses every request.
    if (interval > 0) raw.rateLimit = { intervalMs: interval, burst: Math.max(0, burst) };
  }
  return raw;
}

/** The toolkit's ConfigToTLSConfig checks, with the named files' contents; undefined when TLS is off. */
function checkTls(raw: Raw, read: { cert?: Buffer; key?: Buffer; ca?: Buffer }, problems: string[]): TlsServerSettings | undefined {
  const t = raw.tls;
  const enabled = t.certFile !== '' || t.cert !== '' || t.keyFile !== '' || t.key !== '' || t.clientCaFile !== '' || t.clientCa !== '' || t.clientAuth !== '';
  if (!enabled) return undefined;
  const before = problems.length;
  if (t.certFile === '' && t.cert === '') problems.push('tls_server_config.cert_file: missing one of cert or cert_file');
  if (t.keyFile === '' && t.key === '') problems.push('tls_server_config.key_file: missing one of key or key_file');
  const certAt = t.certFile !== '' ? 'tls_server_config.cert_file' : 'tls_server_config.cert';
  const keyAt = t.keyFile !== '' ? 'tls_server_config.key_file' : 'tls_server_config.key';
  const certPem = t.certFile !== '' ? read.cert : t.cert !== '' ? Buffer.from(t.cert) : undefined;
  const keyPem = t.keyFile !== '' ? read.key : t.key !== '' ? Buffer.from(t.key) : undefined;

  let cert: X509Certificate | undefined;
  let key: KeyObject | undefined;
  if (certPem) {
    if (!certPem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) problems.push(`${certAt}: no PEM certificate found`);
    else {
      try {
        cert = new X509Certificate(certPem);
      } catch (e) {
        problems.push(`${certAt}: not a valid PEM certificate (${(e as Error).message})`);
      }
    }
  }
  if (keyPem) {
    try {
      key = createPrivateKey({ key: keyPem, format: 'pem' });
    } catch (e) {
      const reason = (e as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE' ? 'the key is encrypted; the toolkit and this exporter need an unencrypted key' : (e as Error).message;
      problems.push(`${keyAt}: not a valid PEM private key (${reason})`);
    }
  }
  if (cert && key && !cert.checkPrivateKey(key)) problems.push(`${keyAt}: the private key does not match the certificate of ${certAt.replace('tls_server_config.', '')}`);

  const clientAuth = CLIENT_AUTH[t.clientAuth] ?? 'NoClientCert';
  const caAt = t.clientCaFile !== '' ? 'tls_server_config.client_ca_file' : 'tls_server_config.client_ca';
  const caPem = t.clientCaFile !== '' ? read.ca : t.clientCa !== '' ? Buffer.from(t.clientCa) : undefined;
  const hasCa = t.clientCaFile !== '' || t.clientCa !== '';
  if (caPem) {
    // Stricter than the toolkit, whose AppendCertsFromPEM skips what it cannot read: a CA bundle
    // without one readable certificate would refuse every client, so it is refused here.
    const blocks = caPem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    const good = blocks.filter((b) => {
      try {
        new X509Certificate(b);
        return true;
      } catch {
        return false;
      }
    });
    if (good.length === 0) problems.push(`${caAt}: no PEM certificate found`);
  }
  if (hasCa && clientAuth === 'NoClientCert') {
    problems.push(`${caAt}: client CA's have been configured without a Client Auth Policy (set client_auth_type, e.g. RequireAndVerifyClientCert)`);
  }
  // Stricter than the toolkit (whose Go TLS then verifies against the system's public roots): a
  // verifying policy without a client CA would let in any client with a publicly issued certificate.
  if (!hasCa && (clientAuth === 'RequireAndVerifyClientCert' || clientAuth === 'VerifyClientCertIfGiven')) {
    problems.push(`tls_server_config.client_auth_type: ${t.clientAuth} verifies client certificates and needs client_ca_file (or client_ca) naming the CA that issues them`);
  }
  // Stricter than the toolkit (which never checks the SANs without a client certificate policy).
  if (t.allowedSans !== undefined && clientAuth === 'NoClientCert') {
    problems.push('tls_server_config.client_allowed_sans: needs a client_auth_type that asks for a client certificate (RequireAndVerifyClientCert)');
  }
  const min = TLS_VERSIONS[t.minVersion]!;
  const max = TLS_VERSIONS[t.maxVersion]!;
  // Stricter than the toolkit, where every handshake would then fail.
  if (min.rank > max.rank) problems.push(`tls_server_config.min_version: ${t.minVersion} is above max_version ${t.maxVersion}: no TLS version is left`);
  if (problems.length > before) return undefined;

  const context: SecureContextOptions = {
    cert: certPem,
    key: keyPem,
    minVersion: min.node,
    maxVersion: max.node,
    honorCipherOrder: t.preferServerCipherSuites,
  };
  if (caPem) context.ca = caPem;
  if (t.ciphers.length > 0) {
    const tls12 = t.ciphers.map((c) => CIPHERS[c]).filter((c): c is string => typeof c === 'string');
    context.ciphers = [...tls12, TLS13_SUITES].join(':');
  }
  if (t.curves.length > 0) context.ecdhCurve = t.curves.map((c) => CURVES[c]).join(':');
  try {
    createSecureContext(context);
  } catch (e) {
    problems.push(`tls_server_config: Node's TLS refuses these settings: ${(e as Error).message}`);
    return undefined;
  }
  return { context, clientAuth, allowedSans: t.allowedSans };
}

// ---- yaml.v2-like reading of one node --------------------------------------------------------

/** What a node is, for a message. Aliases are not followed: a web config has no use for them. */
function kind(node: unknown): string {
  if (isAlias(node)) return 'a YAML alias (write the value out)';
  return isSeq(node) ? 'a list' : isMap(node) ? 'a mapping' : 'a value';
}

function isNull(node: unknown): boolean {
  return isScalar(node) && node.value === null;
}

/** A mapping's pairs by key, refusing keys not in `known` (UnmarshalStrict); null is an empty struct. */
function fields(node: unknown, at: string, known: string[], problems: string[]): Map<string, unknown> | undefined {
  const pairs = entries(node, at, problems);
  if (!pairs) return undefined;
  const out = new Map<string, unknown>();
  for (const [k, v] of pairs) {
    if (!known.includes(k)) problems.push(`${at ? `${at}.` : ''}${k}: unknown key (known: ${known.join(', ')})`);
    else if (!isNull(v)) out.set(k, v);
  }
  return out;
}

/** A mapping's entries, keys read as yaml.v2 reads them into a string. */
function entries(node: unknown, at: string, problems: string[]): Array<[string, unknown]> | undefined {
  if (isNull(node)) return [];
  if (!isMap(node)) {
    problems.push(`${at || 'the file'}: expected a mapping${at ? '' : ` with ${KEYS.top.join(', ')}`}${isAlias(node) ? `, not ${kind(node)}` : ''}`);
    return undefined;
  }
  const out: Array<[string, unknown]> = [];
  for (const pair of node.items as Pair[]) {
    if (!isScalar(pair.key)) {
      problems.push(`${at || 'the file'}: a key must be a plain value, not a mapping or a list`);
      continue;
    }
    out.push([sourceText(pair.key), pair.value]);
  }
  return out;
}

/** A scalar as written (yaml.v2 sets a string field from any scalar's text: `cert_file: 123` is "123"). */
function sourceText(node: Node & { value: unknown; source?: string }): string {
  if (typeof node.value === 'string') return node.value;
  if (node.value === null) return '';
  return node.source ?? String(node.value);
}

function scalarString(node: unknown, at: string, problems: string[]): string | undefined {
  if (node === undefined) return undefined;
  if (!isScalar(node)) {
    problems.push(`${at}: expected a string, not ${kind(node)}`);
    return undefined;
  }
  return sourceText(node);
}

function stringList(node: unknown, at: string, problems: string[], check: (v: string) => string | undefined): string[] | undefined {
  if (node === undefined) return undefined;
  if (!isSeq(node)) {
    problems.push(`${at}: expected a list${isAlias(node) ? `, not ${kind(node)}` : ''}`);
    return undefined;
  }
  const out: string[] = [];
  node.items.forEach((item, i) => {
    const v = scalarString(item, `${at}[${i}]`, problems);
    if (v === undefined) return;
    const bad = check(v);
    if (bad) problems.push(`${at}[${i}]: ${bad}`);
    else out.push(v);
  });
  return out;
}

function bool(node: unknown, at: string, problems: string[]): boolean | undefined {
  if (node === undefined) return undefined;
  if (isScalar(node) && typeof node.value === 'boolean') return node.value;
  problems.push(`${at}: expected true or false`);
  return undefined;
}

function integer(node: unknown, at: string, problems: string[]): number | undefined {
  if (node === undefined) return undefined;
  if (isScalar(node) && typeof node.value === 'number' && Number.isSafeInteger(node.value)) return node.value;
  problems.push(`${at}: expected a whole number`);
  return undefined;
}

const GO_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go time.Duration as yaml.v2 reads it: a string for time.ParseDuration ("1s", "1m30s", "0.5s"), or an integer of nanoseconds; in ms. */
function goDuration(node: unknown, at: string, problems: string[]): number | undefined {
  if (node === undefined) return undefined;
  if (isScalar(node) && typeof node.value === 'number' && Number.isSafeInteger(node.value)) return node.value / 1e6;
  const text = isScalar(node) ? sourceText(node) : undefined;
  const m = text === undefined ? null : /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0)$/.exec(text);
  if (!m) {
    problems.push(`${at}: expected a Go duration such as "1s", "500ms" or "1m30s"`);
    return undefined;
  }
  let ms = 0;
  for (const part of m[2]!.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(part[1]) * GO_UNITS_MS[part[2]!]!;
  return m[1] === '-' ? -ms : ms;
}

function describeErrno(e: NodeJS.ErrnoException): string {
  const reason = e.code && e.syscall ? e.message.replace(new RegExp(`^${e.code}: `), '').replace(/, \w+ '.*'$/, '') : e.message;
  return e.code ? `${reason} (${e.code})` : reason;
}
