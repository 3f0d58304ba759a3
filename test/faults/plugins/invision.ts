import type { Simulator } from '../../../src/simulator/server.js';
import type { InvisionFake } from '../../../src/sources/invision/fake.js';
import type { ParsedSample } from '../../helpers/exposition.js';
import type { StormPlugin } from './plugin.js';

const FLOWS = [
  { id: 'df-hourly-sales', name: 'hourly-sales' },
  { id: 'df-budget-sync', name: 'budget-sync' },
];

/**
 * InVision in the storm: two data flows started every 5 minutes (one fails 30% of its runs), each
 * run followed to its end through every fault, crash and restart. Its oracle: every run the
 * exporter learned of (it started it, or its state still holds it) is counted exactly once by
 * result once the simulator says it ended. A start whose answer was lost (a crash between the
 * intent and the answer, a timeout) is a run the exporter cannot know: it is counted in
 * start_failures_total{reason="unknown"|"timeout"}, not here.
 */
export const invisionStorm: StormPlugin = {
  source: 'invision',
  configBlock: `
    base_url: http://placeholder/invision
    api_key_file: "\${SECRET_DIR}/invision-key"
    request_timeout: 300ms
    connect_timeout: 300ms
    retries: 2
    retry_base_delay: 5ms
    retry_max_delay: 20ms
    timeout: 800ms
    dataflows:
${FLOWS.map((f) => `      - { id: ${f.id}, name: ${f.name}, schedule: "*/5 * * * *", timeout: 3m, expected_interval: 1h }`).join('\n')}
`,
  files: { 'invision-key': 'demo-invision-key\n' },
  secrets: [{ secret: 'demo-invision-key' }],
  paths: ['/invision/api/pub/v1/dataflows'],
  counterFamilies: ['invision_dataflow_runs_total'],
  expected(sim: Simulator, span) {
    // The runs the exporter knows: those still followed, and those it saw end.
    const state = (span.state as { invision_dataflows?: { state?: { inflight?: Array<{ runId: string }>; ended?: string[] } } } | undefined)?.invision_dataflows?.state;
    const known = new Set([...(state?.inflight ?? []).map((r) => r.runId), ...(state?.ended ?? []).map((e) => e.split('\u0000')[1]!)]);
    const runs = sim.fake<InvisionFake>('invision').runs(span.lastRunAt);
    const out: ParsedSample[] = [];
    for (const f of FLOWS) {
      for (const result of ['succeeded', 'failed'] as const) {
        const status = result === 'succeeded' ? 'Succeeded' : 'Failed';
        const n = runs.filter((r) => r.dataflowId === f.id && r.status === status && known.has(r.runId)).length;
        out.push({ name: 'invision_dataflow_runs_total', labels: { flow_id: f.id, flow: f.name, result }, value: n });
      }
    }
    return out;
  },
};
