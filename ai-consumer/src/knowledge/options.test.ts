import { fileURLToPath } from 'node:url';
import { loadConfig } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { knowledgeFragment } from './options.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const thisFile = fileURLToPath(import.meta.url);
const load = (env: Record<string, string>) => loadConfig({ knowledge: knowledgeFragment }, env).knowledge;

describe('knowledge config', () => {
  it('is off without KNOWLEDGE_SOURCES, with the documented defaults', () => {
    expect(load({})).toEqual({
      sources: [],
      embeddingModel: 'text-embedding-3-small',
      chunk: { size: 1200, overlap: 200 },
      topK: 4,
      minScore: 0.3,
      refreshMs: 30_000,
      cacheTtlMs: 30 * 86_400_000,
      queryTimeoutMs: 5000,
    });
  });

  it('takes a file or a folder per site, made absolute', () => {
    const k = load({
      KNOWLEDGE_SOURCES: JSON.stringify({ demo: here, acme: thisFile }),
      KNOWLEDGE_MIN_SCORE: '0.45',
    });
    expect(k.sources).toEqual([
      { site: 'demo', path: here.replace(/\/$/, ''), kind: 'folder' },
      { site: 'acme', path: thisFile, kind: 'file' },
    ]);
    expect(k.minScore).toBe(0.45);
  });

  it('stops with one line naming the variable for a bad value', () => {
    const line = (env: Record<string, string>) => {
      try {
        load(env);
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    };
    expect(line({ KNOWLEDGE_SOURCES: JSON.stringify({ demo: '/nowhere/at/all' }) })).toBe(
      'config error: KNOWLEDGE_SOURCES site "demo": /nowhere/at/all does not exist',
    );
    expect(line({ KNOWLEDGE_SOURCES: '{demo: x}' })).toMatch(/^config error: KNOWLEDGE_SOURCES must be JSON/);
    expect(line({ KNOWLEDGE_SOURCES: '["x"]' })).toMatch(
      /^config error: KNOWLEDGE_SOURCES must be a JSON object/,
    );
    expect(line({ KNOWLEDGE_SOURCES: JSON.stringify({ Demo: here }) })).toMatch(
      /^config error: KNOWLEDGE_SOURCES has site id "Demo"; site ids are 1-32 characters/,
    );
    expect(line({ KNOWLEDGE_SOURCES: '{"demo": 1}' })).toMatch(
      /^config error: KNOWLEDGE_SOURCES must map each site to a path/,
    );
    expect(line({ KNOWLEDGE_MIN_SCORE: '1.5' })).toMatch(
      /^config error: KNOWLEDGE_MIN_SCORE must be a number between 0 and 1/,
    );
    expect(line({ KNOWLEDGE_CHUNK_CHARS: '400', KNOWLEDGE_CHUNK_OVERLAP_CHARS: '200' })).toMatch(
      /^config error: KNOWLEDGE_CHUNK_OVERLAP_CHARS must be less than half/,
    );
    for (const l of [line({ KNOWLEDGE_SOURCES: JSON.stringify({ demo: '/nowhere' }) })])
      expect(l).not.toContain('\n');
  });
});
