import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseConfig, type Config } from '../../src/config/load.js';
import { Engine } from '../../src/engine/engine.js';
import { describeSharding, MAX_SHARDS, NO_SHARDING, parseShardFlags, shardBlock, shardOf, type ShardSpec } from '../../src/engine/shard.js';
import { defineSource, type AnySource } from '../../src/engine/source.js';
import { SOURCES } from '../../src/sources/index.js';
import { conviva } from '../../src/sources/conviva/index.js';
import type { ConvivaConfig } from '../../src/sources/conviva/config.js';
import { intelepeer } from '../../src/sources/intelepeer/index.js';
import type { IntelepeerConfig } from '../../src/sources/intelepeer/config.js';
import { invision } from '../../src/sources/invision/index.js';
import type { InvisionConfig } from '../../src/sources/invision/config.js';

// The key -> shard function, each source's sharding hook, and the engine building only what its
// shard owns. The two-shard run against the simulator is test/integration/shards.test.ts.

const CONFIG = `
sources:
  conviva:
    accounts:
      - { name: prod, client_id: a, client_secret: b }
      - { name: staging, client_id: a, client_secret: b }
      - { name: eu, client_id: a, client_secret: b }
      - { name: us, client_id: a, client_secret: b }
    ip_requests_per_5_minutes: 3000
  invision:
    base_url: https://invision.example.com/invision
    api_key: k
    handover_dir: /tmp/handover
    dataflows:
      - { id: df-hourly-sales, name: hourly-sales, schedule: "* * * * *" }
      - { id: df-nightly-load, name: nightly-load, schedule: "*/2 * * * *" }
      - { id: df-budget-sync, name: budget-sync }
    monitoring: { enabled: true, api_key: m }
  intelepeer:
    username: u
    password: p
    sftp: { host: sftp.example.com, username: s, password: p, host_key_fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }
    queries:
      - { name: flow-exits, event: ApplicationExitEvent }
      - { name: calls, event: CallEvent }
      - { name: dtmf-errors, event: DtmfEvent }
`;

const config = (): Config => parseConfig(CONFIG, {}, '/');
const spec = (ordinal: number, total: number): ShardSpec => ({ ordinal, total });

describe('shardOf: the first 4 bytes of SHA-256 of the key, modulo the number of shards', () => {
  it('gives the same shard for the same key on every replica and release (pinned values)', () => {
    // printf %s conviva/prod | sha256sum -> 02aec8cc... = 45009100
    expect([1, 2, 3, 4, 5].map((m) => shardOf('conviva/prod', m))).toEqual([0, 0, 1, 0, 0]);
    // 6cc6a92f = 1824958767
    expect([1, 2, 3, 4, 5].map((m) => shardOf('conviva/staging', m))).toEqual([0, 1, 0, 3, 2]);
    // 60fa20e5 = 1627005157
    expect([1, 2, 3, 4, 5].map((m) => shardOf('invision/monitoring', m))).toEqual([0, 1, 1, 1, 2]);
    expect(shardOf('conviva', 4)).toBe(0x4bdfcb7f % 4);
  });

  it('puts every key on exactly one shard for 1 to 5 shards, and spreads many keys evenly', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `conviva/account-${i}`);
    for (let m = 1; m <= 5; m++) {
      const counts = new Array<number>(m).fill(0);
      for (const k of keys) {
        const o = shardOf(k, m);
        expect(Number.isInteger(o) && o >= 0 && o < m).toBe(true);
        counts[o]!++;
      }
      expect(counts.reduce((a, b) => a + b, 0)).toBe(keys.length);
      for (const c of counts) expect(Math.abs(c - keys.length / m)).toBeLessThan((keys.length / m) * 0.15);
    }
    // Names one character apart do not all fall on one shard (FNV-1a's lowest bit would be their parity).
    expect(new Set(['eu-1', 'eu-3', 'eu-5', 'eu-7', 'eu-9'].map((n) => shardOf(`conviva/${n}`, 2))).size).toBe(2);
  });

  it('refuses a number of shards that is not a whole number >= 1', () => {
    expect(() => shardOf('x', 0)).toThrow(RangeError);
    expect(() => shardOf('x', 1.5)).toThrow(RangeError);
  });
});

