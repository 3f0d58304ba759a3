import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { App } from '../../src/app.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/engine/clock.js';
import { createLogger } from '../../src/logger.js';
import type { FaultRule } from '../../src/simulator/faults.js';
import { mulberry32 } from '../../src/simulator/hash.js';
import { Simulator } from '../../src/simulator/server.js';
import { SOURCES } from '../../src/sources/index.js';
import { parseExposition, type ParsedSample } from '../helpers/exposition.js';
import { requirePromtool } from '../helpers/promtool.js';
import { useSimulator } from '../helpers/stack.js';
import { fmt, report } from './figures.js';
import { STORM_PLUGINS } from './plugins/index.js';
import type { StormSecret } from './plugins/plugin.js';

// The fault storm: every registered source runs against the simulator for 1,000 simulated minutes
// on a manual clock, through 429s with and without Retry-After, 5xx bursts, hangs past the run
// deadline, malformed and truncated bodies, 413s, refused credentials, reloads (some doubled, some
// of a broken file), restarts from the state file (clean and mid-run) and clock steps both ways.
// Every minute /metrics is scraped over HTTP; at the end every counter must equal what the
// simulator served (each source's oracle), with nothing missed.

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 10, 23, 20, 0, 30);
const MINUTES = Number(process.env.STORM_MINUTES ?? 1000);
const SEED = 20261130;


type Kind =
  | '429 with Retry-After: 0' | '429 with a Retry-After past the deadline' | '429 without Retry-After' | '5xx burst'
  | 'hang past the deadline' | 'hang of a few requests' | 'malformed body' | 'truncated body' | '413 on wide requests'
  | '401 (echoing Authorization)' | '403';

interface Minute {
  /** Clock change before the run: one minute, plus or minus a step. */
  advance: number;
  kind?: Kind;
  /** The first minute of a fault episode. */
  episodeStart?: boolean;
  faults: FaultRule[];
  reload?: 'single' | 'doubled' | 'broken file';
  restart?: 'clean' | 'mid-run crash' | 'crash the instant a publish lands';
  /** A scrape while the run is in flight, as well as the one after it. */
  scrapeDuringRun: boolean;
}

/**
 * The storm's plan, minute by minute. Fault episodes last at most five minutes and follow a clean
 * minute; clock steps forward come only when every scope is caught up, and never with a fault
 * episode in the same minute; so no minute falls out of a source's catch-up window (15 minutes for
 * Conviva), and every minute revised late is read again after its last revision (6 minutes)
 * while it is still revisable (10 minutes after it settled: an episode of 5 minutes leaves a read),
 * so the oracle can ask for the final value of every minute.
 */
