import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, fragment, int } from '@relay/common';
import { z } from 'zod';

/** Site ids as docs/identity.md defines them (the gateway's sites, and `dev` for dev tokens). */
const SITE_ID = /^[a-z0-9-]{1,32}$/u;

const sourcesJson = z
  .string()
  .transform((text, ctx): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON: {"<site>": "<file or folder>", …}' });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .record(
        z.string(),
        z.string({ error: 'must map each site to a path' }).min(1, 'must map each site to a path'),
        {
          error: (issue) =>
            issue.code === 'invalid_type'
              ? 'must be a JSON object {"<site>": "<file or folder>", …}'
              : undefined,
        },
      )
      .superRefine((sources, ctx) => {
        for (const site of Object.keys(sources)) {
          if (!SITE_ID.test(site)) {
            ctx.addIssue({
              code: 'custom',
              message: `has site id "${site}"; site ids are 1-32 characters of [a-z0-9-]`,
            });
          }
        }
      }),
  );

const score = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/u, { message: 'must be a number between 0 and 1' })
  .transform(Number);

/** One site's knowledge source, its path made absolute and checked. */
export interface KnowledgeSource {
  site: string;
  /** Absolute path of a file or a folder. */
  path: string;
  kind: 'file' | 'folder';
}

/**
 * The paths must exist and be readable when the service starts: a typo stops it with one line
 * rather than answering ungrounded for weeks. Relative paths are from the working directory.
 */
export function checkSources(sources: Record<string, string>): KnowledgeSource[] {
  return Object.entries(sources).map(([site, given]) => {
    const path = resolve(given);
    const fail = (why: string): never => {
      throw new ConfigError(
        'KNOWLEDGE_SOURCES',
        `config error: KNOWLEDGE_SOURCES site "${site}": ${given} ${why}`,
      );
    };
    let stats;
    try {
      stats = statSync(path);
      accessSync(path, constants.R_OK | (stats.isDirectory() ? constants.X_OK : 0));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return fail(code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'error'})`);
    }
    if (!stats.isFile() && !stats.isDirectory()) return fail('is neither a file nor a folder');
    return { site, path, kind: stats.isDirectory() ? 'folder' : 'file' };
  });
}

/**
 * Grounded answers (docs/knowledge.md): per site, a text/markdown file or a folder of them, chunked,
 * embedded with `OPENAI_EMBEDDING_MODEL` and cached by content hash; the best chunks go into the
 * system prompt. Unset `KNOWLEDGE_SOURCES`: no retrieval at all.
 */
export const knowledgeFragment = fragment(
  {
    /** `{"<site>": "<file or folder>"}`; each path must exist at start. */
    KNOWLEDGE_SOURCES: sourcesJson.optional(),
    /** Embedding model, on the chat model's base URL and key. @default text-embedding-3-small */
    OPENAI_EMBEDDING_MODEL: z.string().min(1).default('text-embedding-3-small'),
    /** Longest chunk, in characters (~300 tokens at the default). @default 1200 */
    KNOWLEDGE_CHUNK_CHARS: int(200, 20_000).default(1200),
    /** Characters a chunk repeats from the one before it in the same section. @default 200 */
    KNOWLEDGE_CHUNK_OVERLAP_CHARS: int(0, 10_000).default(200),
    /** Most chunks put into one system prompt. @default 4 */
    KNOWLEDGE_TOP_K: int(1, 50).default(4),
    /** Least cosine similarity of a chunk to the question for it to be used. @default 0.3 */
    KNOWLEDGE_MIN_SCORE: score.default(0.3),
    /** How often the files are checked for changes (mtime and size, then content hash). @default 30000 */
    KNOWLEDGE_REFRESH_MS: int(1000, 86_400_000).default(30_000),
    /** How long an embedding stays cached in Redis after it was last written. @default 2592000 (30 days) */
    KNOWLEDGE_CACHE_TTL_SECONDS: int(60, 365 * 86_400).default(30 * 86_400),
    /** Longest wait for a question's embedding; past it the answer is not grounded. @default 5000 */
    KNOWLEDGE_QUERY_TIMEOUT_MS: int(100, 120_000).default(5000),
  },
  (e) => {
    if (e.KNOWLEDGE_CHUNK_OVERLAP_CHARS * 2 >= e.KNOWLEDGE_CHUNK_CHARS) {
      throw new ConfigError(
        'KNOWLEDGE_CHUNK_OVERLAP_CHARS',
        `config error: KNOWLEDGE_CHUNK_OVERLAP_CHARS must be less than half of KNOWLEDGE_CHUNK_CHARS (got ${e.KNOWLEDGE_CHUNK_OVERLAP_CHARS} for ${e.KNOWLEDGE_CHUNK_CHARS})`,
      );
    }
    return {
      sources: checkSources(e.KNOWLEDGE_SOURCES ?? {}),
      embeddingModel: e.OPENAI_EMBEDDING_MODEL,
      chunk: { size: e.KNOWLEDGE_CHUNK_CHARS, overlap: e.KNOWLEDGE_CHUNK_OVERLAP_CHARS },
      topK: e.KNOWLEDGE_TOP_K,
      minScore: e.KNOWLEDGE_MIN_SCORE,
      refreshMs: e.KNOWLEDGE_REFRESH_MS,
      cacheTtlMs: e.KNOWLEDGE_CACHE_TTL_SECONDS * 1000,
      queryTimeoutMs: e.KNOWLEDGE_QUERY_TIMEOUT_MS,
    };
  },
);

export type KnowledgeSettings = ReturnType<typeof knowledgeFragment.build>;
