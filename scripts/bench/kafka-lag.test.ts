import { describe, expect, it } from 'vitest';
import { lagIsFlat, type LagSample } from './kafka-lag.js';

const samples = (totals: number[]): LagSample[] =>
  totals.map((total, i) => ({
    at: i * 1000,
    lag: { 'ai-consumer': Math.floor(total / 2), 'message-relay': Math.ceil(total / 2) },
  }));

describe('consumer lag flatness', () => {
  it('is flat when the backlog hovers around the same size', () => {
    expect(lagIsFlat(samples([40, 90, 30, 70, 60, 80, 50, 100, 20]), 50)).toEqual({
      flat: true,
      maxLag: 100,
    });
  });

  it('is not flat when the backlog keeps growing', () => {
    expect(lagIsFlat(samples([50, 100, 200, 400, 800, 1600]), 50).flat).toBe(false);
  });

  it('counts both consumer groups together', () => {
    const growingRelay: LagSample[] = [0, 1, 2, 3, 4, 5].map((i) => ({
      at: i,
      lag: { 'ai-consumer': 5, 'message-relay': i * 500 },
    }));
    expect(lagIsFlat(growingRelay, 50)).toEqual({ flat: false, maxLag: 2505 });
  });
});
