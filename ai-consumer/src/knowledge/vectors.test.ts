import { describe, expect, it } from 'vitest';
import { cosine, decodeVector, encodeVector } from './vectors.js';

describe('vectors', () => {
  it('cosine: 1 for the same direction, 0 for orthogonal, different lengths or a zero vector', () => {
    expect(cosine(Float32Array.of(1, 2), Float32Array.of(2, 4))).toBeCloseTo(1, 6);
    expect(cosine(Float32Array.of(1, 0), Float32Array.of(0, 3))).toBe(0);
    expect(cosine(Float32Array.of(1, 0), Float32Array.of(1, 0, 0))).toBe(0);
    expect(cosine(Float32Array.of(0, 0), Float32Array.of(1, 0))).toBe(0);
  });

  it('round-trips a vector through its cached form, and refuses anything else', () => {
    const v = Float32Array.of(0.25, -1.5, 3.0e-8);
    expect(decodeVector(encodeVector(v))).toEqual(v);
    expect(decodeVector('')).toBeUndefined();
    expect(decodeVector('not base64!')).toBeUndefined();
    expect(decodeVector(Buffer.from([1, 2, 3]).toString('base64'))).toBeUndefined();
  });
});
