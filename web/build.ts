/**
 * Bundles the browser code into the files the gateway and nginx serve from websocket-server/public/:
 * `widget.js` (the embed) and `chat.js` (the chat page's script). Run by `npm run build`, before
 * `npm start` (prestart) and when the local stack prepares nginx; the output is not committed (a
 * generated, minified file would drift from its sources and conflict on every merge).
 *
 * `npx tsx web/build.ts [--check]`: `--check` builds in memory and prints the sizes only.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { build, type Metafile, type Plugin } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
export const PUBLIC_DIR = join(here, '..', 'websocket-server', 'public');

/** widget.js, gzipped: it loads on every page of a host site. */
export const WIDGET_BUDGET_GZIP_BYTES = 40 * 1024;
/** widget.js + widget-markdown.js, gzipped: what a visitor who opens the chat loads in all. */
export const WIDGET_OPEN_BUDGET_GZIP_BYTES = 55 * 1024;

export const ENTRIES = {
  'widget.js': join(here, 'src', 'widget', 'index.ts'),
  /** marked + DOMPurify, loaded by the widget when it first opens. */
  'widget-markdown.js': join(here, 'src', 'widget', 'markdown-entry.ts'),
  'chat.js': join(here, 'src', 'chat', 'main.ts'),
} as const;

export type WebFile = keyof typeof ENTRIES;

/**
 * zod keeps one config object on `globalThis.__zod_globalConfig` so that copies of zod in one
 * realm share it. The widget must add no global to a host page but `RelayChat` (and needs no
 * sharing: nothing else sees its copy), so zod's core module gets a scope of its own instead.
 * If a zod upgrade moves this, the browser test of the window's keys says so.
 */
const zodWithoutGlobals: Plugin = {
  name: 'zod-without-globals',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]core[\\/]core\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return {
        contents: `const __zodScope = {};\n${source.replaceAll('globalThis', '__zodScope')}`,
        loader: 'js',
      };
    });
  },
};

export interface BuiltFile {
  name: WebFile;
  contents: Uint8Array;
  bytes: number;
  gzipBytes: number;
  /** Every module that went in, by path relative to the repository. */
  inputs: string[];
}

/** Builds every entry in memory; `write` puts them into `outDir`. */
export async function buildWeb(
  options: { write?: boolean; outDir?: string } = {},
): Promise<Record<WebFile, BuiltFile>> {
  const outDir = options.outDir ?? PUBLIC_DIR;
  const built = {} as Record<WebFile, BuiltFile>;
  for (const [name, entry] of Object.entries(ENTRIES) as Array<[WebFile, string]>) {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      minify: true,
      format: 'iife',
      platform: 'browser',
      target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
      // The workspaces' TypeScript sources, as the rest of the repository runs them.
      conditions: ['source'],
      // ASCII output (esbuild's default, non-ASCII escaped): a host page's charset, or a server that
      // sends no charset for .js, cannot garble the widget's text.
      charset: 'ascii',
      write: false,
      metafile: true,
      logLevel: 'silent',
      banner: { js: `/* ${name}: built by web/build.ts from web/src; do not edit */` },
      absWorkingDir: join(here, '..'),
      plugins: [zodWithoutGlobals],
    });
    const file = result.outputFiles[0];
    if (!file) throw new Error(`esbuild wrote nothing for ${name}`);
    built[name] = {
      name,
      contents: file.contents,
      bytes: file.contents.byteLength,
      gzipBytes: gzipSync(file.contents, { level: 9 }).byteLength,
      inputs: Object.keys((result.metafile as Metafile).inputs),
    };
  }
  if (options.write !== false) {
    await mkdir(outDir, { recursive: true });
    for (const file of Object.values(built)) await writeFile(join(outDir, file.name), file.contents);
  }
  return built;
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  buildWeb({ write: !check }).then(
    (built) => {
      for (const file of Object.values(built)) {
        process.stdout.write(
          `[web] ${check ? 'built' : 'wrote'} ${file.name}: ${kb(file.bytes)}, ${kb(file.gzipBytes)} gzipped\n`,
        );
      }
    },
    (err: unknown) => {
      process.stderr.write(`[web] build failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
