/**
 * Which metric names exist, for checks of the deployment files: the ones our services register
 * (as written in their source), prom-client's default process metrics, and what Prometheus makes
 * itself. And the metric names a PromQL expression reads.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createMetrics } from '@relay/common';

/** Every metric name the services register, as written in their source (`name: 'x'`). */
export async function metricNamesInCode(root: string): Promise<Set<string>> {
  const names = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
        for (const m of (await readFile(path, 'utf8')).matchAll(/name: '([a-z][a-z0-9_]*)'/g))
          names.add(m[1] ?? '');
      }
    }
  };
  for (const service of ['common', 'websocket-server', 'ai-consumer', 'message-relay'])
    await walk(join(root, service, 'src'));
  return names;
}

/** prom-client's default metrics (every service has them) and the series Prometheus writes itself. */
export function builtinMetricNames(): Set<string> {
  const metrics = createMetrics({ service: 'x', instance: 'x' });
  const names = new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
  for (const name of [
    'up',
    'scrape_duration_seconds',
    'scrape_samples_scraped',
    'ALERTS',
    'ALERTS_FOR_STATE',
  ])
    names.add(name);
  return names;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool']);
const OPERATORS = new Set(['and', 'or', 'unless', 'atan2']);

/**
 * The metric names an expression selects, histogram series folded into their family
 * (`x_bucket` → `x`). Label matchers, grouping lists, durations, strings and function names are
 * not names.
 */
export function metricNamesOf(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name = '', call] = m;
    if (call || KEYWORDS.has(name) || OPERATORS.has(name) || /^(?:Inf|NaN)$/i.test(name)) continue;
    names.add(name.replace(/_(?:bucket|count|sum)$/, ''));
  }
  return names;
}