function plan(paths: string[], widePaths: string[]): Minute[] {
  const random = mulberry32(SEED); // the storm is the same on every run
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const on = (rule: Omit<FaultRule, 'match'>, among = paths): FaultRule[] => among.map((match) => ({ ...rule, match }));
  const out: Minute[] = [];
  let episode: { kind: Kind; left: number; rules: FaultRule[] } | undefined;
  let lag = 0; // minutes since every scope was last caught up
  for (let m = 0; m < MINUTES; m++) {
    const entry: Minute = { advance: MINUTE, faults: [], scrapeDuringRun: random() < 0.1 };
    if (m > 0 && !episode && lag === 0) {
      const r = random();
      if (r < 0.03) entry.advance += pick([1, 2, 3, 4]) * MINUTE; // clock stepped forward
      else if (r < 0.06) entry.advance -= pick([2, 5, 10, 30]) * MINUTE; // clock stepped back
    }
    const s = random();
    if (s < 0.007) entry.restart = 'clean';
    else if (s < 0.014) entry.restart = 'mid-run crash';
    else if (s < 0.021) entry.restart = !episode && lag === 0 ? 'crash the instant a publish lands' : 'clean';
    if (entry.restart === 'crash the instant a publish lands') {
      // The restarted exporter meets a partly failing upstream: it serves the failing scopes'
      // counters from the state file, so a state older than the last scrape would show.
      episode = { kind: '413 on wide requests', left: 1, rules: on({ kind: 'status', status: 413 }, widePaths) };
      entry.episodeStart = true;
    } else if (m > 0 && !episode && lag === 0 && entry.advance <= MINUTE && random() < 0.3) {
      const kind = pick<Kind>([
        '429 with Retry-After: 0', '429 with a Retry-After past the deadline', '429 without Retry-After', '5xx burst', '5xx burst',
        'hang past the deadline', 'hang of a few requests', 'malformed body', 'truncated body', '413 on wide requests',
        '401 (echoing Authorization)', '403',
      ]);
      const long = 1 + Math.floor(random() * 5);
      const rules: Record<Kind, () => { left: number; rules: FaultRule[] }> = {
        '429 with Retry-After: 0': () => ({ left: 1, rules: on({ kind: 'status', status: 429, retryAfter: 0, remaining: 4 }) }),
        '429 with a Retry-After past the deadline': () => ({ left: Math.min(long, 2), rules: on({ kind: 'status', status: 429, retryAfter: 120 }) }),
        '429 without Retry-After': () => ({ left: 1, rules: on({ kind: 'status', status: 429, remaining: 6 }) }),
        '5xx burst': () => ({ left: long, rules: on({ kind: 'status', status: pick([500, 502, 503, 504]) }) }),
        'hang past the deadline': () => ({ left: 1, rules: on({ kind: 'hang' }) }),
        'hang of a few requests': () => ({ left: 1, rules: on({ kind: 'hang', remaining: 3 }) }),
        'malformed body': () => ({ left: Math.min(long, 3), rules: on({ kind: 'malformed', ...(random() < 0.5 ? { remaining: 5 } : {}) }) }),
        'truncated body': () => ({ left: Math.min(long, 3), rules: on({ kind: 'truncate', ...(random() < 0.5 ? { remaining: 5 } : {}) }) }),
        '413 on wide requests': () => ({ left: Math.min(long, 3), rules: on({ kind: 'status', status: 413 }, widePaths) }),
        '401 (echoing Authorization)': () => ({ left: Math.min(long, 3), rules: on({ kind: 'status', status: 401, echoAuth: true }) }),
        '403': () => ({ left: Math.min(long, 2), rules: on({ kind: 'status', status: 403 }) }),
      };
      episode = { kind, ...rules[kind]() };
      entry.episodeStart = true;
    }
    if (episode) {
      entry.kind = episode.kind;
      entry.faults = episode.rules.map((r) => ({ ...r }));
      if (--episode.left === 0) episode = undefined;
      lag += Math.max(0, entry.advance / MINUTE);
    } else {
      lag = 0;
    }
    const r = random();
    if (r < 0.02) entry.reload = 'single';
    else if (r < 0.04) entry.reload = 'doubled';
    else if (r < 0.05) entry.reload = 'broken file';
    out.push(entry);
  }
  return out;
}

/**
 * promtool check metrics on every exposition, in a shell loop of its own: the expositions are
 * written to files and their names piped to it, so promtool runs on the other core whatever the
 * test's event loop is doing.
 */
class PromtoolQueue {
  private readonly dir = mkdtempSync(join(tmpdir(), 'storm-expositions-'));
  private readonly loop = spawn('bash', ['-c', `while IFS= read -r f; do
    if out=$(promtool check metrics < "$f" 2>&1); then echo "ok"; else printf 'refused %s %s\\n' "$f" "$(printf '%s' "$out" | tr '\\n' ' ' | cut -c1-400)"; fi
    rm -f "$f"
  done`], { stdio: ['pipe', 'pipe', 'inherit'] });
  private out = '';
  private readonly done: Promise<void>;
  private n = 0;
  private readonly names = new Map<string, string>();

  constructor() {
    this.loop.stdout.on('data', (d: Buffer) => (this.out += d.toString()));
    this.done = new Promise((resolve) => this.loop.on('close', () => resolve()));
  }