describe('--shard and --total-shards', () => {
  it('are both given or neither; integers with 0 <= shard < total <= 1000', () => {
    expect(parseShardFlags(undefined, undefined)).toEqual(NO_SHARDING);
    expect(parseShardFlags('0', '1')).toEqual({ ordinal: 0, total: 1 });
    expect(parseShardFlags('1', '2')).toEqual({ ordinal: 1, total: 2 });
    expect(parseShardFlags('1', undefined)).toBe('--shard and --total-shards go together: give both, or neither (no sharding)');
    expect(parseShardFlags(undefined, '2')).toBe('--shard and --total-shards go together: give both, or neither (no sharding)');
    expect(parseShardFlags('2', '2')).toBe('--shard: expected a whole number from 0 to 1 (--total-shards 2), got "2"');
    expect(parseShardFlags('-1', '2')).toBe('--shard: expected a whole number from 0 to 1 (--total-shards 2), got "-1"');
    expect(parseShardFlags('1.0', '2')).toBe('--shard: expected a whole number from 0 to 1 (--total-shards 2), got "1.0"');
    expect(parseShardFlags('', '2')).toBe('--shard: expected a whole number from 0 to 1 (--total-shards 2), got ""');
    expect(parseShardFlags('0', '0')).toBe(`--total-shards: expected a whole number from 1 to ${MAX_SHARDS}, got "0"`);
    expect(parseShardFlags('0', 'two')).toBe(`--total-shards: expected a whole number from 1 to ${MAX_SHARDS}, got "two"`);
    expect(parseShardFlags('0', '1001')).toBe(`--total-shards: expected a whole number from 1 to ${MAX_SHARDS}, got "1001"`);
    expect(parseShardFlags('0', ' 2')).toBe(`--total-shards: expected a whole number from 1 to ${MAX_SHARDS}, got " 2"`);
  });
});

/** Every shard's view of one source's block, for `total` shards. */
function views<R>(source: AnySource, block: R, total: number) {
  return Array.from({ length: total }, (_, o) => shardBlock(source, block, spec(o, total)));
}

