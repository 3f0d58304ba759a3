import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { requirePromtool } from '../helpers/promtool.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rulesDir = `${root}prometheus/rules/`;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertTest {
  alertname: string;
  exp_alerts: unknown[];
}

const ruleFiles = readdirSync(rulesDir).filter((f) => f.endsWith('.rules.yml'));
const testFiles = readdirSync(rulesDir).filter((f) => f.endsWith('.test.yml'));
const rules: Rule[] = ruleFiles.flatMap((f) =>
  (parse(readFileSync(rulesDir + f, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules),
);
const alerts = rules.filter((r) => r.alert);
const alertTests: AlertTest[] = testFiles.flatMap((f) =>
  (parse(readFileSync(rulesDir + f, 'utf8'), { merge: true }) as { tests: Array<{ alert_rule_test?: AlertTest[] }> }).tests.flatMap((t) => t.alert_rule_test ?? []),
);

function promtool(args: string[]) {
  return spawnSync('promtool', args, { cwd: rulesDir, encoding: 'utf8' });
}

describe('alert rules', () => {
  it('every alert has severity, summary, description and a runbook_url to an existing section', () => {
    const runbooks = readFileSync(`${root}docs/runbooks.md`, 'utf8');
    const anchors = new Set([...runbooks.matchAll(/^## (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    expect(alerts.length).toBeGreaterThanOrEqual(11);
    for (const a of alerts) {
      expect(['critical', 'warning'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      const m = /^docs\/runbooks\.md#(.+)$/.exec(a.annotations?.runbook_url ?? '');
      expect(m, `${a.alert} runbook_url`).not.toBeNull();
      expect(anchors.has(m![1]!), `${a.alert} -> #${m![1]}`).toBe(true);
      expect(m![1], a.alert).toBe(a.alert!.toLowerCase());
    }
  });

  it('every alert has a firing case and a near-miss (silent) case in the promtool tests', () => {
    for (const a of alerts) {
      const cases = alertTests.filter((t) => t.alertname === a.alert);
      expect(cases.some((c) => c.exp_alerts.length > 0), `${a.alert} fires somewhere`).toBe(true);
      expect(cases.some((c) => c.exp_alerts.length === 0), `${a.alert} stays silent somewhere`).toBe(true);
    }
  });

  it('a threshold label states the number its expr uses', () => {
    for (const a of alerts.filter((r) => r.labels?.threshold)) {
      expect(a.expr, a.alert).toMatch(new RegExp(`[<>] ${a.labels!.threshold!.replace('.', '\\.')}\\b|${a.labels!.threshold!.replace('.', '\\.')} \\*`));
    }
  });

  it('promtool check rules and promtool test rules pass', (ctx) => {
    requirePromtool(ctx);
    const check = promtool(['check', 'rules', ...ruleFiles]);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const test = promtool(['test', 'rules', ...testFiles]);
    expect(test.status, test.stdout + test.stderr).toBe(0);
  }, 120_000);
});
