import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type RawConfig } from './schema.js';

/** A config that cannot be used; `problems` are "key.path: reason" lines, in document order. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export interface ConvivaAccount {
  name: string;
  clientId: string;
  clientSecret: string;
}

export type Config = Omit<RawConfig, 'sources'> & {
  sources: {
    conviva?: Omit<NonNullable<RawConfig['sources']['conviva']>, 'accounts'> & { accounts: ConvivaAccount[] };
  };
};

type Env = Record<string, string | undefined>;

/** Reads, expands and validates a config file; throws ConfigError naming every bad key. */
export function loadConfigFile(path: string, env: Env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`]);
  }
  return parseConfig(text, env, dirname(resolve(path)));
}

/** Validates config text; `baseDir` resolves relative *_file paths. */
export function parseConfig(text: string, env: Env, baseDir: string): Config {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const msg = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return `yaml: ${msg}${at ? ` at line ${at.line}, column ${at.col}` : ''}`;
      }),
    );
  }
  const problems: string[] = [];
  const expanded = expandEnv(doc.toJS() ?? {}, [], env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const parsed = configSchema.safeParse(expanded);
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues, expanded));
  return resolveSecrets(parsed.data, env, baseDir);
}

/** "sources.conviva.accounts[0].client_secret" from a zod path. */
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

function duplicates(names: string[]): string[] {
  return names.filter((n, i) => names.indexOf(n) !== i);
}

function resolveSecrets(raw: RawConfig, _env: Env, baseDir: string): Config {
  const problems: string[] = [];
  const { sources, ...rest } = raw;
  const out: Config = { ...rest, sources: {} };
  if (rest.engine.state_file !== undefined && !isAbsolute(rest.engine.state_file)) {
    out.engine = { ...rest.engine, state_file: resolve(baseDir, rest.engine.state_file) };
  }
  if (sources.conviva) {
    const c = sources.conviva;
    const at = 'sources.conviva';
    const accounts = c.accounts.map((a, i) => ({
      name: a.name,
      clientId: secret(a, 'client_id', `${at}.accounts[${i}]`, baseDir, problems),
      clientSecret: secret(a, 'client_secret', `${at}.accounts[${i}]`, baseDir, problems),
    }));
    for (const d of duplicates(c.accounts.map((a) => a.name))) problems.push(`${at}.accounts: duplicate account name "${d}"`);
    for (const d of duplicates(c.realtime.filters.map((f) => f.name))) problems.push(`${at}.realtime.filters: duplicate filter name "${d}"`);
    for (const d of duplicates(c.realtime.group_by)) problems.push(`${at}.realtime.group_by: "${d}" listed twice`);
    if (c.ca_file !== undefined) c.ca_file = isAbsolute(c.ca_file) ? c.ca_file : resolve(baseDir, c.ca_file);
    out.sources.conviva = { ...c, accounts };
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
