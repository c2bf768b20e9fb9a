import { readFile } from 'node:fs/promises';
import { once, startAtZero, type Logger, type Metrics } from '@relay/common';
import { createCircuitBreaker, type CircuitBreaker } from '../circuit-breaker.js';
import { consumerMetrics } from '../consumer-metrics.js';
import { chunkText, type ChunkOptions } from './chunker.js';
import { contentHash, type Embedder } from './embedder.js';
import { MAX_FILE_BYTES, listFiles } from './files.js';
import type { KnowledgeSource } from './options.js';
import type { RetrievedChunk, Retriever } from './types.js';
import { cosine } from './vectors.js';

export interface KnowledgeBaseOptions {
  sources: readonly KnowledgeSource[];
  embedder: Embedder;
  chunk: ChunkOptions;
  /** Most chunks returned per question. */
  topK: number;
  /** Least cosine similarity returned. */
  minScore: number;
  /** Interval of the change checks; the timer does not keep the process alive. */
  refreshMs: number;
  /** Longest wait for a question's embedding. */
  queryTimeoutMs: number;
  /** Guards the question embeddings: while the provider is down, answers go ungrounded at once. */
  breaker: { failureThreshold: number; cooldownMs: number };
  logger: Logger;
  metrics: Metrics;
}

/** What one check did, summed over the sites. */
export interface RefreshReport {
  /** Files read again because their mtime or size changed and whose content hash differed. */
  changed: number;
  /** Files dropped because they are gone. */
  removed: number;
  /** Chunks embedded through the API (the rest of a changed file's chunks came from the cache). */
  embedded: number;
  /** Files or sources that failed; what they had stays indexed until the next check. */
  failed: number;
}

export interface KnowledgeBase extends Retriever {
  /** The first check of every source, then one every `refreshMs`. Failures are logged, not thrown. */
  start(): Promise<RefreshReport>;
  /** Checks every source now (after any check under way). */
  refresh(): Promise<RefreshReport>;
  /** Chunks indexed for a site. */
  size(site: string): number;
  /** Stops the checks and waits for one under way. Idempotent. */
  close(): Promise<void>;
}

interface IndexedChunk extends Omit<RetrievedChunk, 'score'> {
  vector: Float32Array;
}

interface IndexedFile {
  mtimeMs: number;
  size: number;
  hash: string;
  chunks: IndexedChunk[];
}

interface SiteIndex {
  source: KnowledgeSource;
  files: Map<string, IndexedFile>;
  /** Every file's chunks, rebuilt when a file changes: what a question is ranked against. */
  chunks: IndexedChunk[];
}

/**
 * Per-site indexes of chunk vectors in memory, built from the files at start and kept current by a
 * check every `refreshMs`: a file whose mtime or size moved is read and hashed; a new hash is chunked
 * and embedded (chunks already in the cache cost nothing); a file that is gone is dropped. Ranking is
 * a linear scan (fine for thousands of chunks per site; a vector index would be the next step).
 */
