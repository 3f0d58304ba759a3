import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { useSimulator } from '../helpers/stack.js';
import { find, value } from '../helpers/exposition.js';
import { flowFake, flowSettled, flowSettledSum, type FlowCountKey } from '../conviva/expected.js';
import { MINUTE, T0, startRealtimeStack as startStack, type Stack } from '../conviva/stack.js';

const SEED = 7; // startStack's
const FLOW_CONFIG = `
engine: { staleness: 5m, shutdown_grace: 2s }
sources:
  conviva:
    request_timeout: 400ms
    retries: 1
    retry_base_delay: 10ms
    retry_max_delay: 40ms
    accounts:
      - { name: demo, client_id: demo-client, client_secret: demo-secret }
    realtime: { enabled: false }
    flows:
      enabled: true
      timeout: 10s
      group_by: [platform, app_version]
`;
const SETTLED_AT_T0 = Math.floor((T0 - 2 * MINUTE) / MINUTE) * MINUTE;
const COUNTERS: Array<[string, FlowCountKey]> = [
  ['conviva_flow_inits_total', 'init'],
  ['conviva_flow_completions_total', 'complete'],
  ['conviva_flow_successes_total', 'success'],
  ['conviva_flow_errors_total', 'error'],
];

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** Every flow label set the config asks for, with the rows the simulator serves. */
function flowRows(s: Stack, models = ['fm_login_01', 'fm_signup_01', 'fm_checkout_01', 'fm_playback_start']) {
  const out: Array<{ model: string; label: string; dimension?: string; value?: string }> = [];
  for (const id of models) {
    const m = flowFake(s.sim).models('demo').find((x) => x.id === id)!;
    out.push({ model: id, label: m.label });
    for (const d of ['platform', 'app_version']) {
      if (!m.dimensions.includes(d)) continue;
      for (const r of flowFake(s.sim).rows('demo', id, d)) out.push({ model: id, label: m.label, dimension: d, value: r.value });
    }
  }
  return out;
}
const labels = (r: { model: string; label: string; dimension?: string; value?: string }) => ({ account: 'demo', flow_model_id: r.model, flow: r.label, dimension: r.dimension ?? 'total', value: r.value ?? 'total' });

