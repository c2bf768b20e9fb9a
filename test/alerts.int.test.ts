/**
 * The alerting rules (prometheus/alerts.yml) against promtool: they load, their unit tests
 * (prometheus/alerts.test.yml) pass, every alert has a case where it fires and one where it does
 * not, every alert carries a severity and the annotations an operator needs, and every metric they
 * read is one the services (or prom-client, or Prometheus) define.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { builtinMetricNames, metricNamesInCode, metricNamesOf } from './support/metric-names.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const at = (...parts: string[]) => join(root, ...parts);

const ruleSchema = z.union([
  z.object({ record: z.string(), expr: z.string() }).strict(),
  z
    .object({
      alert: z.string(),
      expr: z.string(),
      for: z.string().optional(),
      labels: z.object({ severity: z.enum(['critical', 'warning', 'none']) }).strict(),
      annotations: z
        .object({ summary: z.string().min(10), description: z.string().min(10), runbook: z.string().min(10) })
        .strict(),
    })
    .strict(),
]);
const rulesSchema = z.object({
  groups: z.array(z.object({ name: z.string(), rules: z.array(ruleSchema).min(1) })).min(1),
});
const unitTestsSchema = z.object({
  rule_files: z.array(z.string()),
  tests: z.array(
    z.object({
      name: z.string(),
      alert_rule_test: z
        .array(z.object({ alertname: z.string(), exp_alerts: z.array(z.unknown()) }))
        .default([]),
      promql_expr_test: z.array(z.object({ expr: z.string() })).default([]),
    }),
  ),
});

function promtool(args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: at('prometheus'), encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('prometheus/alerts.yml', () => {
  let rules: z.infer<typeof rulesSchema>;
  let tests: z.infer<typeof unitTestsSchema>;
  beforeAll(async () => {
    rules = rulesSchema.parse(parseYaml(await readFile(at('prometheus', 'alerts.yml'), 'utf8')));
    tests = unitTestsSchema.parse(parseYaml(await readFile(at('prometheus', 'alerts.test.yml'), 'utf8')));
  });
  const alerts = () => rules.groups.flatMap((g) => g.rules).flatMap((r) => ('alert' in r ? [r] : []));
  const records = () => rules.groups.flatMap((g) => g.rules).flatMap((r) => ('record' in r ? [r] : []));

  it('promtool check rules accepts it', () => {
    const r = promtool(['check', 'rules', 'alerts.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('promtool test rules: every unit test passes', () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml']);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain('SUCCESS');
    expect(tests.rule_files).toEqual(['alerts.yml']);
  });

  it('every alert has a firing case and a quiet case (the Watchdog only fires)', () => {
    const cases = tests.tests.flatMap((t) => t.alert_rule_test);
    for (const { alert } of alerts()) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${alert}: no case where it fires`,
      ).toBe(true);
      if (alert === 'Watchdog') continue;
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${alert}: no case where it stays quiet`,
      ).toBe(true);
    }
    // And no test names an alert that does not exist.
    const names = new Set(alerts().map((a) => a.alert));
    for (const c of cases) expect(names, c.alertname).toContain(c.alertname);
  });

  it('every recording rule is tested directly or read by an alert', () => {
    const exprs = [
      ...alerts().map((a) => a.expr),
      ...tests.tests.flatMap((t) => t.promql_expr_test.map((e) => e.expr)),
    ];
    for (const { record } of records()) {
      expect(
        exprs.some((e) => metricNamesOf(e).has(record)),
        record,
      ).toBe(true);
    }
  });

  it('reads only metrics that exist', async () => {
    const known = new Set([
      ...(await metricNamesInCode(root)),
      ...builtinMetricNames(),
      ...records().map((r) => r.record),
    ]);
    for (const rule of [...alerts(), ...records()]) {
      for (const name of metricNamesOf(rule.expr)) {
        expect(known, `${'alert' in rule ? rule.alert : rule.record}: ${name}`).toContain(name);
      }
    }
  });

  it('every critical alert holds for a minute or more (no page on one bad scrape)', () => {
    for (const a of alerts().filter((x) => x.labels.severity === 'critical')) {
      expect(a.for, a.alert).toMatch(/^\d+[mh]$/);
    }
  });
});