describe('each source\'s sharding hook', () => {
  it('units are keyed <source>/<key>: Conviva accounts, InVision data flows (by id) and the Monitoring log, IntelePeer queries', () => {
    const c = config();
    expect(shardBlock(conviva, c.sources.conviva, NO_SHARDING).units).toEqual(['conviva/prod', 'conviva/staging', 'conviva/eu', 'conviva/us']);
    expect(shardBlock(invision, c.sources.invision, NO_SHARDING).units).toEqual([
      'invision/dataflow/df-hourly-sales', 'invision/dataflow/df-nightly-load', 'invision/dataflow/df-budget-sync', 'invision/monitoring',
    ]);
    expect(shardBlock(intelepeer, c.sources.intelepeer, NO_SHARDING).units).toEqual(['intelepeer/flow-exits', 'intelepeer/calls', 'intelepeer/dtmf-errors']);
  });

  it('one shard is the block as it is, untouched', () => {
    const c = config();
    for (const s of SOURCES) {
      const v = shardBlock(s, c.sources[s.name], NO_SHARDING);
      expect(v.block).toBe(c.sources[s.name]);
      expect(v.owned).toEqual(v.units);
      expect(v.limits).toEqual([]);
    }
  });

  it('for 1 to 5 shards, every unit is kept by exactly one shard, and a shard that owns none gets no block', () => {
    const c = config();
    const unitsOf: Record<string, (b: unknown) => string[]> = {
      conviva: (b) => (b as ConvivaConfig).accounts.map((a) => `conviva/${a.name}`),
      invision: (b) => {
        const x = b as InvisionConfig;
        return [...x.dataflows.map((f) => `invision/dataflow/${f.id}`), ...(x.monitoring.enabled ? ['invision/monitoring'] : [])];
      },
      intelepeer: (b) => (b as IntelepeerConfig).queries.map((q) => `intelepeer/${q.name}`),
    };
    for (let m = 1; m <= 5; m++) {
      for (const s of SOURCES) {
        const vs = views(s, c.sources[s.name], m);
        const kept = vs.flatMap((v) => (v.block === undefined ? [] : unitsOf[s.name]!(v.block)));
        expect(kept.sort(), `${s.name}, ${m} shards`).toEqual([...vs[0]!.units].sort());
        expect(new Set(kept).size).toBe(kept.length);
        vs.forEach((v, o) => {
          expect(v.owned).toEqual(v.units.filter((u) => shardOf(u, m) === o));
          expect(v.block === undefined).toBe(v.owned.length === 0);
          if (v.block !== undefined) expect(unitsOf[s.name]!(v.block)).toEqual(v.owned);
        });
      }
    }
  });

  it('Conviva: each shard keeps its accounts and its accounts\' share of the per-IP limit', () => {
    const c = config();
    const whole = c.sources.conviva as ConvivaConfig;
    const [a, b] = views(conviva, whole, 2) as [ReturnType<typeof shardBlock<ConvivaConfig>>, ReturnType<typeof shardBlock<ConvivaConfig>>];
    // prod and us hash to 0, staging and eu to 1 (the integration test relies on this split too).
    expect(a.block!.accounts.map((x) => x.name)).toEqual(['prod', 'us']);
    expect(b.block!.accounts.map((x) => x.name)).toEqual(['staging', 'eu']);
    expect(a.block!.ip_requests_per_5_minutes).toBe(1500);
    expect(b.block!.ip_requests_per_5_minutes).toBe(1500);
    expect(a.limits).toEqual([{ source: 'conviva', name: 'ip_requests_per_5_minutes', limit: 3000, part: 1500, parts: [1500, 1500] }]);
    // The account budgets stay whole (each account is on one shard); the rest of the block is the same.
    expect(a.block!.realtime_requests_per_minute).toBe(whole.realtime_requests_per_minute);
    expect(a.block!.historical_requests_per_minute).toBe(whole.historical_requests_per_minute);
    expect({ ...a.block!, accounts: [], ip_requests_per_5_minutes: 0 }).toEqual({ ...whole, accounts: [], ip_requests_per_5_minutes: 0 });
    expect(whole.accounts).toHaveLength(4); // not changed in place
    // Three shards: the parts follow the accounts (prod 1, staging 0, eu 1, us 2).
    const three = views(conviva, whole, 3).map((v) => (v.block as ConvivaConfig | undefined)?.ip_requests_per_5_minutes);
    expect(three).toEqual([750, 1500, 750]);
    expect(three.reduce((x, y) => x! + y!, 0)).toBeLessThanOrEqual(3000);
  });

  it('InVision: flows by id, the Monitoring log on one shard, hand-overs to the shard their flow id hashes to', () => {
    const whole = config().sources.invision as InvisionConfig;
    const [a, b] = views(invision, whole, 2).map((v) => v.block as InvisionConfig);
    expect(a!.dataflows.map((f) => f.id)).toEqual(['df-hourly-sales']);
    expect(b!.dataflows.map((f) => f.id)).toEqual(['df-nightly-load', 'df-budget-sync']);
    expect(a!.monitoring.enabled).toBe(false);
    expect(b!.monitoring.enabled).toBe(true);
    expect(b!.monitoring.apiKey).toBe('m');
    expect(a!.handoverOwned!('df-hourly-sales')).toBe(true);
    expect(a!.handoverOwned!('df-nightly-load')).toBe(false);
    expect(b!.handoverOwned!('df-nightly-load')).toBe(true);
    // A flow in no config: exactly one shard takes (and removes) its file.
    expect([a!, b!].filter((x) => x.handoverOwned!('df-not-configured'))).toHaveLength(1);
    // Monitoring off: not a unit.
    const off = { ...whole, monitoring: { ...whole.monitoring, enabled: false } };
    expect(shardBlock(invision, off, NO_SHARDING).units).not.toContain('invision/monitoring');
  });

  it('IntelePeer: queries, and the customer\'s max_running_queries divided so the shards never run more at once', () => {
    const whole = config().sources.intelepeer as IntelepeerConfig;
    const vs = views(intelepeer, whole, 2);
    expect(vs.map((v) => (v.block as IntelepeerConfig).queries.map((q) => q.name))).toEqual([['flow-exits'], ['calls', 'dtmf-errors']]);
    expect(vs.map((v) => (v.block as IntelepeerConfig).max_running_queries)).toEqual([1, 1]);
    // Three queries on three shards (flow-exits 0, exits 1, dtmf 2) cannot share 2 slots: each takes 1.
    const three = { ...whole, queries: ['flow-exits', 'exits', 'dtmf'].map((name) => ({ ...whole.queries[0]!, name })) };
    const v3 = views(intelepeer, three, 3);
    expect(v3.map((v) => (v.block as IntelepeerConfig).max_running_queries)).toEqual([1, 1, 1]);
    expect(v3[0]!.limits).toEqual([{ source: 'intelepeer', name: 'max_running_queries', limit: 2, part: 1, parts: [1, 1, 1] }]);
  });

  it('a source without the hook is one unit, keyed by its name, run whole by one shard', () => {
    const plain = defineSource<unknown, { n: number }>({
      name: 'plain', configSchema: conviva.configSchema as never, resolve: () => ({ n: 1 }), families: [],
      build: () => [], fake: () => ({ mount: () => {} }), useSimulator: (c) => c,
    });
    const block = { n: 1 };
    for (let m = 1; m <= 5; m++) {
      const vs = views(plain, block, m);
      expect(vs[0]!.units).toEqual(['plain']);
      expect(vs.filter((v) => v.block === block)).toHaveLength(1);
      expect(vs.findIndex((v) => v.block !== undefined)).toBe(shardOf('plain', m));
    }
  });

  it('--check-config lists what each shard polls and the limits it divides', () => {
    const c = config();
    const d = describeSharding(SOURCES, c.sources, 2);
    expect(d.lines).toEqual([
      'shard 0 of 2 polls conviva/prod, conviva/us, invision/dataflow/df-hourly-sales, intelepeer/flow-exits (limits: conviva.ip_requests_per_5_minutes 1500 of 3000, intelepeer.max_running_queries 1 of 2)',
      'shard 1 of 2 polls conviva/staging, conviva/eu, invision/dataflow/df-nightly-load, invision/dataflow/df-budget-sync, invision/monitoring, intelepeer/calls, intelepeer/dtmf-errors (limits: conviva.ip_requests_per_5_minutes 1500 of 3000, intelepeer.max_running_queries 1 of 2)',
    ]);
    expect(d.warnings).toEqual([]);
    const ip = c.sources.intelepeer as IntelepeerConfig;
    c.sources.intelepeer = { ...ip, queries: ['flow-exits', 'exits', 'dtmf'].map((name) => ({ ...ip.queries[0]!, name })) };
    const d3 = describeSharding(SOURCES, c.sources, 3);
    expect(d3.warnings).toEqual(['sources.intelepeer.max_running_queries: 2 cannot be divided among the 3 shards that need a part: each takes 1, 3 together']);
  });
});

