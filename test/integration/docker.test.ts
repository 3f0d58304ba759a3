import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { startExporter } from '../helpers/process.js';

// No Docker engine runs on our machines, so these check what can be checked without one: the
// files the Dockerfile copies, the command it runs, its health check, and every path of the
// compose file and of the configuration it mounts.
const root = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, { build?: string; image?: string; command?: string[]; volumes?: string[]; ports?: string[] }>;
};
const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/** Instructions of the Dockerfile, continuation lines joined. */
function instructions(): Array<{ op: string; args: string }> {
  return dockerfile
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'))
    .map((l) => {
      const m = /^(\w+)\s+(.*)$/.exec(l.trim())!;
      return { op: m[1]!.toUpperCase(), args: m[2]! };
    });
}

function jsonArg(op: string): string[] {
  const found = instructions().filter((i) => i.op === op).at(-1)!;
  const args = found.args.replace(/^--\S+\s+/g, '').replace(/^.*?CMD\s+/, '');
  return JSON.parse(args) as string[];
}

let child: ChildProcess | undefined;
afterEach(async () => {
  const c = child;
  child = undefined;
  if (c && c.exitCode === null && c.signalCode === null) {
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone; // the next test may listen on the same port
  }
});

describe('Dockerfile', () => {
  it('is multi-stage on Node 24, runs as non-root, and copies only files that exist and are not ignored', () => {
    const froms = instructions().filter((i) => i.op === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f.args).toMatch(/^node:24\b/);
    expect(instructions().find((i) => i.op === 'USER')?.args).toBe('node');
    const copies = instructions().filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      const parts = c.args.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        expect(existsSync(join(root, src)), `COPY ${src}`).toBe(true);
        expect(ignored.some((p) => src === p || src.startsWith(`${p}/`)), `${src} is in .dockerignore`).toBe(false);
      }
    }
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
  });

  it('its command, with the compose file arguments, starts the exporter, and its HEALTHCHECK passes', async () => {
    const entry = jsonArg('ENTRYPOINT');
    expect(entry.slice(1)).toEqual(['dist/main.js']);
    // the image's default CMD names the mounted config
    expect(jsonArg('CMD')).toEqual(['--config', '/etc/conviva-exporter/config.yml']);
    const args = compose.services.exporter!.command!;
    const ex = await startExporter(args, join(root, entry[1]!));
    child = ex.proc;
    const health = instructions().find((i) => i.op === 'HEALTHCHECK')!;
    const cmd = JSON.parse(/CMD\s+(\[.*\])$/.exec(health.args)![1]!) as string[];
    expect(cmd[0]).toBe('node');
    const r = spawnSync(process.execPath, cmd.slice(1), { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
  });

  it('its HEALTHCHECK also passes when --web.config.file turns TLS and basic auth on, and fails when nothing listens', async () => {
    const { makeTestPki } = await import('../helpers/tls.js');
    const { rmSync, copyFileSync } = await import('node:fs');
    const pki = makeTestPki();
    try {
      // The shipped example, with certificates beside it (the names it gives).
      copyFileSync(join(root, 'config/web-config.example.yml'), join(pki.dir, 'web.yml'));
      copyFileSync(pki.serverCert, join(pki.dir, 'server.crt'));
      copyFileSync(pki.serverKey, join(pki.dir, 'server.key'));
      const health = instructions().find((i) => i.op === 'HEALTHCHECK')!;
      const cmd = JSON.parse(/CMD\s+(\[.*\])$/.exec(health.args)![1]!) as string[];
      const check = () => spawnSync(process.execPath, cmd.slice(1), { encoding: 'utf8', timeout: 10_000 }).status;
      expect(check()).toBe(1); // nothing on 19440
      const ex = await startExporter([...compose.services.exporter!.command!, '--web.config.file', join(pki.dir, 'web.yml')], join(root, jsonArg('ENTRYPOINT')[1]!));
      child = ex.proc;
      expect(ex.url.startsWith('https://')).toBe(true);
      expect(check()).toBe(0);
    } finally {
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });
});

describe('docker-compose.yml', () => {
  it('mounts paths that exist, and the configs it mounts point at each other', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['exporter', 'grafana', 'prometheus']);
    expect(existsSync(join(root, compose.services.exporter!.build!, 'Dockerfile'))).toBe(true);
    const mounts = new Map<string, string>(); // container path -> repo path
    for (const s of Object.values(compose.services)) {
      for (const v of s.volumes ?? []) {
        const [src, dst] = v.split(':');
        expect(existsSync(join(root, src!)), `volume ${v}`).toBe(true);
        mounts.set(dst!, src!);
      }
    }
    const toRepo = (containerPath: string): string => {
      for (const [dst, src] of mounts) if (containerPath === dst || containerPath.startsWith(`${dst}/`)) return join(root, src, containerPath.slice(dst.length));
      throw new Error(`${containerPath} is not mounted`);
    };
    // Prometheus: its config's rule_files resolve, in the container, to our rule files (and not the tests)
    const promCfgPath = compose.services.prometheus!.command!.find((c) => c.startsWith('--config.file='))!.split('=')[1]!;
    const prom = parse(readFileSync(toRepo(promCfgPath), 'utf8')) as { rule_files: string[]; scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }> };
    for (const glob of prom.rule_files) {
      const containerGlob = posix.join(posix.dirname(promCfgPath), glob);
      const dir = toRepo(posix.dirname(containerGlob));
      const re = new RegExp(`^${posix.basename(containerGlob).replace(/\./g, '\\.').replace(/\*/g, '.*')}$`);
      const files = readdirSync(dir).filter((f) => re.test(f));
      expect(files.sort()).toEqual(readdirSync(join(root, 'prometheus/rules')).filter((f) => f.endsWith('.rules.yml')).sort());
    }
    // the scrape target is the exporter service on its port
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual([`exporter:${compose.services.exporter!.ports![0]!.split(':')[1]}`]);
    // Grafana: the datasource is the prometheus service, and the dashboard provider reads a mounted folder holding our dashboards
    const ds = parse(readFileSync(toRepo('/etc/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: Array<{ url: string; uid: string }> };
    expect(ds.datasources[0]!.url).toBe(`http://prometheus:${compose.services.prometheus!.ports![0]!.split(':')[1]}`);
    const prov = parse(readFileSync(toRepo('/etc/grafana/provisioning/dashboards/conviva-exporter.yml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    const dashDir = toRepo(prov.providers[0]!.options.path);
    const dashboards = readdirSync(dashDir).filter((f) => f.endsWith('.json'));
    expect(dashboards.length).toBeGreaterThanOrEqual(2);
    for (const f of dashboards) {
      const d = JSON.parse(readFileSync(join(dashDir, f), 'utf8')) as { panels: Array<{ datasource: { uid: string } }> };
      for (const p of d.panels) expect(p.datasource.uid, f).toBe(ds.datasources[0]!.uid);
    }
  });
});
