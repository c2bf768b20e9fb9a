import { describe, expect, it } from 'vitest';
import { readyBodySchema } from '../contract/ops-api.js';
import {
  combinedReadiness,
  drainingCheck,
  errorReason,
  failing,
  OK,
  readinessOf,
  readyResponse,
  safeReason,
} from './checks.js';

describe('readiness checks', () => {
  it('is ready only when every check is ok; the answer is 200 with every dependency ok', () => {
    const readiness = readinessOf({ kafka: OK, redis: OK, draining: drainingCheck(false) });
    expect(readiness.ready).toBe(true);
    const answer = readyResponse('message-relay', readiness);
    expect(answer.statusCode).toBe(200);
    expect(readyBodySchema.parse(answer.body)).toEqual({
      status: 'ready',
      service: 'message-relay',
      failing: [],
      checks: { kafka: { status: 'ok' }, redis: { status: 'ok' }, draining: { status: 'ok' } },
    });
  });

  it('answers 503 naming each failing dependency with its reason, in check order', () => {
    const readiness = readinessOf({
      kafka: OK,
      redis: failing('connect ECONNREFUSED 127.0.0.1:6379'),
      draining: drainingCheck(true),
    });
    expect(readiness.ready).toBe(false);
    const answer = readyResponse('ai-consumer', readiness);
    expect(answer.statusCode).toBe(503);
    expect(readyBodySchema.parse(answer.body)).toEqual({
      status: 'not_ready',
      service: 'ai-consumer',
      failing: ['redis', 'draining'],
      checks: {
        kafka: { status: 'ok' },
        redis: { status: 'failing', reason: 'connect ECONNREFUSED 127.0.0.1:6379' },
        draining: { status: 'failing', reason: 'shutting down' },
      },
    });
  });

  it('never shows URL credentials or token values, and keeps reasons to one short line', () => {
    expect(safeReason('cannot reach redis://default:s3cret@redis:6379/0')).toBe(
      'cannot reach redis://***@redis:6379/0',
    );
    expect(safeReason('GET /ws?token=eyJabc.def&userid=a failed')).toBe('GET /ws?token=***&userid=a failed');
    const long = safeReason(`line one\n   line two ${'x'.repeat(500)}`);
    expect(long).not.toContain('\n');
    expect(long.startsWith('line one line two')).toBe(true);
    expect(long.length).toBeLessThanOrEqual(200);
    expect(safeReason('  ')).toBe('failing');
  });

  it('errorReason adds the error code when the message does not say it', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    expect(errorReason(refused)).toBe('connect ECONNREFUSED 127.0.0.1:6379');
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(errorReason(reset)).toBe('ECONNRESET: socket hang up');
    expect(errorReason('plain')).toBe('plain');
  });

  it('combines the components of one process under prefixed names', () => {
    const combined = combinedReadiness({
      gateway: readinessOf({ kafka: OK }),
      relay: readinessOf({ redis: failing('down') }),
    });
    expect(combined).toEqual({
      ready: false,
      checks: { 'gateway.kafka': { ok: true }, 'relay.redis': { ok: false, reason: 'down' } },
    });
  });
});
