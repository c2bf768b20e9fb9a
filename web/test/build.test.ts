import { relative } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { WIDGET_BUDGET_GZIP_BYTES, WIDGET_OPEN_BUDGET_GZIP_BYTES, buildWeb } from '../build.js';

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

describe('browser bundles (web/build.ts)', () => {
  it(`widget.js stays within ${kb(WIDGET_BUDGET_GZIP_BYTES)} gzipped, and with its markdown within ${kb(WIDGET_OPEN_BUDGET_GZIP_BYTES)}`, async () => {
    const built = await buildWeb({ write: false });
    const widget = built['widget.js'];
    const markdown = built['widget-markdown.js'];
    expect(widget.gzipBytes, `widget.js is ${kb(widget.gzipBytes)} gzipped`).toBeLessThanOrEqual(
      WIDGET_BUDGET_GZIP_BYTES,
    );
    expect(widget.gzipBytes + markdown.gzipBytes).toBeLessThanOrEqual(WIDGET_OPEN_BUDGET_GZIP_BYTES);
    // The launcher's file carries no markdown parser or sanitiser: those wait for the first open.
    expect(widget.inputs.some((p) => /marked|dompurify/.test(p))).toBe(false);
    expect(markdown.inputs.some((p) => p.includes('node_modules/marked/'))).toBe(true);
    expect(markdown.inputs.some((p) => p.includes('node_modules/dompurify/'))).toBe(true);
  });

  it('every bundle is ASCII: a host page of another charset (or a .js without one) cannot garble it', async () => {
    const built = await buildWeb({ write: false });
    for (const file of Object.values(built)) {
      // eslint-disable-next-line no-control-regex
      expect(/[^\x00-\x7f]/.test(new TextDecoder().decode(file.contents)), file.name).toBe(false);
    }
  });

  it('the browser bundles take only the pure contract from common (no transports, config, logging)', async () => {
    const built = await buildWeb({ write: false });
    for (const file of Object.values(built)) {
      const fromCommon = file.inputs.filter((p) => p.startsWith('common/'));
      for (const path of fromCommon) {
        expect(path).toMatch(
          /^common\/src\/(errors\.ts|contract\/(pure|server-frames|http-api|presence|stream-ids)\.ts)$/,
        );
      }
      // Full zod is ~26 KB gzipped; the frame schemas are zod/mini.
      expect(file.inputs.filter((p) => p.includes('zod/v4/classic/'))).toEqual([]);
    }
  });

  it('@relay/client bundles for a browser: no Node built-in anywhere in it', async () => {
    const result = await build({
      entryPoints: ['client/src/index.ts'],
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      conditions: ['source'],
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs).map((p) => relative('.', p));
    expect(
      inputs.filter((p) => p.startsWith('node:') || p.includes('ioredis') || p.includes('kafkajs')),
    ).toEqual([]);
    expect(inputs.filter((p) => p.startsWith('common/src/') && !/errors\.ts|contract\//.test(p))).toEqual([]);
  });
});
