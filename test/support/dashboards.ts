/** The provisioned Grafana dashboards, as far as the checks read them: panels and their queries. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

const targetSchema = z.object({
  refId: z.string(),
  expr: z.string().min(1),
  legendFormat: z.string().optional(),
  instant: z.boolean().optional(),
  datasource: z.object({ uid: z.string() }).optional(),
});
const panelSchema = z.object({
  id: z.number().int(),
  type: z.string(),
  title: z.string().min(1),
  gridPos: z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() }),
  datasource: z.object({ uid: z.string() }).optional(),
  fieldConfig: z.object({ defaults: z.object({ unit: z.string().optional() }) }).optional(),
  targets: z.array(targetSchema).default([]),
});
const dashboardSchema = z.object({
  uid: z.string().min(1),
  title: z.string().min(1),
  panels: z.array(panelSchema),
});

export type DashboardTarget = z.infer<typeof targetSchema>;
export type DashboardPanel = z.infer<typeof panelSchema>;

export interface DashboardFile {
  file: string;
  text: string;
  dashboard: z.infer<typeof dashboardSchema>;
}

export async function loadDashboards(root: string): Promise<DashboardFile[]> {
  const dir = join(root, 'grafana', 'dashboards');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (file) => {
      const text = await readFile(join(dir, file), 'utf8');
      return { file, text, dashboard: dashboardSchema.parse(JSON.parse(text)) };
    }),
  );
}

/** Panels that show data (rows only group them). */
export const dataPanels = (d: DashboardFile): DashboardPanel[] =>
  d.dashboard.panels.filter((p) => p.type !== 'row');
