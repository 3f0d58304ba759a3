import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { describeSharding, parseShardFlags } from '../../src/engine/shard.js';
import { SOURCES } from '../../src/sources/index.js';

// deploy/kubernetes without a cluster: the manifests are YAML Kubernetes would take in shape, the
// StatefulSet runs as many shards as replicas with the ordinal from the pod index, and the
// ConfigMap's config validates with its secrets read from the Secret's mount.

const dir = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url));

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function manifests(): Obj[] {
  const out: Obj[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      expect(d.errors, f).toEqual([]);
      out.push({ ...(d.toJS() as Obj), file: f });
    }
  }
  return out;
}

const one = (all: Obj[], kind: string) => {
  const xs = all.filter((m) => m.kind === kind);
  expect(xs, kind).toHaveLength(1);
  return xs[0]!;
};

describe('deploy/kubernetes', () => {
  const all = manifests();
  const sts = one(all, 'StatefulSet');
  const pod = sts.spec.template.spec as Obj;
  const container = pod.containers[0] as Obj;
  const flag = (name: string) => (container.args as string[]).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

  it('every file is YAML with apiVersion, kind and a name, and kustomization lists the rest but the example Secret', () => {
    for (const m of all) {
      expect(typeof m.apiVersion, m.file).toBe('string');
      expect(typeof m.kind, m.file).toBe('string');
      if (m.kind !== 'Kustomization') expect(m.metadata.name, m.file).toBe('conviva-exporter');
    }
    const k = one(all, 'Kustomization');
    expect([...k.resources].sort()).toEqual(all.filter((m) => !['Kustomization', 'Secret'].includes(m.kind)).map((m) => m.file).sort());
  });

  it('the StatefulSet runs --total-shards replicas, each with its pod index as --shard', () => {
    expect(flag('total-shards')).toBe(String(sts.spec.replicas));
    expect(sts.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(sts.spec.ordinals?.start ?? 0).toBe(0);
    expect(flag('shard')).toBe('$(SHARD)');
    expect(container.env).toContainEqual({ name: 'SHARD', valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } } });
    // What Kubernetes passes: every pod index gives a valid shard.
    for (let i = 0; i < sts.spec.replicas; i++) expect(parseShardFlags(String(i), flag('total-shards'))).toEqual({ ordinal: i, total: sts.spec.replicas });
    expect(sts.spec.selector.matchLabels).toEqual(sts.spec.template.metadata.labels);
  });

  it('a headless Service is the StatefulSet\'s serviceName and selects its pods on the metrics port', () => {
    const svc = one(all, 'Service');
    expect(svc.spec.clusterIP).toBe('None');
    expect(sts.spec.serviceName).toBe(svc.metadata.name);
    expect(svc.spec.selector).toEqual(sts.spec.template.metadata.labels);
    expect(svc.spec.ports[0].targetPort).toBe(container.ports[0].name);
    expect(container.ports[0].containerPort).toBe(19440);
    expect(container.readinessProbe.httpGet.path).toBe('/-/ready');
    expect(container.livenessProbe.httpGet.path).toBe('/-/healthy');
  });

  it('the ConfigMap\'s config validates, its secrets come from files of the mounted Secret, its state file from a volume per pod', () => {
    const cm = one(all, 'ConfigMap');
    const mount = (name: string) => (container.volumeMounts as Obj[]).find((v) => v.name === name)!;
    const volume = (name: string) => (pod.volumes as Obj[]).find((v) => v.name === name);
    expect(volume('config')!.configMap.name).toBe(cm.metadata.name);
    expect(flag('config')).toBe(`${mount('config').mountPath}/config.yml`);
    const secret = one(all, 'Secret');
    expect(volume('secrets')!.secret.secretName).toBe(secret.metadata.name);
    expect(sts.spec.volumeClaimTemplates.map((t: Obj) => t.metadata.name)).toContain('state');
    expect(volume('state')).toBeUndefined(); // from the claim template: one per pod

    const text = cm.data['config.yml'] as string;
    const secretDir = mount('secrets').mountPath as string;
    const files = [...text.matchAll(/(\w+)_file: (\S+)/g)].filter((m) => m[1] !== 'state').map((m) => m[2]!);
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      expect(dirname(f), f).toBe(secretDir);
      expect(Object.keys(secret.stringData), f).toContain(f.slice(secretDir.length + 1));
    }
    // Validate as the exporter would, the Secret's files written to a folder of our own.
    const tmp = mkdtempSync(join(tmpdir(), 'deploy-'));
    try {
      mkdirSync(join(tmp, 'secrets'));
      for (const key of Object.keys(secret.stringData)) writeFileSync(join(tmp, 'secrets', key), 'x\n');
      const config = parseConfig(text.replaceAll(`${secretDir}/`, `${tmp}/secrets/`), {}, tmp);
      expect(config.engine.state_file!.startsWith(`${mount('state').mountPath}/`)).toBe(true);
      expect(Object.keys(config.sources).sort()).toEqual(['conviva', 'intelepeer', 'invision']);
      // Each shard polls something of every source in the example.
      const lines = describeSharding(SOURCES, config.sources, sts.spec.replicas).lines;
      expect(lines).toHaveLength(sts.spec.replicas);
      for (const l of lines) for (const s of ['conviva/', 'invision/', 'intelepeer/']) expect(l).toContain(s);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
