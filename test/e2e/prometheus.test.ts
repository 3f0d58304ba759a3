import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startExporter, waitFor } from '../helpers/process.js';
import { prometheusApi } from '../helpers/prometheus-api.js';

// The exporter in demo mode, scraped by Debian's prometheus with our prometheus.yml (ports and
// intervals substituted) and a copy of our rules whose `for:` is shortened; everything through
// Prometheus's HTTP API.
const root = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'e2e-'));
const procs: ChildProcess[] = [];
let exporterUrl = '';
let simulatorUrl = '';
let promUrl = '';
const { api, query } = prometheusApi(() => promUrl);

/** Dashboard variables filled in as a person would pick them; a dashboard's own dimensions where they differ. */
const VARIABLES: Record<string, string> = { account: 'demo', filter: 'all', dimension: 'device_os', value: '.*', instance: '.*', flow: '.*' };
const DASHBOARD_VARIABLES: Record<string, Record<string, string>> = {
  'conviva-flows.json': { dimension: 'platform' },
  'conviva-sessions.json': { dimension: 'device_os_family' },
};


/** Prometheus needs a few scrapes and evaluations before most answers exist. */
function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  return waitFor(what, fn, ms);
}




beforeAll(async () => {
  expect(spawnSync('prometheus', ['--version']).status, 'Debian package prometheus must be installed').toBe(0);
  // Exporter: the demo config polling every 5 s, so a fault shows within seconds.
  const cfg = parse(readFileSync(join(root, 'config/demo.yml'), 'utf8')) as { sources: { conviva: Record<string, unknown> & { realtime: Record<string, unknown> } } };
  Object.assign(cfg.sources.conviva, { retries: 1, retry_base_delay: '100ms' });
  Object.assign(cfg.sources.conviva.realtime, { schedule: '*/5 * * * * *', timeout: '4s' });
  writeFileSync(join(work, 'exporter.yml'), stringify(cfg));
  const exporter = await startExporter(['--demo', '--config', join(work, 'exporter.yml'), '--web.listen-address', '127.0.0.1:0']);
  procs.push(exporter.proc);
  exporterUrl = exporter.url;
  simulatorUrl = await until('simulator URL logged', async () => exporter.simulatorUrl, 10_000);

  // Rules: a copy with every `for:` shortened to 10s.
  const rulesDir = join(work, 'rules');
  mkdirSync(rulesDir);
  for (const f of readdirSync(join(root, 'prometheus/rules')).filter((x) => x.endsWith('.rules.yml'))) {
    writeFileSync(join(rulesDir, f), readFileSync(join(root, 'prometheus/rules', f), 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 10s'));
  }
  // Prometheus: our prometheus.yml with the exporter's port, 2 s intervals and the rules copy.
  const prom = parse(readFileSync(join(root, 'prometheus.yml'), 'utf8')) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
  };
  Object.assign(prom.global, { scrape_interval: '2s', evaluation_interval: '2s', scrape_timeout: '2s' });
  prom.rule_files = [join(rulesDir, '*.rules.yml')];
  prom.scrape_configs[0]!.static_configs[0]!.targets = [new URL(exporterUrl).host];
  writeFileSync(join(work, 'prometheus.yml'), stringify(prom));
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  const p = spawn('prometheus', [`--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: 'ignore' });
  procs.push(p);
  await until('prometheus ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined));
});

afterAll(() => {
  for (const p of procs) p.kill('SIGTERM');
});

describe('end to end with a real Prometheus', () => {
  it('scrapes the exporter target as up', async () => {
    const up = await until('target up', async () => {
      const r = await query('up{job="conviva-exporter"}');
      return r.length === 1 && r[0]!.value[1] === '1' ? r : undefined;
    });
    expect(up[0]!.metric.instance).toBe(new URL(exporterUrl).host);
  });

  it('every query of every dashboard panel, variables filled in, returns at least one series', async () => {
    const dir = join(root, 'grafana/dashboards');
    let checked = 0;
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
      const vars = { ...VARIABLES, ...DASHBOARD_VARIABLES[f] };
      const fill = (q: string) => q.replace(/\$(\w+)/g, (_, v: string) => vars[v] ?? `$${v}`);
      const d = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
        templating: { list: Array<{ name: string; definition: string }> };
      };
      for (const v of d.templating.list) {
        const m = /^label_values\((.+), (\w+)\)$/.exec(fill(v.definition))!;
        const values = await until(`${f} variable ${v.name}`, async () => {
          const r = await api<string[]>(`label/${m[2]}/values?match[]=${encodeURIComponent(m[1]!)}`);
          return r.length > 0 ? r : undefined;
        });
        if (vars[v.name] !== '.*') expect(values, `${f} variable ${v.name}`).toContain(vars[v.name]);
      }
      for (const p of d.panels) {
        for (const t of p.targets) {
          const expr = fill(t.expr);
          expect(expr, `${f} / ${p.title}: unfilled variable`).not.toMatch(/\$\w/);
          // InVision panels need a data flow run to have ended: the demo starts them at the next minute.
          await until(`${f} / ${p.title}: ${expr}`, async () => ((await query(expr)).length > 0 ? true : undefined), 150_000);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('loads every rule and evaluates it without error', async () => {
    const groups = await until('every rule evaluated', async () => {
      const g = await api<{ groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string; lastEvaluation: string }> }> }>('rules');
      const all = g.groups.flatMap((x) => x.rules);
      return all.length > 0 && all.every((r) => !r.lastEvaluation.startsWith('0001')) ? g.groups : undefined;
    });
    const rules = groups.flatMap((g) => g.rules);
    const expected = readdirSync(join(root, 'prometheus/rules'))
      .filter((x) => x.endsWith('.rules.yml'))
      .flatMap((f) => (parse(readFileSync(join(root, 'prometheus/rules', f), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; record?: string }> }> }).groups.flatMap((g) => g.rules.map((r) => r.alert ?? r.record)));
    expect(rules.map((r) => r.name).sort()).toEqual(expected.sort());
    for (const r of rules) expect({ rule: r.name, health: r.health, error: r.lastError ?? '' }).toEqual({ rule: r.name, health: 'ok', error: '' });
  });

  it('an upstream storm drives ConvivaCollectorDown to pending/firing, and clearing it resolves the alert', async () => {
    // The real-time collector's alert (the demo runs flows and sessions too, on their own schedules).
    const collectorAlert = async () =>
      (await api<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>('alerts')).alerts.filter(
        (a) => a.labels.alertname === 'ConvivaCollectorDown' && a.labels.collector === 'conviva_realtime',
      );
    expect(await collectorAlert()).toEqual([]);
    const storm = [{ kind: 'status', status: 500, match: '/insights/3.0/real-time-metrics' }];
    const put = await fetch(`${simulatorUrl}/_admin/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(storm) });
    expect(put.ok).toBe(true);
    const firing = await until('ConvivaCollectorDown firing', async () => {
      const a = await collectorAlert();
      return a.some((x) => x.state === 'firing') ? a : undefined;
    });
    expect(firing[0]!.labels).toMatchObject({ collector: 'conviva_realtime', severity: 'critical' });
    // /metrics keeps answering during the storm, with the collector down
    const text = await (await fetch(`${exporterUrl}/metrics`)).text();
    expect(text).toContain('conviva_exporter_collector_up{collector="conviva_realtime"} 0');
    await fetch(`${simulatorUrl}/_admin/faults`, { method: 'DELETE' });
    await until('ConvivaCollectorDown resolved', async () => ((await collectorAlert()).length === 0 ? true : undefined));
    const up = await query('conviva_exporter_collector_up{collector="conviva_realtime"}');
    expect(up[0]!.value[1]).toBe('1');
  });
});
