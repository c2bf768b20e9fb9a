import type { RetrievedChunk, Source } from './types.js';

/**
 * What the model is told about the excerpts, between the site's system prompt and the excerpts.
 * Citing in square brackets is what the bundled mock does too, so the tests can see a citation.
 */
export const GROUNDING_INSTRUCTIONS =
  "Excerpts from this site's knowledge base that may answer the user's question follow, each with its " +
  'source. Use them when they are relevant and cite the source of what you use in square brackets, as ' +
  'in [faq.md]. If they do not answer the question, say so rather than guess.';

/** One excerpt in the system prompt; `name` and `text` as escaped by {@link groundedSystemPrompt}. */
export const EXCERPT_PATTERN = /<excerpt source="([^"]*)">\n([\s\S]*?)\n<\/excerpt>/g;

// The knowledge files are the operator's, but one that contains the closing tag (a file about this
// very format) must not end its excerpt early, and a quote in a file name must not end the attribute.
const escapeName = (name: string): string => name.replaceAll('"', '&quot;');
const escapeText = (text: string): string => text.replaceAll('</excerpt>', '<\\/excerpt>');

/**
 * The system prompt with the retrieved chunks after it, best first:
 *
 *     <system prompt>
 *
 *     <GROUNDING_INSTRUCTIONS>
 *
 *     <excerpt source="returns.md">
 *     …chunk text…
 *     </excerpt>
 *
 * No chunks: the system prompt unchanged (the model answers as it would without a knowledge base).
 */
export function groundedSystemPrompt(systemPrompt: string, chunks: readonly RetrievedChunk[]): string {
  if (chunks.length === 0) return systemPrompt;
  const excerpts = chunks.map(
    (c) => `<excerpt source="${escapeName(c.source)}">\n${escapeText(c.text)}\n</excerpt>`,
  );
  return [systemPrompt, GROUNDING_INSTRUCTIONS, ...excerpts].filter(Boolean).join('\n\n');
}

/** The `sources` of a final frame: each source once, with its best chunk's score (3 decimals), best first. */
export function sourcesOf(chunks: readonly RetrievedChunk[]): Source[] {
  const best = new Map<string, number>();
  for (const c of chunks) best.set(c.source, Math.max(best.get(c.source) ?? -1, c.score));
  return [...best]
    .map(([name, score]) => ({ name, score: Math.round(score * 1000) / 1000 }))
    .sort((a, b) => b.score - a.score);
}
