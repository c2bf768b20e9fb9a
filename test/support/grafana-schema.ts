/**
 * A dashboard JSON checked against Grafana's own types (`@grafana/schema`, the version the compose
 * file runs): the file's text becomes a TypeScript literal that must `satisfies` the dashboard type,
 * so a misspelt or misplaced key, a wrong value type or an unknown enum value fails, with the line of
 * the JSON. Enums are compared by their values (that is how JSON spells them); panel options and
 * field config are checked against the panel type's own schema; Prometheus targets against the
 * fields Grafana's Prometheus datasource reads (that query type is not in @grafana/schema).
 */
import { dirname, join } from 'node:path';
import ts from 'typescript';

const PRELUDE = `
import type { Dashboard, DataQuery, FieldConfigSource, Panel, RowPanel } from '@grafana/schema';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen.js';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen.js';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen.js';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen.js';

/** A type as JSON writes it: enum members by value, everything else as is. */
type Json<T> = unknown extends T
  ? T
  : T extends string
    ? \`\${T}\`
    : T extends number | boolean | null | undefined
      ? T
      : T extends ReadonlyArray<infer E>
        ? Array<Json<E>>
        : { [K in keyof T]: Json<T[K]> };
/** Grafana fills in the options and field config a file leaves out. */
type Partially<T> = T extends ReadonlyArray<infer E>
  ? Array<Partially<E>>
  : T extends object
    ? { [K in keyof T]?: Partially<T[K]> }
    : T;

/** The Prometheus query model (Grafana's public/app/plugins/datasource/prometheus). */
type PrometheusTarget = Json<DataQuery> & {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  interval?: string;
  exemplar?: boolean;
};
type PanelOf<K extends string, O, C> = Omit<Json<Panel>, 'type' | 'options' | 'fieldConfig' | 'targets'> & {
  type: K;
  options?: Partially<Json<O>>;
  fieldConfig?: Json<FieldConfigSource<Partially<C>>>;
  targets?: PrometheusTarget[];
};
type RelayPanel =
  | PanelOf<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>
  | PanelOf<'stat', Stat.Options, Record<string, never>>
  | PanelOf<'table', Table.Options, Table.FieldConfig>
  | PanelOf<'bargauge', BarGauge.Options, Record<string, never>>
  | (Omit<Json<RowPanel>, 'panels'> & { panels: RelayPanel[] });
type RelayDashboard = Omit<Json<Dashboard>, 'panels'> & { panels: RelayPanel[] };

export const dashboard = (
`;

export interface SchemaProblem {
  /** 1-based line in the dashboard file. */
  line: number;
  message: string;
}

/**
 * Type-checks `json` (the text of a dashboard file) as a dashboard. `near` is a directory inside the
 * repository, so `@grafana/schema` resolves from its node_modules.
 */
export function checkDashboardSchema(json: string, near: string): SchemaProblem[] {
  const file = join(near, '__dashboard_schema_check__.ts');
  const source = `${PRELUDE}${json}) satisfies RelayDashboard;\n`;
  const offset = PRELUDE.split('\n').length - 1;
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, version, ...rest) =>
    name === file
      ? ts.createSourceFile(name, source, version, true)
      : getSourceFile.call(host, name, version, ...rest);
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? source : readFile.call(host, name));
  const program = ts.createProgram({ rootNames: [file], options, host });
  const checked = program.getSourceFile(file);
  if (!checked) throw new Error('the check file did not load');
  const problems = ts.getPreEmitDiagnostics(program, checked).map((d) => {
    const at = d.start === undefined ? undefined : checked.getLineAndCharacterOfPosition(d.start);
    return {
      line: at === undefined ? 0 : at.line - offset + 1,
      message: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
    };
  });
  // A missing type would make everything `any` and the check pass vacuously.
  if (!program.getSourceFiles().some((f) => f.fileName.includes(join('@grafana', 'schema')))) {
    throw new Error(`@grafana/schema did not resolve from ${dirname(file)}`);
  }
  return problems;
}