describe('DPI Flow collectors', () => {
  it('list the models (with one warning per dimension a model lacks) and serve gauges in base units for the metrics each model lists', async () => {
    stack = await startStack({ configText: FLOW_CONFIG });
    const s = stack;
    expect(s.app.runner.collectorNames.sort()).toEqual(['conviva_flow', 'conviva_flow_models']);
    const { result, samples } = await s.run('conviva_flow_models');
    expect(result).toBe('success');
    expect(find(samples, 'conviva_flow_model_info').map((x) => x.labels).sort((a, b) => a.flow_model_id!.localeCompare(b.flow_model_id!))).toEqual([
      { account: 'demo', flow_model_id: 'fm_checkout_01', flow: 'Checkout', conviva_defined: 'false' },
      { account: 'demo', flow_model_id: 'fm_login_01', flow: 'Login', conviva_defined: 'false' },
      { account: 'demo', flow_model_id: 'fm_playback_start', flow: 'Playback start', conviva_defined: 'true' },
      { account: 'demo', flow_model_id: 'fm_signup_01', flow: 'Sign-up', conviva_defined: 'false' },
    ]);
    const lacking = () => s.logs.filter((l) => l.msg === 'flow model does not list a configured dimension: that grouping is skipped for it').map((l) => `${l.flowModelId as string}/${l.dimension as string}`);
    expect(lacking().sort()).toEqual(['fm_checkout_01/app_version', 'fm_signup_01/app_version']);
    await s.run('conviva_flow_models');
    expect(lacking()).toHaveLength(2); // once, not every listing

    const flow = await s.run('conviva_flow');
    expect(flow.result).toBe('success');
    const rows = flowRows(s);
    expect(find(flow.samples, 'conviva_flow_inits')).toHaveLength(rows.length);
    for (const r of rows) {
      const v = flowSettled(s.sim, SEED, 'demo', r.model, r.dimension, r.value, SETTLED_AT_T0);
      expect(value(flow.samples, 'conviva_flow_inits', labels(r))).toBe(v.init);
      expect(value(flow.samples, 'conviva_flow_errors', labels(r))).toBe(v.error);
      expect(value(flow.samples, 'conviva_flow_success_ratio', labels(r))).toBe(Number((v.percentage / 100).toPrecision(15)));
      const durations = find(flow.samples, 'conviva_flow_average_duration_seconds', labels(r));
      // Sign-up does not list avg_duration: no series, rather than a zero.
      if (r.model === 'fm_signup_01') expect(durations).toEqual([]);
      else expect(durations.map((d) => d.value)).toEqual([v.avg_duration / 1000]);
    }
  });

  it('count every settled minute once across faults, re-reads and a restart from the state file', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'flow-')), 'state.json');
    stack = await startStack({ configText: FLOW_CONFIG, mutate: (c) => (c.engine.state_file = path) });
    let s = stack;
    expect((await s.run('conviva_flow')).result).toBe('success'); // lists the models itself on its first run
    const steps: Array<{ advance: number; faults?: Array<{ kind: 'status'; status: number; match?: string }>; runs?: number }> = [
      { advance: MINUTE },
      { advance: MINUTE, faults: [{ kind: 'status', status: 500, match: '/flow-data/real-time-metrics' }] },
      { advance: MINUTE, faults: [{ kind: 'status', status: 503, match: 'group-by/platform' }] },
      { advance: 20_000, runs: 3 },
      { advance: 40_000 },
      { advance: 3 * MINUTE },
    ];
    for (const step of steps) {
      s.clock.advance(step.advance);
      s.sim.faults.set(step.faults ?? []);
      for (let i = 0; i < (step.runs ?? 1); i++) await s.run('conviva_flow');
    }
    s.sim.faults.clear();
    const at = s.clock.now();
    await s.close();
    // Five minutes later a new process starts from the file.
    stack = await startStack({ configText: FLOW_CONFIG, start: at + 5 * MINUTE, mutate: (c) => (c.engine.state_file = path) });
    s = stack;
    const { result, samples } = await s.run('conviva_flow');
    expect(result).toBe('success');
    const last = Math.floor((s.clock.now() - 2 * MINUTE) / MINUTE) * MINUTE;
    const rows = flowRows(s);
    let checked = 0;
    for (const r of rows) {
      for (const [family, key] of COUNTERS) {
        expect(value(samples, family, labels(r)), `${family} ${JSON.stringify(labels(r))}`).toBe(flowSettledSum(s.sim, SEED, 'demo', r.model, r.dimension, r.value, SETTLED_AT_T0, last, key));
        checked++;
      }
    }
    expect(checked).toBe(rows.length * 4);
    expect(find(samples, 'conviva_flow_inits_total')).toHaveLength(rows.length);
  });

  it("moves a renamed model's series to its new label, counting on, and withdraws a deleted model's", async () => {
    stack = await startStack({ configText: FLOW_CONFIG });
    const s = stack;
    await s.run('conviva_flow_models');
    await s.run('conviva_flow');
    s.clock.advance(MINUTE);
    flowFake(s.sim).renameModel('fm_login_01', 'Sign in');
    flowFake(s.sim).deleteModel('fm_checkout_01');
    const listed = await s.run('conviva_flow_models');
    expect(find(listed.samples, 'conviva_flow_model_info', { flow_model_id: 'fm_login_01' }).map((x) => x.labels.flow)).toEqual(['Sign in']);
    expect(find(listed.samples, 'conviva_flow_model_info', { flow_model_id: 'fm_checkout_01' })).toEqual([]);
    const { samples } = await s.run('conviva_flow');
    const total = { account: 'demo', flow_model_id: 'fm_login_01', dimension: 'total', value: 'total' };
    expect(find(samples, 'conviva_flow_inits_total', { ...total, flow: 'Login' })).toEqual([]);
    expect(value(samples, 'conviva_flow_inits_total', { ...total, flow: 'Sign in' })).toBe(
      flowSettledSum(s.sim, SEED, 'demo', 'fm_login_01', undefined, undefined, SETTLED_AT_T0, SETTLED_AT_T0 + MINUTE, 'init'),
    );
    expect(samples.filter((x) => x.labels.flow_model_id === 'fm_checkout_01')).toEqual([]);
  });

  it('follows only the models include and exclude select, by id or label, with wildcards', async () => {
    stack = await startStack({ configText: FLOW_CONFIG.replace('group_by: [platform, app_version]', 'include: ["fm_*", "Playback start"]\n      exclude: ["Sign-?p", "fm_checkout_01"]') });
    const { samples } = await stack.run('conviva_flow_models');
    expect(find(samples, 'conviva_flow_model_info').map((x) => x.labels.flow_model_id).sort()).toEqual(['fm_login_01', 'fm_playback_start']);
  });

  it('a reload that turns the flows off withdraws their health series with them', async () => {
    stack = await startStack({ configText: FLOW_CONFIG });
    const s = stack;
    await s.run('conviva_flow');
    const flowSeries = (samples: Awaited<ReturnType<Stack['samples']>>) => samples.filter((x) => x.labels.collector === 'conviva_flow').map((x) => x.name);
    expect(flowSeries(await s.samples())).toEqual(expect.arrayContaining(['conviva_exporter_watermark_ahead_seconds', 'conviva_exporter_downward_revisions_total', 'conviva_exporter_buckets_missed_total']));
    const next = parseConfig(FLOW_CONFIG.replace('realtime: { enabled: false }', 'realtime: { enabled: true }').replace('      enabled: true\n      timeout: 10s', '      enabled: false\n      timeout: 10s'), {}, process.cwd());
    useSimulator(next, s.sim.endpoints);
    await s.app.reload(next);
    expect(s.app.runner.collectorNames).toEqual(['conviva_realtime']);
    expect(flowSeries(await s.samples())).toEqual([]);
  });
});
