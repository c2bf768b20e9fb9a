import { describe, expect, it } from 'vitest';
import { createPartitionLog } from './memory-log.js';

describe('partition log', () => {
  it('assigns absolute offsets that survive releases: a released offset is never reused', () => {
    const log = createPartitionLog<string>();
    expect([log.append('a'), log.append('b'), log.append('c')]).toEqual([0, 1, 2]);
    expect(log.releaseBelow(2)).toBe(2);
    expect({ start: log.start, end: log.end, size: log.size }).toEqual({ start: 2, end: 3, size: 1 });
    expect(log.get(1)).toBeUndefined();
    expect(log.get(2)).toBe('c');
    expect(log.append('d')).toBe(3);
    // Releasing past the end clamps: the next record still gets the next offset.
    expect(log.releaseBelow(100)).toBe(2);
    expect({ start: log.start, end: log.end, size: log.size }).toEqual({ start: 4, end: 4, size: 0 });
    expect(log.append('e')).toBe(4);
    expect(log.get(4)).toBe('e');
  });

  it('releasing below start or a non-integer offset changes nothing', () => {
    const log = createPartitionLog<number>();
    for (let i = 0; i < 5; i++) log.append(i);
    log.releaseBelow(3);
    expect(log.releaseBelow(1)).toBe(0);
    expect(log.start).toBe(3);
    expect(log.get(3.5)).toBeUndefined();
    expect(log.get(5)).toBeUndefined();
  });

  it('keeps offsets right across compactions of the released prefix', () => {
    const log = createPartitionLog<number>();
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 1000; i++) log.append(log.end);
      // Keep the newest 100 each round: many compactions happen on the way.
      log.releaseBelow(log.end - 100);
      expect(log.size).toBe(100);
      for (const offset of [log.start, log.start + 50, log.end - 1]) expect(log.get(offset)).toBe(offset);
      expect(log.get(log.start - 1)).toBeUndefined();
    }
    expect(log.end).toBe(20_000);
  });
});
