import { RelayError, dlqEventSchema, type BusMessage } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { dlqRecord as deadLetter } from '@relay/common';
import { describeError } from './dead-letters.js';

describe('dead letters', () => {
  const message: BusMessage = {
    topic: 'incoming_messages',
    partition: 2,
    offset: '41',
    key: 'u1',
    value: '{"v":1,"request_id":"r1"}',
    headers: {},
    timestamp: 0,
  };

  it('keeps the original record and says why it failed, in the DLQ schema', () => {
    const record = deadLetter(message, { code: 'timeout', message: 'x'.repeat(5000) }, new Date(0));
    expect(dlqEventSchema.parse(record)).toEqual(record);
    expect(record).toMatchObject({
      source_topic: 'incoming_messages',
      partition: 2,
      offset: '41',
      key: 'u1',
      value: message.value,
      failed_at: '1970-01-01T00:00:00.000Z',
    });
    expect(record.error.code).toBe('timeout');
    expect(record.error.message).toHaveLength(1000);
  });

  it('describes an error with its causes, for operators', () => {
    const error = new RelayError('upstream_unavailable', undefined, {
      cause: new Error('500 status code (no body)', { cause: 'socket hang up' }),
    });
    expect(describeError(error)).toBe(
      'Service temporarily unavailable: 500 status code (no body): socket hang up',
    );
    const loop = new Error('a');
    (loop as { cause?: unknown }).cause = loop;
    expect(describeError(loop)).toBe('a');
    expect(describeError(undefined)).toBe('unknown error');
  });
});
