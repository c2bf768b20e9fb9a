import { describe, expect, it } from 'vitest';
import { chunkText } from './chunker.js';

const words = (n: number, word = 'lorem') => Array.from({ length: n }, (_, i) => `${word}${i}`).join(' ');

describe('chunkText', () => {
  it('keeps a short file whole, and never mixes two sections', () => {
    expect(chunkText('Just one line.', { size: 200, overlap: 20 })).toEqual(['Just one line.']);
    const chunks = chunkText('# A\n\nfirst part.\n\n## B\n\nsecond part.\n', { size: 200, overlap: 20 });
    expect(chunks).toEqual(['# A\n\nfirst part.', '## B\n\nsecond part.']);
  });

  it('packs paragraphs up to the size; later chunks of a section repeat its heading and the overlap', () => {
    const paragraphs = Array.from({ length: 12 }, (_, i) => `Paragraph ${i}: ${words(8, `w${i}x`)}.`);
    const text = `## Returns\n\n${paragraphs.join('\n\n')}`;
    const chunks = chunkText(text, { size: 300, overlap: 60 });
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) {
      expect(c.length).toBeLessThanOrEqual(300);
      expect(c.startsWith('## Returns\n\n')).toBe(true);
    }
    for (let i = 1; i < chunks.length; i++) {
      // The start of each chunk's text is the end of the one before.
      const body = (chunks[i] as string).slice('## Returns\n\n'.length);
      const carried = body.split('\n\n')[0] as string;
      expect(carried.length).toBeLessThanOrEqual(60);
      expect(chunks[i - 1]?.endsWith(carried)).toBe(true);
    }
    // Nothing is lost: every paragraph is in some chunk, whole.
    for (const p of paragraphs) expect(chunks.some((c) => c.includes(p))).toBe(true);
  });

  it('cuts a paragraph longer than a chunk at spaces, and a word longer than a chunk anyway', () => {
    const long = words(200);
    const chunks = chunkText(long, { size: 250, overlap: 50 });
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(250);
    expect(chunks.join(' ')).toContain('lorem0 ');
    expect(chunks.at(-1)).toContain('lorem199');
    const giant = 'x'.repeat(1000);
    const cut = chunkText(giant, { size: 300, overlap: 0 });
    expect(cut.every((c) => c.length <= 300)).toBe(true);
    expect(cut.join('')).toBe(giant);
  });

  it('does not take a "#" line inside a code fence for a heading; CRLF is fine', () => {
    const text = '# Setup\r\n\r\n```sh\r\n# not a heading\r\nnpm ci\r\n```\r\n';
    expect(chunkText(text, { size: 500, overlap: 50 })).toEqual([
      '# Setup\n\n```sh\n# not a heading\nnpm ci\n```',
    ]);
  });

  it('gives nothing for an empty or blank file', () => {
    expect(chunkText('', { size: 200, overlap: 20 })).toEqual([]);
    expect(chunkText(' \n\n \n', { size: 200, overlap: 20 })).toEqual([]);
  });
});