export function createKnowledgeBase(options: KnowledgeBaseOptions): KnowledgeBase {
  const { embedder, logger } = options;
  const m = consumerMetrics(options.metrics);
  startAtZero(m.retrievals, 'result', ['grounded', 'none', 'error', 'unavailable']);
  startAtZero(m.knowledgeEmbedded, 'source', ['api', 'cache']);
  const sites = new Map<string, SiteIndex>(
    options.sources.map((source) => [source.site, { source, files: new Map(), chunks: [] }]),
  );
  const breaker: CircuitBreaker = createCircuitBreaker({
    ...options.breaker,
    onStateChange: (state, previous) => {
      const log = state === 'open' ? logger.warn.bind(logger) : logger.info.bind(logger);
      log({ state, previous }, `knowledge query embeddings breaker ${state}`);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<RefreshReport> | undefined;
  let closed = false;

  async function indexFile(
    name: string,
    text: string,
  ): Promise<{ chunks: IndexedChunk[]; embedded: number }> {
    const texts = chunkText(text, options.chunk);
    const { vectors, embedded } = await embedder.embedChunks(texts);
    m.knowledgeEmbedded.inc({ source: 'api' }, embedded);
    m.knowledgeEmbedded.inc({ source: 'cache' }, texts.length - embedded);
    return {
      chunks: texts.map((t, i) => ({ source: name, text: t, vector: vectors[i] as Float32Array })),
      embedded,
    };
  }

  async function refreshSite(site: SiteIndex, report: RefreshReport): Promise<void> {
    const log = logger.child({ site: site.source.site });
    let listing;
    try {
      listing = await listFiles(site.source);
    } catch (error) {
      // Gone or unreadable now (a deploy swapping the folder?): answer from what was indexed.
      report.failed++;
      m.knowledgeRefreshErrors.inc();
      log.error({ err: error, path: site.source.path }, 'knowledge source cannot be read; keeping its index');
      return;
    }
    if (listing.truncated)
      log.warn({ path: site.source.path }, 'knowledge folder has too many files; the rest are ignored');
    let dirty = false;
    const seen = new Set<string>();
    for (const file of listing.files) {
      seen.add(file.name);
      const known = site.files.get(file.name);
      if (known && known.mtimeMs === file.mtimeMs && known.size === file.size) continue;
      if (file.size > MAX_FILE_BYTES) {
        if (!known || known.hash !== 'too-large')
          log.warn({ file: file.name, bytes: file.size }, 'knowledge file too large; skipped');
        site.files.set(file.name, { mtimeMs: file.mtimeMs, size: file.size, hash: 'too-large', chunks: [] });
        dirty ||= (known?.chunks.length ?? 0) > 0;
        continue;
      }
      try {
        const text = await readFile(file.path, 'utf8');
        const hash = contentHash(text);
        if (known && known.hash === hash) {
          // Touched, not changed: nothing to embed.
          site.files.set(file.name, { ...known, mtimeMs: file.mtimeMs, size: file.size });
          continue;
        }
        const { chunks, embedded } = await indexFile(file.name, text);
        site.files.set(file.name, { mtimeMs: file.mtimeMs, size: file.size, hash, chunks });
        report.changed++;
        report.embedded += embedded;
        dirty = true;
        log.info(
          { file: file.name, chunks: chunks.length, embedded },
          known ? 'knowledge file re-indexed' : 'knowledge file indexed',
        );
      } catch (error) {
        // Its old chunks (if any) stay, and its old mtime makes the next check try again.
        report.failed++;
        m.knowledgeRefreshErrors.inc();
        log.warn(
          { err: error, file: file.name },
          'knowledge file could not be indexed; trying again at the next check',
        );
      }
    }
    for (const name of [...site.files.keys()]) {
      if (seen.has(name)) continue;
      site.files.delete(name);
      report.removed++;
      dirty = true;
      log.info({ file: name }, 'knowledge file removed from the index');
    }
    if (dirty) {
      site.chunks = [...site.files.values()].flatMap((f) => f.chunks);
      m.knowledgeChunks.set({ site: site.source.site }, site.chunks.length);
    }
  }

  async function check(): Promise<RefreshReport> {
    const report: RefreshReport = { changed: 0, removed: 0, embedded: 0, failed: 0 };
    for (const site of sites.values()) await refreshSite(site, report);
    return report;
  }

  /** One check at a time; a caller that finds one under way gets a fresh one after it. */
  function refresh(): Promise<RefreshReport> {
    const previous = running ?? Promise.resolve(undefined);
    const next = previous.then(check, check).finally(() => {
      if (running === next) running = undefined;
    });
    running = next;
    return next;
  }

  return {
    has: (site) => sites.has(site),
    size: (site) => sites.get(site)?.chunks.length ?? 0,

    async start() {
      for (const site of sites.values()) m.knowledgeChunks.set({ site: site.source.site }, 0);
      const report = await refresh();
      const summary = Object.fromEntries([...sites].map(([id, s]) => [id, s.chunks.length]));
      logger.info({ chunks: summary, embedded: report.embedded, failed: report.failed }, 'knowledge indexed');
      if (!closed) {
        timer = setInterval(() => {
          // A slow check (a big re-embedding) is not stacked with more of them.
          if (!running) void refresh();
        }, options.refreshMs);
        timer.unref();
      }
      return report;
    },

    refresh,

    async retrieve(site, question, signal) {
      const index = sites.get(site);
      if (!index || index.chunks.length === 0) return [];
      const query = await breaker.run(
        () =>
          embedder.embedQuery(question, { timeoutMs: options.queryTimeoutMs, ...(signal ? { signal } : {}) }),
        // The user cancelling proves nothing about the provider.
        () => (signal?.aborted ? 'ignore' : 'failure'),
      );
      const ranked: RetrievedChunk[] = [];
      for (const chunk of index.chunks) {
        const score = cosine(query, chunk.vector);
        if (score >= options.minScore) ranked.push({ source: chunk.source, text: chunk.text, score });
      }
      return ranked.sort((a, b) => b.score - a.score).slice(0, options.topK);
    },

    close: once(async () => {
      closed = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    }),
  };
}
