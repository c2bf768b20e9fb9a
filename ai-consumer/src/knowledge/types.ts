/** One chunk chosen for a question: where it came from, its text, its cosine similarity. */
export interface RetrievedChunk {
  /** The file's path relative to the site's knowledge source (its base name for a single file). */
  source: string;
  text: string;
  score: number;
}

/** A source as the final frame lists it (`sources: [{name, score}]`); a type, so it fits the lenient event schema. */
export type Source = { name: string; score: number };

/** What the consumer needs from the knowledge base: the chunks for a question of a site. */
export interface Retriever {
  /** Whether the site has a knowledge source (then its final frames carry `sources`, maybe empty). */
  has(site: string): boolean;
  /**
   * The top-k chunks of the site's knowledge at or above the minimum score, best first; empty when
   * none is. Throws when the question cannot be embedded (provider down, timeout, aborted).
   */
  retrieve(site: string, question: string, signal?: AbortSignal): Promise<RetrievedChunk[]>;
}
