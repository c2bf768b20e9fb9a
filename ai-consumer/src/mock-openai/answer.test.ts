import { describe, expect, it } from 'vitest';
import { answerTokens } from './answer.js';

describe('mock answer length', () => {
  const prompt = 'tell me about relays';

  it('pads a short answer with picked words up to minTokens, keeping its start and the final period', () => {
    const natural = answerTokens(prompt);
    const padded = answerTokens(prompt, 40);
    expect(padded).toHaveLength(40);
    expect(padded.slice(0, natural.length - 1)).toEqual(natural.slice(0, -1));
    expect(padded.at(-1)).toMatch(/^ \S+\.$/u);
    // One space-led token per word after `Echo:`: what load tests count to know the model's time.
    expect(padded.join('').split(' ')).toHaveLength(40);
  });

  it('leaves an answer alone when it is already at least minTokens long', () => {
    expect(answerTokens(prompt, 3)).toEqual(answerTokens(prompt));
  });
});
