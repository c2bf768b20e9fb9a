import { describe, expect, it } from 'vitest';
import { citationTokens } from './grounding.js';
import { embeddingFor, stems } from './similarity.js';
import { groundedSystemPrompt } from '../knowledge/prompt.js';

const cos = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * (b[i] ?? 0), 0);
const returns =
  '## Returns\n\nZephyr kettles can be returned within 45 days of delivery. Refunds reach the original payment method within 5 business days.';
const shipping =
  '## Shipping\n\nOrders ship from our warehouse in Lyon; standard delivery takes 3 to 5 working days.';

describe('mock embeddings', () => {
  it('stems words and drops stop words', () => {
    expect(stems('The kettles were returned quickly!')).toEqual(['kettl', 'return', 'quick']);
  });

  it('are deterministic unit vectors; texts sharing words score high, unrelated ones near 0', () => {
    const q = embeddingFor('How many days do I have to return a Zephyr kettle?', 256);
    expect(q).toEqual(embeddingFor('How many days do I have to return a Zephyr kettle?', 256));
    expect(Math.sqrt(cos(q, q))).toBeCloseTo(1, 5);
    expect(cos(q, embeddingFor(returns, 256))).toBeGreaterThan(0.45);
    expect(cos(q, embeddingFor(shipping, 256))).toBeLessThan(0.3);
    expect(cos(embeddingFor('What is the capital of France?', 256), embeddingFor(returns, 256))).toBeLessThan(
      0.2,
    );
    // Only stop words: still a unit vector, from the text's hash.
    expect(Math.sqrt(cos(embeddingFor('the of and', 8), embeddingFor('the of and', 8)))).toBeCloseTo(1, 5);
  });
});

describe('mock grounding', () => {
  const system = (content: string) => ({ role: 'system' as const, content });

  it('cites the excerpt and sentence that share the most words with the question', () => {
    const messages = [
      system(
        groundedSystemPrompt('Be brief.', [
          { source: 'shipping.md', text: shipping, score: 0.2 },
          { source: 'returns.md', text: returns, score: 0.6 },
        ]),
      ),
    ];
    const tokens = citationTokens(messages, 'How many days to return a Zephyr kettle?');
    expect(tokens.join('')).toBe(' [returns.md] Zephyr kettles can be returned within 45 days of delivery.');
  });

  it('adds nothing without excerpts or without a shared word', () => {
    expect(citationTokens([system('Be brief.')], 'return a kettle')).toEqual([]);
    const messages = [system(groundedSystemPrompt('', [{ source: 'r.md', text: returns, score: 0.5 }]))];
    expect(citationTokens(messages, 'capital of France')).toEqual([]);
  });
});
