// The mock's "semantics": texts that share words get vectors that point the same way, so retrieval
// can be tested end to end without a real embedding model. A hashed bag of word stems and of their
// character trigrams (so `kettle` and `kettles` still meet), signed-hashed into `dimensions` buckets
// and L2-normalised: deterministic, and cosine similarity tracks word overlap.

import { createPrng, hash32 } from './answer.js';

/** Words that say nothing about a topic; without them unrelated questions score near 0. */
const STOP_WORDS = new Set(
  (
    'a an and are as at be been but by can could did do does for from had has have how i if in into is it its ' +
    'me my no not of on or our so than that the their them then there these they this to too us was we were ' +
    'what when where which who whom why will with would you your yours about after before any all also am'
  ).split(' '),
);

const SUFFIXES = ['ings', 'ing', 'edly', 'ed', 'es', 's', 'ly'];

/** Lower-case word stems of `text`, stop words dropped. Crude on purpose: good enough for a mock. */
export function stems(text: string): string[] {
  const words =
    text
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? [];
  const out: string[] = [];
  for (const word of words) {
    if (STOP_WORDS.has(word)) continue;
    const suffix = SUFFIXES.find((s) => word.endsWith(s) && word.length - s.length >= 3);
    const stem = suffix ? word.slice(0, -suffix.length) : word;
    // `kettle` and `kettles` (→ `kettl`) meet once a final e goes too.
    out.push(stem.length > 3 && stem.endsWith('e') ? stem.slice(0, -1) : stem);
  }
  return out;
}

/** Weight of each character trigram beside its word's weight of 1. */
const TRIGRAM_WEIGHT = 0.25;

function features(text: string): Map<string, number> {
  const weights = new Map<string, number>();
  const add = (feature: string, weight: number) => weights.set(feature, (weights.get(feature) ?? 0) + weight);
  for (const stem of stems(text)) {
    add(`w:${stem}`, 1);
    const padded = `<${stem}>`;
    for (let i = 0; i + 3 <= padded.length; i++) add(`g:${padded.slice(i, i + 3)}`, TRIGRAM_WEIGHT);
  }
  return weights;
}

/**
 * A unit-length vector of `dimensions` float32 values for `text`. A text without a single content
 * word (empty, only stop words) gets a pseudo-random unit vector from its hash instead: real models
 * never answer a zero vector either.
 */
export function embeddingFor(text: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions);
  for (const [feature, weight] of features(text)) {
    const h = hash32(feature);
    const sign = hash32(`±${feature}`) & 1 ? 1 : -1;
    const index = h % dimensions;
    vector[index] = (vector[index] ?? 0) + sign * weight;
  }
  let norm = 0;
  for (const value of vector) norm += value * value;
  if (norm === 0) {
    const random = createPrng(hash32(text));
    for (let i = 0; i < dimensions; i++) {
      const value = random() * 2 - 1;
      vector[i] = value;
      norm += value * value;
    }
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dimensions; i++) vector[i] = (vector[i] ?? 0) * scale;
  return vector;
}
