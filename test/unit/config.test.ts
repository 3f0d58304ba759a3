import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';
import { duplicates } from '../../src/config/fields.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';

const conviva = (c: { sources: Record<string, unknown> }) => c.sources.conviva as ConvivaConfig;

const dir = fileURLToPath(new URL('../fixtures/config/', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

function problems(file: string, env: Record<string, string> = {}): string[] {
  try {
    loadConfigFile(`${dir}${file}`, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

// Every rule has a fixture, asserted by exact message (blackbox_exporter's testdata/invalid-*.yml habit).
const BAD: Record<string, string[]> = {
  'bad-missing-secret.yml': ['sources.conviva.accounts[0].client_secret: required (or client_secret_file)'],
  'bad-unknown-key.yml': ['sources.conviva.realtime.metricz: unknown key'],
  'bad-metric.yml': [
    'sources.conviva.realtime.metrics[1]: must be one of: attempts, plays, concurrent-plays, unique-devices, video-start-failures, video-playback-failures, exit-before-video-starts, rebuffering-ratio, connection-induced-rebuffering-ratio, bitrate, framerate, video-start-time, video-restart-time, ended-plays',
  ],
  'bad-duration.yml': ['sources.conviva.realtime.timeout: invalid duration "50 seconds": expected a duration such as 30s, 5m or 1h30m'],
  'bad-cron.yml': ['sources.conviva.realtime.schedule: invalid cron expression "61 * * * *": minute field "61" is out of range 0-59'],
  'bad-cron-never.yml': ['sources.conviva.realtime.schedule: cron expression "0 0 1 * 1#5" never fires'],
  'bad-timeout-over-schedule.yml': ['sources.conviva.realtime.timeout: must be shorter than the shortest interval of schedule "* * * * *" (1m): a run must end before the next one is due'],
  'bad-base-url-path.yml': ['sources.conviva.base_url: is the API host, such as https://api.conviva.com; the exporter adds /insights/3.0 itself'],
  'bad-filter-id-with-dimensions.yml': ['sources.conviva.realtime.filters[1]: filter_id cannot be combined with dimensions or tags (Conviva answers 400)'],
  'bad-env-unset.yml': ['sources.conviva.accounts[0].client_id: environment variable CONVIVA_TEST_UNSET_VAR is not set'],
  'bad-secret-file-missing.yml': ['sources.conviva.accounts[0].client_secret_file: cannot read does-not-exist.txt (ENOENT)'],
  'bad-secret-twice.yml': ['sources.conviva.accounts[0].client_secret: give either client_secret or client_secret_file, not both'],
  'bad-duplicate-names.yml': [
    'sources.conviva.accounts: duplicate account name "prod"',
    'sources.conviva.realtime.filters: duplicate filter name "all"',
  ],
  'bad-no-accounts.yml': ['sources.conviva.accounts: needs at least one account'],
  'bad-no-sources.yml': ['sources: required'],
  // The YAML parser quotes source text in some messages; a secret written inline must not leak.
  'bad-yaml-secret-in-error.yml': ['yaml: Block scalar header includes extra characters at line 6, column 25'],
  'bad-yaml-unresolved-alias.yml': ['yaml: Unresolved alias (the anchor must be set before the alias)'],
  'bad-yaml-bomb.yml': ['yaml: Excessive alias count indicates a resource exhaustion attack'],
  'bad-values.yml': [
    'server.listen_address: expected host:port',
    'log.level: Invalid option: expected one of "trace"|"debug"|"info"|"warn"|"error"|"fatal"',
    'sources.conviva.base_url: must be an absolute http(s) URL',
    'sources.conviva.retries: Too small: expected number to be >=0',
    'sources.conviva.accounts[0].name: must be letters, digits, _ . : or -',
    'sources.conviva.accounts[0].client_secret: must not be empty',
    'sources.conviva.realtime.group_by[0]: expected a kebab-case dimension (device-os) or dimension-tag/<tag>',
    'sources.conviva.realtime.group_limit: Too big: expected number to be <=500',
    'sources.conviva.realtime.filters[0].filter_id: must be a number',
  ],
  // sources.invision: one fixture per rule of src/sources/invision/config.ts.
  'bad-invision-no-base-url.yml': ['sources.invision.base_url: required'],
  'bad-invision-api-key-twice.yml': ['sources.invision.api_key: give either api_key or api_key_file, not both'],
  'bad-invision-no-api-key.yml': ['sources.invision.api_key: required (or api_key_file)'],
  'bad-invision-no-dataflows.yml': ['sources.invision.dataflows: needs at least one data flow'],
  'bad-invision-duplicate-id.yml': ['sources.invision.dataflows: data flow id "df-nightly-load" listed twice'],
  'bad-invision-duplicate-name.yml': ['sources.invision.dataflows: data flow name "nightly-load" listed twice'],
  'bad-invision-cron-six-fields.yml': ['sources.invision.dataflows[0].schedule: data flows start on whole minutes: use 5 fields (minute hour day month weekday)'],
  'bad-invision-cron.yml': ['sources.invision.dataflows[0].schedule: invalid cron expression "0 25 * * *": hour field "25" is out of range 0-23'],
  'bad-invision-timezone.yml': ['sources.invision.timezone: unknown time zone "Europe/Olso": an IANA name such as UTC or Europe/Oslo'],
  'bad-invision-start-grace.yml': ['sources.invision.start_grace: must be at least 1m (ticks are whole minutes)'],
  'bad-invision-timeout-over-schedule.yml': ['sources.invision.timeout: must be shorter than the shortest interval of schedule "*/2 * * * *" (2m): a run must end before the next one is due'],
  'bad-invision-unknown-key.yml': ['sources.invision.dataflows[0].await: unknown key'],
  'bad-invision-dataflow-timeout-zero.yml': ['sources.invision.dataflows[0].timeout: must be longer than 0s'],
  'bad-invision-dataflow-id.yml': ['sources.invision.dataflows[0].id: must be letters, digits, _ . : or -'],
  'bad-invision-monitoring-no-api-key.yml': ['sources.invision.monitoring.api_key: required (or api_key_file)'],
  'bad-invision-unknown-run-after.yml': ['sources.invision.unknown_run_after: must be at least 1m (a 404 right after a start may be InVision catching up)'],
  'bad-intelepeer-query-timeout.yml': ['sources.intelepeer.query_timeout: must be at least 1m'],
  // otlp: one fixture per rule of the otlp block (src/config/schema.ts, load.ts).
  'bad-otlp.yml': [
    'otlp.endpoint: must not hold credentials: give them in headers (value_file)',
    'otlp.protocol: Invalid option: expected one of "http/protobuf"|"grpc"',
    'otlp.headers[0].name: must be an HTTP header name',
  ],
  'bad-otlp-endpoint.yml': ['otlp.endpoint: expected an http:// or https:// URL'],
  'bad-otlp-timeout.yml': ['otlp.timeout: must be shorter than interval: a push must end before the next one is due'],
  'bad-otlp-header-twice.yml': ['otlp.headers[0].value: give either value or value_file, not both'],
  // sources.intelepeer: one fixture per rule of src/sources/intelepeer/config.ts.
  'bad-intelepeer-no-host-key.yml': ['sources.intelepeer.sftp.host_key_fingerprint: required'],
  'bad-intelepeer-fingerprint.yml': ['sources.intelepeer.sftp.host_key_fingerprint: must be a SHA256 fingerprint as ssh-keygen -l prints it: SHA256: and 43 base64 characters'],
  'bad-intelepeer-key-and-password.yml': ['sources.intelepeer.sftp: give password (or password_file) or private_key_file, not both'],
  'bad-intelepeer-no-sftp-login.yml': ['sources.intelepeer.sftp: needs password (or password_file) or private_key_file'],
  'bad-intelepeer-no-queries.yml': ['sources.intelepeer.queries: needs at least one query'],
  'bad-intelepeer-queries.yml': [
    'sources.intelepeer.queries[0].event: must be a field name of the schema (letters, digits, _), as the Insights API spells it',
    'sources.intelepeer.queries[0].schedule: intervals are cut on whole minutes: use 5 fields (minute hour day month weekday)',
    'sources.intelepeer.queries[1].histograms[0]: needs both start and end',
    'sources.intelepeer.queries[2].filters.FlowId.$like: unknown key',
  ],
  'bad-intelepeer-query-labels.yml': [
    'sources.intelepeer.queries: query name "exits" listed twice',
    'sources.intelepeer.queries[0].group_by: field becomes label "query", which the exporter sets itself',
    'sources.intelepeer.queries[0].group_by: two fields become label "flow_name"',
    "sources.intelepeer.queries[1].max_interval: must be at least the schedule's interval (15m)",
    'sources.intelepeer.queries[1].filters.FlowId: needs an operator: $eq, $ne, $gt, $gte, $lt or $lte',
  ],
};

describe('config fixtures', () => {
  it('has an expectation for every bad fixture', () => {
    const files = readdirSync(dir).filter((f) => f.startsWith('bad-'));
    expect(files.sort()).toEqual(Object.keys(BAD).concat('bad-yaml.yml').sort());
  });

  for (const [file, expected] of Object.entries(BAD)) {
    it(`${file} is refused with the key path and reason`, () => {
      expect(problems(file)).toEqual(expected);
    });
  }

  it('bad YAML is refused with the parser position', () => {
    const p = problems('bad-yaml.yml');
    expect(p.length).toBeGreaterThan(0);
    expect(p[0]).toMatch(/^yaml: .+ at line \d+, column \d+/);
  });

  it('the config hash is 48 bits of the SHA-256 of the file text, before ${VAR} expansion', () => {
    const text = readFileSync(`${dir}ok-minimal.yml`, 'utf8');
    const c = loadConfigFile(`${dir}ok-minimal.yml`, {});
    expect(c.hash).toBe(parseInt(createHash('sha256').update(text).digest('hex').slice(0, 12), 16));
    expect(parseConfig(`${text}# another version\n`, {}, dir).hash).not.toBe(c.hash);
    const withEnv = 'sources:\n  conviva:\n    accounts: [{ name: prod, client_id: "${ID}", client_secret: s }]\n';
    expect(parseConfig(withEnv, { ID: 'a' }, dir).hash).toBe(parseConfig(withEnv, { ID: 'b' }, dir).hash);
  });

  it('a minimal config gets every default', () => {
    const c = loadConfigFile(`${dir}ok-minimal.yml`, {});
    expect(c.server.listen_address).toBe(':19440');
    expect(c.engine).toEqual({ staleness: 300_000, shutdown_grace: 10_000, series_idle_timeout: 3_600_000 });
    const cv = conviva(c);
    expect(cv.base_url).toBe('https://api.conviva.com');
    expect(cv.accounts).toEqual([{ name: 'prod', clientId: 'abc', clientSecret: 's3cret' }]);
    expect(cv.realtime).toMatchObject({ enabled: true, schedule: '* * * * *', timeout: 50_000, settle_delay: 60_000, group_by: [], filters: [{ name: 'all' }], max_series_per_metric: 5000 });
    expect(cv.realtime.metrics).toContain('bitrate');
  });

  it('an otlp block gets its defaults and reads header values from files', () => {
    expect(loadConfigFile(`${dir}ok-minimal.yml`, {}).otlp).toBeUndefined();
    expect(loadConfigFile(`${dir}ok-otlp.yml`, {}).otlp).toEqual({
      endpoint: 'http://otel-collector:4317',
      protocol: 'grpc',
      headers: [{ name: 'X-Api-Key', value: 's3cret-from-file' }],
      interval: 30_000,
      timeout: 10_000,
      compression: 'gzip',
      max_points_per_request: 5000,
      resource_attributes: { 'deployment.environment': 'prod' },
    });
  });

  it('expands ${ENV}, ${ENV:-default} and $$, and reads *_file secrets relative to the config', () => {
    const c = loadConfigFile(`${dir}ok-secrets-from-files-and-env.yml`, { CONVIVA_CLIENT_ID: 'from-env' });
    const cv = conviva(c);
    expect(cv.base_url).toBe('https://api.conviva.com');
    expect(cv.accounts[0]).toEqual({ name: 'prod', clientId: 'from-env', clientSecret: 's3cret-from-file' });
    expect(cv.realtime.filters[1]).toEqual({ name: 'beta', tags: { appVersion: ['5$beta'] } });
    expect(cv.realtime.timeout).toBe(25_000);
  });

  it('config/example.yml is valid but for its example secret file, which it names', () => {
    expect(problems(`../../../config/example.yml`, { CONVIVA_CLIENT_ID: 'id' })).toEqual([
      'sources.conviva.accounts[0].client_secret_file: cannot read /run/secrets/conviva_client_secret (ENOENT)',
      'sources.invision.api_key_file: cannot read /run/secrets/invision-api-key (ENOENT)',
      'sources.invision.monitoring.api_key_file: cannot read /run/secrets/invision-monitoring-key (ENOENT)',
      'sources.intelepeer.username_file: cannot read /run/secrets/intelepeer-username (ENOENT)',
      'sources.intelepeer.password_file: cannot read /run/secrets/intelepeer-password (ENOENT)',
      'sources.intelepeer.sftp.private_key_file: cannot read /run/secrets/intelepeer-sftp-key (ENOENT)',
    ]);
  });

  it('loads config/demo.yml', () => {
    const c = loadConfigFile(`${root}config/demo.yml`, { SIMULATOR_URL: 'http://127.0.0.1:1' });
    expect(conviva(c).accounts.map((a) => a.name)).toEqual(['demo', 'demo-eu']);
    expect(conviva(c).realtime.group_by).toEqual(['device-os', 'cdn', 'geo-country-code', 'dimension-tag/appVersion']);
  });
});

describe('size', () => {
  it('refuses a config over 1 MiB before parsing it', () => {
    const text = `sources: {}\n# ${'x'.repeat(1024 * 1024)}\n`;
    expect(() => parseConfig(text, {}, '.')).toThrow(ConfigError);
    try {
      parseConfig(text, {}, '.');
    } catch (e) {
      expect((e as ConfigError).problems).toEqual([`file is ${Buffer.byteLength(text)} bytes; a configuration is at most 1048576 bytes (1 MiB)`]);
    }
  });
});

describe('duplicates', () => {
  it('names each repeated name once, in order of first repeat', () => {
    expect(duplicates(['a', 'b', 'a', 'c', 'b', 'a'])).toEqual(['a', 'b']);
    expect(duplicates([])).toEqual([]);
    const many = Array.from({ length: 100_000 }, (_, i) => `f${i}`);
    expect(duplicates([...many, 'f5'])).toEqual(['f5']);
  });
});

describe('durations', () => {
  it('parses Prometheus-style durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('30')).toBeUndefined();
    expect(parseDuration('1.5s')).toBeUndefined();
  });
});

describe('Conviva request budget warnings', () => {
  const warnings = (yaml: string) => parseConfig(yaml, {}, root).warnings;
  const accounts = (n: number) => Array.from({ length: n }, (_, i) => `      - { name: a${i}, client_id: id, client_secret: secret }`).join('\n');

  it('keeps the arithmetic of requests when every filter costs 1', () => {
    expect(loadConfigFile(`${dir}warn-budget.yml`, {}).warnings).toEqual([
      'sources.conviva.realtime_requests_per_minute: a minute needs 18 requests per account (real time: 3 filters × (1 + 3 group_by) × 1 metric chunks = 12; DPI Flow: 2 models named in include × (1 + 2 group_by) = up to 6), more than the budget of 15: runs will end early with BUDGET_EXHAUSTED',
    ]);
  });

  it('counts a real-time request at its filter\'s cost (one per filter key) against realtime_requests_per_minute', () => {
    const config = (budget: number) => `
sources:
  conviva:
    realtime_requests_per_minute: ${budget}
    accounts:
${accounts(1)}
    realtime:
      group_by: [device-os]
      filters:
        - { name: all }
        - { name: mix, dimensions: { device_os: [iOS, Android], isp: [A] }, tags: { appVersion: ["5"] } }
`;
    // 4 requests a minute, costing (1 + 3) × 2 = 8.
    expect(warnings(config(8))).toEqual([]);
    expect(warnings(config(7))).toEqual([
      'sources.conviva.realtime_requests_per_minute: a minute needs 8 requests per account, counting a request with n filter keys as n (real time: 2 filters costing (1 + 3) × (1 + 1 group_by) × 1 metric chunks = 8), more than the budget of 7: runs will end early with BUDGET_EXHAUSTED',
    ]);
  });

  it('warns when 5 minutes of every account\'s requests exceed ip_requests_per_5_minutes (requests, not cost)', () => {
    const config = (limit: number) => `
sources:
  conviva:
    ip_requests_per_5_minutes: ${limit}
    accounts:
${accounts(3)}
    realtime:
      group_by: [device-os, cdn]
      filters: [{ name: two, dimensions: { device_os: [iOS], isp: [A] } }]
    flows:
      enabled: true
      include: [fm_login_01, "Sign*"]
      group_by: [platform]
`;
    // A minute per account: 3 real-time requests (costing 6) + 2 flow requests; × 5 minutes × 3 accounts.
    expect(warnings(config(75))).toEqual([]);
    expect(warnings(config(74))).toEqual([
      'sources.conviva.ip_requests_per_5_minutes: 5 minutes need 75 requests from this IP address (5 minutes × 5 requests × 3 accounts; a minute per account: real time: 1 filters × (1 + 2 group_by) × 1 metric chunks = 3; DPI Flow: 1 models named in include × (1 + 1 group_by) = up to 2), more than the limit of 74: runs will end early with BUDGET_EXHAUSTED',
    ]);
  });

  it('ip_requests_per_5_minutes defaults to 3000 and must be a positive integer', () => {
    const block = (extra: string) => `sources:\n  conviva:\n${extra}    accounts:\n${accounts(1)}\n`;
    expect(conviva(parseConfig(block(''), {}, root)).ip_requests_per_5_minutes).toBe(3000);
    for (const bad of ['0', '1.5']) {
      expect(() => parseConfig(block(`    ip_requests_per_5_minutes: ${bad}\n`), {}, root)).toThrow(ConfigError);
    }
    try {
      parseConfig(block('    ip_requests_per_5_minutes: 0\n'), {}, root);
    } catch (e) {
      expect((e as ConfigError).problems).toEqual(['sources.conviva.ip_requests_per_5_minutes: Too small: expected number to be >=1']);
    }
  });
});