  check(text: string, what: string): void {
    const file = join(this.dir, `${++this.n}.prom`);
    writeFileSync(file, text);
    this.names.set(file, what);
    this.loop.stdin.write(`${file}\n`);
  }

  /** Waits for every check; returns how many were accepted and what was refused. */
  async finish(): Promise<{ checked: number; failures: string[] }> {
    this.loop.stdin.end();
    await this.done;
    rmSync(this.dir, { recursive: true, force: true });
    const lines = this.out.split('\n').filter(Boolean);
    const failures = lines.filter((l) => l.startsWith('refused ')).map((l) => {
      const [, file, ...rest] = l.split(' ');
      return `${this.names.get(file!) ?? file}: ${rest.join(' ')}`;
    });
    return { checked: lines.length, failures };
  }
}

/** Every form a credential could leak in. */
function leakForms(s: StormSecret): string[] {
  const forms = [s.secret, Buffer.from(s.secret).toString('base64'), `Bearer ${s.secret}`];
  if (s.id !== undefined) {
    const basic = Buffer.from(`${s.id}:${s.secret}`).toString('base64');
    forms.push(basic, `Basic ${basic}`);
  }
  return forms;
}

describe('fault storm', () => {
  it('every source registers into the fault suite', () => {
    expect(STORM_PLUGINS.map((p) => p.source).sort()).toEqual(SOURCES.map((s) => s.name).sort());
  });

  it('1,000 simulated minutes of faults, reloads, restarts and clock steps: every counter equals what the simulator served', async (ctx) => {
    requirePromtool(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'storm-'));
    const statePath = join(dir, 'state.json');
    for (const p of STORM_PLUGINS) for (const [name, content] of Object.entries(p.files ?? {})) writeFileSync(join(dir, name), content, { mode: 0o600 });
    const configText = (variant: 'a' | 'b') => `
log: { level: debug }
engine: { staleness: 30m, shutdown_grace: 200ms, state_file: ${statePath} }
sources:
${STORM_PLUGINS.map((p) => `  ${p.source}:${variant === 'b' ? p.configBlock.replace(/retries: \d+/, 'retries: 1') : p.configBlock}`).join('\n')}`;
    const secrets = STORM_PLUGINS.flatMap((p) => p.secrets);
    const forms = secrets.flatMap(leakForms);
    const leaks: string[] = [];
    const scanned = { logLines: 0, pages: 0, stateFiles: 0, errors: 0 };
    const scan = (what: keyof typeof scanned, text: string) => {
      scanned[what]++;
      for (const f of forms) if (text.includes(f)) leaks.push(`${what}: ${text.slice(0, 300)}`);
    };

    const clock = new ManualClock(T0);
    // The plug-ins' oracles know this seed. The simulator revises a quarter of its minutes late.
    const sim = new Simulator({ clock, seed: 11, sftp: 'embedded' });
    await sim.listen('127.0.0.1', 0);
    // Every terminal fault the simulator answers with, by kind (and status).
    const injected = new Map<string, number>();
    const pick = sim.faults.pick.bind(sim.faults);
    sim.faults.pick = (path: string) => {
      const r = pick(path);
      if (r.fault) {
        const k = r.fault.kind === 'status' ? `status ${r.fault.status}${r.fault.retryAfter !== undefined ? ` (Retry-After ${r.fault.retryAfter})` : ''}${r.fault.echoAuth ? ' echoing Authorization' : ''}` : r.fault.kind;
        injected.set(k, (injected.get(k) ?? 0) + 1);
      }
      return r;
    };

    const logLines: string[] = [];
    const badLogLines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line) continue;
          scan('logLines', line);
          logLines.push(line);
          try {
            JSON.parse(line);
          } catch {
            badLogLines.push(line);
          }
        }
        cb();
      },
    });
    const log = createLogger('debug', sink);
    const load = (variant: 'a' | 'b') => {
      const config = parseConfig(configText(variant), { SECRET_DIR: dir }, dir);
      useSimulator(config, sim.endpoints);
      return config;
    };
    const crashes: unknown[] = [];
    const onCrash = (e: unknown) => crashes.push(e);
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);

    // What a kill -9 the instant the exposition takes a collector's data would leave on disk.
    let onDiskAtPublish: string | null = null; // null: no file yet
    const watch = (a: App) => {
      const update = a.exposition.update.bind(a.exposition);
      a.exposition.update = (parts, remove) => {
        if (parts.some((p) => p.name.startsWith('data/'))) onDiskAtPublish = existsSync(statePath) ? readFileSync(statePath, 'utf8') : null;
        update(parts, remove);
      };
      return a;
    };
    let app = watch(await App.create({ config: load('a'), log, clock }));
    let url = await app.serve({ host: '127.0.0.1', port: 0 });
    const promtool = new PromtoolQueue();
    const highest = new Map<string, number>(); // data counters: never lower, across restarts too
    let epochHighest = new Map<string, number>(); // every _total: never lower within one process
    const dataFamilies = new Set(STORM_PLUGINS.flatMap((p) => p.counterFamilies));
    const stats = { runs: 0, runFailures: 0, scrapes: 0, scrapeErrors: 0, readings: 0, reloads: new Map<string, number>(), restarts: new Map<string, number>(), stepsBack: 0, stepsForward: 0, episodes: new Map<string, number>() };
    const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

    const scrape = async (what: string): Promise<ParsedSample[]> => {
      stats.scrapes++;
      const res = await fetch(`${url}/metrics`, { headers: { 'accept-encoding': stats.scrapes % 2 ? 'gzip' : 'identity' } });
      const text = await res.text();
      if (res.status !== 200) {
        stats.scrapeErrors++;
        throw new Error(`${what}: /metrics answered ${res.status}`);
      }
      scan('pages', text);
      promtool.check(text, what);
      const samples = parseExposition(text);
      for (const s of samples) {
        // prom-client's event-loop lag statistics read NaN until its first sample (just after a start).
        if (!(Number.isNaN(s.value) && s.name.startsWith('nodejs_eventloop_lag_'))) expect(Number.isFinite(s.value), `${what}: ${s.name} ${s.value}`).toBe(true);
        if (!s.name.endsWith('_total')) continue;
        const key = `${s.name}${JSON.stringify(s.labels)}`;
        stats.readings++;
        expect(s.value, `${what}: ${key} went down within one process`).toBeGreaterThanOrEqual(epochHighest.get(key) ?? 0);
        epochHighest.set(key, s.value);
        if (dataFamilies.has(s.name)) {
          expect(s.value, `${what}: ${key} came back lower than a scrape saw`).toBeGreaterThanOrEqual(highest.get(key) ?? 0);
          highest.set(key, s.value);
        }
      }
      return samples;
    };
    const pages = async () => {
      for (const path of ['/', '/-/healthy', '/-/ready']) scan('pages', await (await fetch(`${url}${path}`)).text());
    };
    // Every collector at once, as their schedules start them.
    const runAll = async () => {
      const results = await Promise.all(app.runner.collectorNames.map((name) => app.runner.run(name)));
      stats.runs += results.length;
      stats.runFailures += results.filter((r) => r !== 'success').length;
    };
    const restart = async (kind: NonNullable<Minute['restart']>) => {
      bump(stats.restarts, kind);
      if (kind === 'clean') {
        await app.stop();
      } else if (kind === 'crash the instant a publish lands') {
        const onDisk = onDiskAtPublish;
        await app.stop();
        if (onDisk === null) rmSync(statePath, { force: true });
        else writeFileSync(statePath, onDisk);
      } else {
        // A kill -9 while a run is in flight: what is on disk then is all the next process gets.
        sim.faults.set(STORM_PLUGINS.flatMap((p) => p.paths.map((match) => ({ kind: 'hang' as const, match }))));
        const inFlight = runAll();
        await new Promise((r) => setTimeout(r, 50));
        const onDisk = readFileSync(statePath, 'utf8');
        await app.stop();
        await inFlight;
        writeFileSync(statePath, onDisk);
      }
      scan('stateFiles', readFileSync(statePath, 'utf8'));
      app = watch(await App.create({ config: load('a'), log, clock }));
      url = await app.serve({ host: '127.0.0.1', port: 0 });
      epochHighest = new Map();
    };

    const minutes = plan(STORM_PLUGINS.flatMap((p) => p.paths), STORM_PLUGINS.flatMap((p) => p.widePaths ?? p.paths));
    const started = performance.now();
    const firstRunAt = clock.now();
    let maxReached = clock.now();
    await runAll(); // a clean first run: every scope starts counting here
    await scrape('first');
    let variant: 'a' | 'b' = 'a';
    for (const [i, m] of minutes.entries()) {
      const what = `minute ${i}${m.kind ? ` (${m.kind})` : ''}`;
      if (m.advance > MINUTE) stats.stepsForward++;
      if (m.advance < MINUTE) stats.stepsBack++;
      if (m.kind && m.episodeStart) bump(stats.episodes, m.kind);
      clock.set(clock.now() + m.advance);
      maxReached = Math.max(maxReached, clock.now());
      if (m.restart) await restart(m.restart);
      sim.faults.set(m.faults);
      const running = runAll();
      if (m.scrapeDuringRun) await scrape(`${what}, during the run`);
      if (m.reload) {
        bump(stats.reloads, m.reload);
        if (m.reload === 'broken file') {
          // The file as an operator half-edited it, with a secret inline; main.ts logs the problems.
          const broken = configText(variant).replace('client_secret: demo-secret }', 'client_secret: "demo-secret }');
          try {
            parseConfig(broken, { SECRET_DIR: dir }, dir);
            throw new Error('the broken file loaded');
          } catch (e) {
            expect(e).toBeInstanceOf(ConfigError);
            scan('errors', (e as ConfigError).message);
            log.error({ problems: (e as ConfigError).problems, file: 'storm.yml' }, 'configuration reload failed: keeping the running configuration');
          }
        } else {
          variant = variant === 'a' ? 'b' : 'a';
          const reloads = [app.reload(load(variant))];
          if (m.reload === 'doubled') {
            await new Promise((r) => setTimeout(r, 5));
            variant = variant === 'a' ? 'b' : 'a';
            reloads.push(app.reload(load(variant)));
          }
          await Promise.all(reloads);
        }
      }
      await running;
      if (m.reload && m.reload !== 'broken file') await runAll(); // the new pipeline's first run
      await scrape(what);
      if (i % 10 === 0) await pages();
      for (const st of app.engine!.status()) if (st.lastError) scan('errors', st.lastError);
    }

    // The end: no faults, the clock past every time the storm reached, one clean run.
    sim.faults.clear();
    clock.set(Math.max(clock.now(), maxReached) + MINUTE);
    const lastRunAt = clock.now();
    await runAll();
    const final = await scrape('final');
    await pages();
    await app.stop();
    scan('stateFiles', readFileSync(statePath, 'utf8'));
    const promtoolResult = await promtool.finish();
    await sim.close();
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    const seconds = (performance.now() - started) / 1000;

    expect(crashes).toEqual([]);
    expect(stats.scrapeErrors).toBe(0);
    expect(promtoolResult.failures).toEqual([]);
    expect(promtoolResult.checked).toBe(stats.scrapes);
    expect(badLogLines).toEqual([]);
    expect(leaks).toEqual([]);
    let countersChecked = 0;
    for (const p of STORM_PLUGINS) {
      const expected = p.expected(sim, { firstRunAt, lastRunAt, state: (JSON.parse(readFileSync(statePath, 'utf8')) as { collectors: Record<string, unknown> }).collectors });
      const served = final.filter((s) => p.counterFamilies.includes(s.name));
      const key = (s: ParsedSample) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
      const want = new Map(expected.map((s) => [key(s), s.value]));
      const got = new Map(served.map((s) => [key(s), s.value]));
      expect([...got.keys()].sort(), `${p.source}: the counter series served`).toEqual([...want.keys()].sort());
      for (const [k, v] of want) {
        expect(got.get(k), k).toBe(v);
        countersChecked++;
      }
      for (const z of p.mustBeZero ?? []) {
        const found = final.filter((s) => s.name === z.name && Object.entries(z.labels).every(([l, v]) => s.labels[l] === v));
        expect(found.map((s) => s.value), z.name).toEqual([0]);
      }
    }
    // The storm was a storm: every kind of fault hit, the exporter failed and recovered.
    expect(stats.runFailures).toBeGreaterThan(50);
    for (const k of ['status 429 (Retry-After 0)', 'status 429 (Retry-After 120)', 'status 429', 'hang', 'malformed', 'truncate', 'status 413', 'status 401 echoing Authorization', 'status 403']) {
      expect(injected.get(k) ?? 0, k).toBeGreaterThan(0);
    }
    expect([...injected.keys()].some((k) => /^status 50\d$/.test(k))).toBe(true);
    expect(stats.restarts.size).toBe(3);
    expect(stats.reloads.size).toBe(3);
    expect(stats.stepsBack).toBeGreaterThan(0);
    expect(stats.stepsForward).toBeGreaterThan(0);
    expect(countersChecked).toBeGreaterThan(100);

    const rows: Array<[string, number | string]> = [
      ['simulated minutes (plus a clean first and last run)', fmt(MINUTES)],
      ['collector runs / of them failed or partly failed', `${fmt(stats.runs)} / ${fmt(stats.runFailures)}`],
      ...[...stats.episodes].sort().map(([k, v]): [string, string] => [`fault episodes: ${k}`, fmt(v)]),
      ...[...injected].sort().map(([k, v]): [string, string] => [`requests answered with: ${k}`, fmt(v)]),
      ...[...stats.reloads].sort().map(([k, v]): [string, string] => [`reloads: ${k}`, fmt(v)]),
      ...[...stats.restarts].sort().map(([k, v]): [string, string] => [`restarts from the state file: ${k}`, fmt(v)]),
      ['clock steps back / forward', `${fmt(stats.stepsBack)} / ${fmt(stats.stepsForward)}`],
      ['scrapes of /metrics over HTTP / not answered 200', `${fmt(stats.scrapes)} / ${fmt(stats.scrapeErrors)}`],
      ['expositions promtool accepted / refused', `${fmt(promtoolResult.checked - promtoolResult.failures.length)} / ${fmt(promtoolResult.failures.length)}`],
      ['counter readings checked never to go down', fmt(stats.readings)],
      ['counters checked against the simulator at the end / wrong', `${fmt(countersChecked)} / 0`],
      ['crashes', fmt(crashes.length)],
      ['log lines, pages, state files, error messages scanned for secrets', `${fmt(scanned.logLines)}, ${fmt(scanned.pages)}, ${fmt(scanned.stateFiles)}, ${fmt(scanned.errors)}`],
      ['secrets found (each configured secret, Basic and Bearer encodings)', fmt(leaks.length)],
      ['wall time (s)', seconds.toFixed(0)],
    ];
    report('storm', {
      order: 1,
      title: 'The fault storm',
      about: `\`test/faults/storm.test.ts\`: every registered source (${STORM_PLUGINS.map((p) => p.source).join(', ')}) against the simulator for
${fmt(MINUTES)} minutes on a manual clock (the engine inline, the HTTP server real), seeded. Fault
episodes of one to five minutes follow clean minutes, so no minute falls out of a catch-up window;
reloads come while a run is in flight; a crash (mid-run, or the instant a publish lands, then
meeting a partly failing upstream) restarts from what was on disk at that moment. After every minute, \`/metrics\` is scraped over HTTP (every tenth minute \`/\` and the health
pages too) and every exposition goes through \`promtool check metrics\`. At the end every counter of
every source equals what its oracle says the simulator served, and no minute was missed.`,
      rows,
    });
  }, 600_000);
});
