/**
 * The dashboards on live data: a short load run through the local stack (nginx, both gateways,
 * Kafka, ai-consumer with a mock model that fails 5% of its calls, message-relay, Redis), then every
 * query of every panel evaluated against the stack's own Prometheus (its production config: 5 s
 * scrapes and evaluations) over the run's window. A query that returns nothing fails with its panel's
 * title. The values each panel showed are written out (stderr and `<work dir>/dashboards-dump.txt`).
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { infraPaths } from '../scripts/infra/paths.js';
import { runLoadTest, type LoadTestResult } from '../scripts/load-test/load-test.js';
import { loadTestOptionsSchema } from '../scripts/load-test/options.js';
import { stackDown, stackUp, stackUrls } from '../scripts/stack/testing.js';
import { dataPanels, loadDashboards, type DashboardFile } from './support/dashboards.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

const STEP_S = 5;

const rangeSchema = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.literal('matrix'),
    result: z.array(
      z.object({
        metric: z.record(z.string(), z.string()),
        values: z.array(z.tuple([z.number(), z.string()])),
      }),
    ),
  }),
});
type Series = z.infer<typeof rangeSchema>['data']['result'][number];

async function queryRange(prometheus: string, expr: string, start: number, end: number): Promise<Series[]> {
  const params = new URLSearchParams({
    query: expr,
    start: String(start),
    end: String(end),
    step: `${STEP_S}s`,
  });
  const res = await fetch(`${prometheus}/api/v1/query_range?${params.toString()}`);
  const body: unknown = await res.json();
  if (res.status !== 200) throw new Error(`query_range ${expr}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return rangeSchema.parse(body).data.result;
}

const finite = (s: Series): number[] => s.values.map(([, v]) => Number(v)).filter((v) => Number.isFinite(v));

/** Grafana's `{{label}}` legend, from the series' labels. */
const legendOf = (format: string | undefined, labels: Record<string, string>): string =>
  format
    ? format.replace(/\{\{\s*([\w]+)\s*\}\}/g, (_, name: string) => labels[name] ?? '')
    : JSON.stringify(labels);

function formatValue(value: number, unit: string | undefined): string {
  const n = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Number(x.toPrecision(3)).toString());
  switch (unit) {
    case 's':
      return value < 1 ? `${n(value * 1000)} ms` : `${n(value)} s`;
    case 'percentunit':
      return `${n(value * 100)}%`;
    case 'bytes':
      return `${n(value / 2 ** 20)} MiB`;
    case 'reqps':
      return `${n(value)}/s`;
    default:
      return n(value);
  }
}

interface PanelResult {
  file: string;
  title: string;
  lines: string[];
  empty: string[];
}

async function evaluate(
  prometheus: string,
  d: DashboardFile,
  start: number,
  end: number,
): Promise<PanelResult[]> {
  const results: PanelResult[] = [];
  for (const panel of dataPanels(d)) {
    const unit = panel.fieldConfig?.defaults.unit;
    const result: PanelResult = { file: d.file, title: panel.title, lines: [], empty: [] };
    for (const target of panel.targets) {
      const series = await queryRange(prometheus, target.expr, start, end);
      const withData = series.filter((s) => finite(s).length > 0);
      if (withData.length === 0) result.empty.push(`${target.refId}: ${target.expr}`);
      for (const s of withData) {
        const values = finite(s);
        const last = values[values.length - 1] ?? NaN;
        result.lines.push(
          `${legendOf(target.legendFormat, s.metric)}: max ${formatValue(Math.max(...values), unit)}, ` +
            `mean ${formatValue(values.reduce((a, b) => a + b, 0) / values.length, unit)}, at the end ${formatValue(last, unit)}`,
        );
      }
    }
    results.push(result);
  }
  return results;
}

describe('dashboards on live data (real stack, after a load run)', () => {
  let load: LoadTestResult;
  let start = 0;
  let end = 0;

  beforeAll(async () => {
    // A stack of our own settings: the mock fails some calls, so retries and errors have data too.
    await stackDown();
    await stackUp({ MOCK_OPENAI_FAIL_RATE: '0.05', MOCK_OPENAI_TTFT_MS: '150', MOCK_OPENAI_TOKEN_MS: '20' });
    const { prometheus, http } = stackUrls();
    // Every target scraped at least once, so the run's first seconds are in the data.
    await waitFor(
      async () => {
        const body = (await (await fetch(`${prometheus}/api/v1/targets?state=active`)).json()) as {
          data: { activeTargets: Array<{ health: string }> };
        };
        return body.data.activeTargets.length > 0 && body.data.activeTargets.every((t) => t.health === 'up');
      },
      { timeoutMs: 30_000, intervalMs: 500, message: 'every Prometheus target up' },
    );
    start = Math.floor(Date.now() / 1000);
    load = await runLoadTest(
      loadTestOptionsSchema.parse({ url: http, users: 30, messages: 6, rate: 12, duration: 90, grace: 30 }),
    );
    // Two more scrapes and evaluations, so the run's end is in rate() windows and recordings.
    await new Promise((r) => setTimeout(r, 3 * STEP_S * 1000));
    end = Math.floor(Date.now() / 1000);
  }, 240_000);

  afterAll(async () => {
    await stackDown();
  });

  it('the load run got its answers', () => {
    expect(load.messages.sent).toBe(180);
    // 5% of model attempts fail, and retries cover nearly all of them.
    expect(load.messages.answered).toBeGreaterThanOrEqual(170);
    expect(load.messages.lost).toBe(0);
  });

  it('every query of every panel returns data over the run', async () => {
    const { prometheus } = stackUrls();
    const dump: string[] = [
      `# Dashboard panels after a load run: ${load.messages.sent} messages from ${load.connections.open} users ` +
        `at ${load.achievedRate.toFixed(1)}/s, ${load.messages.answered} answered, errors ${JSON.stringify(load.messages.errors)}; ` +
        `window ${new Date(start * 1000).toISOString()} .. ${new Date(end * 1000).toISOString()} (${end - start} s), step ${STEP_S} s`,
    ];
    const empty: string[] = [];
    for (const d of await loadDashboards(root)) {
      for (const panel of await evaluate(prometheus, d, start, end)) {
        dump.push(`\n[${panel.file}] ${panel.title}`, ...panel.lines.map((l) => `  ${l}`));
        for (const e of panel.empty) {
          dump.push(`  NO DATA ${e}`);
          empty.push(`${panel.file}: "${panel.title}" ${e}`);
        }
      }
    }
    const text = `${dump.join('\n')}\n`;
    process.stderr.write(text);
    await writeFile(join(infraPaths(process.env).workDir, 'dashboards-dump.txt'), text);
    expect(empty, 'panels with a query that returned no data').toEqual([]);
  }, 120_000);
});
