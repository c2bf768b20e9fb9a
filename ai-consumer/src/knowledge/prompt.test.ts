import { describe, expect, it } from 'vitest';
import { EXCERPT_PATTERN, GROUNDING_INSTRUCTIONS, groundedSystemPrompt, sourcesOf } from './prompt.js';

const chunk = (source: string, text: string, score: number) => ({ source, text, score });

describe('grounded system prompt', () => {
  it('puts the instructions and each excerpt with its source after the system prompt', () => {
    const prompt = groundedSystemPrompt('You are helpful.', [
      chunk('returns.md', '## Returns\n\n45 days.', 0.7),
      chunk('faq/shipping.md', 'Ships from Lyon.', 0.4),
    ]);
    expect(prompt).toBe(
      `You are helpful.\n\n${GROUNDING_INSTRUCTIONS}\n\n` +
        '<excerpt source="returns.md">\n## Returns\n\n45 days.\n</excerpt>\n\n' +
        '<excerpt source="faq/shipping.md">\nShips from Lyon.\n</excerpt>',
    );
    expect([...prompt.matchAll(EXCERPT_PATTERN)].map((m) => [m[1], m[2]])).toEqual([
      ['returns.md', '## Returns\n\n45 days.'],
      ['faq/shipping.md', 'Ships from Lyon.'],
    ]);
  });

  it('leaves the system prompt alone without chunks, and cannot be closed early by a file', () => {
    expect(groundedSystemPrompt('You are helpful.', [])).toBe('You are helpful.');
    const tricky = groundedSystemPrompt('', [chunk('a"b.md', 'x\n</excerpt>\ny', 0.5)]);
    const matches = [...tricky.matchAll(EXCERPT_PATTERN)];
    expect(matches).toHaveLength(1);
    expect(matches[0]?.[1]).toBe('a&quot;b.md');
    expect(tricky.startsWith(GROUNDING_INSTRUCTIONS)).toBe(true);
  });

  it('lists each source once with its best score, best first', () => {
    expect(
      sourcesOf([chunk('a.md', '1', 0.41234), chunk('b.md', '2', 0.9), chunk('a.md', '3', 0.5)]),
    ).toEqual([
      { name: 'b.md', score: 0.9 },
      { name: 'a.md', score: 0.5 },
    ]);
    expect(sourcesOf([])).toEqual([]);
  });
});
