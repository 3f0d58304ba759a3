import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import type { ResolveContext } from '../engine/source.js';
import { SOURCES } from '../sources/index.js';
import { configSchema, type RawConfig } from './schema.js';

/** A config that cannot be used; `problems` are "key.path: reason" lines, in document order. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The `otlp:` block with its header values read (each from `value` or `value_file`). */
export type OtlpConfig = Omit<NonNullable<RawConfig['otlp']>, 'headers'> & { headers: { name: string; value: string }[] };

/** A validated config: the shared part, and each configured source's resolved block by source name. */
export type Config = Omit<RawConfig, 'sources' | 'otlp'> & {
  otlp?: OtlpConfig;
  sources: Record<string, unknown>;
  /** What is valid but will not work as meant ("key.path: reason"): printed by --check-config, logged at start-up and reload. */
  warnings: string[];
  /**
   * Which shard this replica is (--shard, --total-shards; not a YAML key): it polls only the units
   * of upstream work whose key hashes to `ordinal` (src/engine/shard.ts). {0, 1}: no sharding.
   */
  shard: { ordinal: number; total: number };
  /**
   * The first 48 bits of the SHA-256 of the config file's text (before ${VAR} expansion), as an
   * integer: replicas that should run the same config can be compared (conviva_exporter_config_hash).
   */
  hash: number;
};

type Env = Record<string, string | undefined>;

/** Reads, expands and validates a config file; throws ConfigError naming every bad key. */
export function loadConfigFile(path: string, env: Env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError([`cannot read file: ${describeErrno(err)}`]);
  }
  return parseConfig(text, env, dirname(resolve(path)));
}

/**
 * Largest config accepted. Real ones are kilobytes; the YAML parser needs about a second and
 * 150 MB per MiB, so a runaway file is refused rather than parsed for minutes.
 */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Validates config text; `baseDir` resolves relative *_file paths. */
export function parseConfig(text: string, env: Env, baseDir: string): Config {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_CONFIG_BYTES) throw new ConfigError([`file is ${bytes} bytes; a configuration is at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`]);
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        return `yaml: ${withoutSource(e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''))}${at ? ` at line ${at.line}, column ${at.col}` : ''}`;
      }),
    );
  }
  let js: unknown;
  try {
    // Aliases are resolved here: a YAML bomb (too many aliases) or an unresolved alias throws.
    js = doc.toJS();
  } catch (e) {
    throw new ConfigError([`yaml: ${withoutSource((e as Error).message)}`]);
  }
  const problems: string[] = [];
  const expanded = expandEnv(js ?? {}, [], env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const parsed = configSchema.safeParse(expanded);
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues, expanded));
  return resolveSecrets(parsed.data, env, baseDir, configHash(text));
}

/**
 * A YAML message without the source text some messages quote after a colon ("Block scalar header
 * includes extra characters: |s3cr3t", "Unresolved alias ...: s3cr3t"): the quoted text may be a
 * secret written inline. The line and column say where to look.
 */
function withoutSource(message: string): string {
  const i = message.indexOf(': ');
  return i < 0 ? message : message.slice(0, i);
}

/** "sources.<name>.accounts[0].client_secret" from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(root)';
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  const out: string[] = [];
  for (const i of issues) {
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push(`${formatPath([...i.path, k])}: unknown key`);
    } else if (i.code === 'invalid_type' && valueAt(input, i.path) === undefined) {
      out.push(`${formatPath(i.path)}: required`);
    } else if (i.code === 'invalid_union' && i.path.at(-1) === 'filter_id') {
      out.push(`${formatPath(i.path)}: must be a number`);
    } else {
      out.push(`${formatPath(i.path)}: ${i.message}`);
    }
  }
  return out;
}

const ENV_RE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Expands ${VAR} and ${VAR:-default} in every string value; $$ is a literal $. */
function expandEnv(node: unknown, path: PropertyKey[], env: Env, problems: string[]): unknown {
  if (typeof node === 'string') {
    return node.replace(ENV_RE, (whole, name: string | undefined, def: string | undefined) => {
      if (whole === '$$') return '$';
      const v = env[name!];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      problems.push(`${formatPath(path)}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(node)) return node.map((v, i) => expandEnv(v, [...path, i], env, problems));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, expandEnv(v, [...path, k], env, problems)]));
  }
  return node;
}

function readSecret(file: string, baseDir: string, path: string, problems: string[]): string {
  const full = isAbsolute(file) ? file : resolve(baseDir, file);
  try {
    const v = readFileSync(full, 'utf8').replace(/\r?\n$/, '');
    if (!v) problems.push(`${path}: file ${file} is empty`);
    return v;
  } catch (e) {
    problems.push(`${path}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    return '';
  }
}

/** Exactly one of `key` and `key_file`; the file's content (one trailing newline dropped) is the secret. */
function secret(obj: Record<string, unknown>, key: string, at: string, baseDir: string, problems: string[]): string {
  const inline = obj[key] as string | undefined;
  const file = obj[`${key}_file`] as string | undefined;
  if (inline !== undefined && file !== undefined) {
    problems.push(`${at}.${key}: give either ${key} or ${key}_file, not both`);
    return '';
  }
  if (file !== undefined) return readSecret(file, baseDir, `${at}.${key}_file`, problems);
  if (inline === undefined) problems.push(`${at}.${key}: required (or ${key}_file)`);
  return inline ?? '';
}

/** "no such file or directory (ENOENT)" from a Node errno error. */
function describeErrno(e: NodeJS.ErrnoException): string {
  const reason = e.code && e.syscall ? e.message.replace(new RegExp(`^${e.code}: `), '').replace(/, \w+ '.*'$/, '') : e.message;
  return e.code ? `${reason} (${e.code})` : reason;
}

/** 48 bits of SHA-256: exact as a float64 sample value, and enough to tell configs apart. */
export function configHash(text: string): number {
  return createHash('sha256').update(text, 'utf8').digest().readUIntBE(0, 6);
}

function resolveSecrets(raw: RawConfig, _env: Env, baseDir: string, hash: number): Config {
  const problems: string[] = [];
  const { sources, otlp, ...rest } = raw;
  const out: Config = { ...rest, sources: {}, warnings: [], shard: { ordinal: 0, total: 1 }, hash };
  if (otlp) {
    out.otlp = {
      ...otlp,
      headers: otlp.headers.map((h, i) => ({ name: h.name, value: secret(h, 'value', `otlp.headers[${i}]`, baseDir, problems) })),
    };
  }
  if (rest.engine.state_file !== undefined && !isAbsolute(rest.engine.state_file)) {
    out.engine = { ...rest.engine, state_file: resolve(baseDir, rest.engine.state_file) };
  }
  for (const source of SOURCES) {
    const block = (sources as Record<string, unknown>)[source.name];
    if (block === undefined) continue;
    const ctx: ResolveContext = {
      at: `sources.${source.name}`,
      secret: (obj, key, at) => secret(obj, key, at, baseDir, problems),
      path: (p) => (isAbsolute(p) ? p : resolve(baseDir, p)),
      problem: (at, message) => problems.push(`${at}: ${message}`),
      warn: (at, message) => out.warnings.push(`${at}: ${message}`),
    };
    out.sources[source.name] = source.resolve(block, ctx);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