describe('the engine with a shard', () => {
  const engine = (c: Config, lines: object[] = []) => new Engine({
    config: c,
    log: pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s) as object) }),
    sink: { update: () => {} },
    version: 'test',
  });
  const gauge = async (e: Engine, name: string) => (await e.registry.getSingleMetric(name)!.get()).values.map((v) => ({ labels: v.labels, value: v.value }));

  it('builds only the collectors of the units it owns, exports its shard, and is ready with none of a source', async () => {
    const c = config();
    c.shard = { ordinal: 0, total: 2 };
    const lines: object[] = [];
    const e = engine(c, lines);
    // Shard 0 owns no Monitoring log: no invision_monitoring collector for /-/ready to wait for.
    expect(e.runner.collectorNames.sort()).toEqual(['conviva_realtime', 'intelepeer_queries', 'invision_dataflows']);
    expect(await gauge(e, 'conviva_exporter_shard_ordinal')).toEqual([{ labels: {}, value: 0 }]);
    expect(await gauge(e, 'conviva_exporter_total_shards')).toEqual([{ labels: {}, value: 2 }]);
    expect(await gauge(e, 'conviva_exporter_shard_units')).toEqual([
      { labels: { source: 'conviva' }, value: 2 }, { labels: { source: 'invision' }, value: 1 }, { labels: { source: 'intelepeer' }, value: 1 },
    ]);
    expect(lines).toContainEqual(expect.objectContaining({
      msg: 'sharding: the units of upstream work this replica polls', shard: 0, totalShards: 2,
      units: ['conviva/prod', 'conviva/us', 'invision/dataflow/df-hourly-sales', 'intelepeer/flow-exits'],
      limits: ['conviva.ip_requests_per_5_minutes: 1500 of 3000', 'intelepeer.max_running_queries: 1 of 2'],
    }));
    await e.stop();
  });

  it('a shard that owns nothing at all runs no collector and is ready', async () => {
    const c = parseConfig('sources:\n  intelepeer:\n    username: u\n    password: p\n    sftp: { host: h, username: s, password: p, host_key_fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }\n    queries:\n      - { name: flow-exits, event: ApplicationExitEvent }\n', {}, '/');
    c.shard = { ordinal: 1, total: 2 }; // intelepeer/flow-exits hashes to 0
    const e = engine(c);
    expect(e.runner.collectorNames).toEqual([]);
    expect(e.ready()).toBe(true);
    expect(await gauge(e, 'conviva_exporter_shard_units')).toEqual([{ labels: { source: 'intelepeer' }, value: 0 }]);
    await e.stop();
  });

  it('warns when a shared limit cannot be divided among the shards that need a part', async () => {
    const c = config();
    const ip = c.sources.intelepeer as IntelepeerConfig;
    c.sources.intelepeer = { ...ip, queries: ['flow-exits', 'exits', 'dtmf'].map((name) => ({ ...ip.queries[0]!, name })) };
    c.shard = { ordinal: 0, total: 3 };
    const lines: object[] = [];
    const e = engine(c, lines);
    expect(lines).toContainEqual(expect.objectContaining({
      level: 40, msg: 'sharding: a shared upstream limit is smaller than the shards that need a part of it; each takes 1, so together they may exceed it',
      source: 'intelepeer', limit: 'max_running_queries', value: 2,
    }));
    await e.stop();
  });

  it('without sharding nothing changes: every collector, shard 0 of 1, every unit counted', async () => {
    expect(config().shard).toEqual({ ordinal: 0, total: 1 }); // the default: --shard is not a YAML key
    expect(() => parseConfig('shard: { ordinal: 1, total: 2 }\nsources: {}', {}, '/')).toThrow('shard: unknown key');
    const e = engine(config());
    expect(e.runner.collectorNames.sort()).toEqual(['conviva_realtime', 'intelepeer_queries', 'invision_dataflows', 'invision_monitoring']);
    expect(await gauge(e, 'conviva_exporter_total_shards')).toEqual([{ labels: {}, value: 1 }]);
    expect(await gauge(e, 'conviva_exporter_shard_units')).toEqual([
      { labels: { source: 'conviva' }, value: 4 }, { labels: { source: 'invision' }, value: 4 }, { labels: { source: 'intelepeer' }, value: 3 },
    ]);
    await e.stop();
  });
});
