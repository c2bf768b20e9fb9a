import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, flushLogs, redactUrl, withContext } from './logger.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ service: 'svc', instance: 'i-1', level: 'debug', destination }) };
}

describe('logger', () => {
  it('writes JSON lines with service, instance, level label and ISO time', () => {
    const { lines, logger } = capture();
    logger.info('hello');
    expect(lines[0]).toMatchObject({ service: 'svc', instance: 'i-1', level: 'info', msg: 'hello' });
    expect(String(lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('child loggers carry correlation_id, request_id and userid, leaving undefined ones out', () => {
    const { lines, logger } = capture();
    withContext(logger, { correlation_id: 'c-1', request_id: 'r-1', userid: 'u-1' }).info('x');
    withContext(logger, { userid: 'u-2' }).info('y');
    expect(lines[0]).toMatchObject({ correlation_id: 'c-1', request_id: 'r-1', userid: 'u-1' });
    expect(lines[1]).toMatchObject({ userid: 'u-2' });
    expect(lines[1]).not.toHaveProperty('request_id');
  });

  it('redacts tokens and API keys', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        token: 'jwt-abc',
        config: { apiKey: 'sk-1', OPENAI_API_KEY: 'sk-2' },
        req: { headers: { authorization: 'Bearer x' } },
      },
      'm',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of ['jwt-abc', 'sk-1', 'sk-2', 'Bearer x']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('redactUrl removes token query parameters', () => {
    expect(redactUrl('/ws?token=abc.def&userid=u1')).toBe('/ws?token=[redacted]&userid=u1');
    expect(redactUrl('/ws?userid=u1&token=abc')).toBe('/ws?userid=u1&token=[redacted]');
  });

  it('flushLogs resolves once every line is written to the async destination, in order', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'relay-log-')), 'out.log');
    const destination = pino.destination({ dest: file, sync: false });
    await new Promise((resolve) => destination.once('ready', resolve));
    const logger = createLogger({ service: 'svc', instance: 'i-1', destination });
    for (let i = 0; i < 5000; i++) logger.info({ i }, 'line');
    await flushLogs(logger);
    // Read at once, before any other write could complete: everything must be there already.
    const seen = readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { i: number }).i);
    expect(seen).toHaveLength(5000);
    expect(seen.every((v, i) => v === i)).toBe(true);
    destination.end();
  });
});
