// What the mock "model" does with a knowledge base's excerpts in its system prompt: like a model told
// to cite, it picks the excerpt (and the sentence in it) sharing the most words with the question,
// and appends ` [<source>] <that sentence>` to its answer. Without excerpts nothing changes.

import { EXCERPT_PATTERN } from '../knowledge/prompt.js';
import { stems } from './similarity.js';
import { messageText, type ChatMessage } from './wire.js';

interface Excerpt {
  source: string;
  text: string;
}

function excerptsOf(messages: readonly ChatMessage[]): Excerpt[] {
  const found: Excerpt[] = [];
  for (const message of messages) {
    if (message.role !== 'system' && message.role !== 'developer') continue;
    for (const match of messageText(message).matchAll(EXCERPT_PATTERN)) {
      found.push({ source: (match[1] ?? '').replaceAll('&quot;', '"'), text: match[2] ?? '' });
    }
  }
  return found;
}

function overlap(words: ReadonlySet<string>, text: string): number {
  return new Set(stems(text).filter((s) => words.has(s))).size;
}

/** Tokens (each with its leading space) citing the excerpt that best answers `prompt`; [] if none does. */
export function citationTokens(messages: readonly ChatMessage[], prompt: string): string[] {
  const question = new Set(stems(prompt));
  let best: { excerpt: Excerpt; score: number } | undefined;
  for (const excerpt of excerptsOf(messages)) {
    const score = overlap(question, excerpt.text);
    if (score > 0 && (!best || score > best.score)) best = { excerpt, score };
  }
  if (!best) return [];
  const sentences = best.excerpt.text
    .split(/(?<=[.!?])\s+|\n+/u)
    .map((s) => s.replace(/^#+\s*/u, '').trim())
    .filter(Boolean);
  let sentence = sentences[0] ?? '';
  let sentenceScore = -1;
  for (const s of sentences) {
    const score = overlap(question, s);
    if (score > sentenceScore) [sentence, sentenceScore] = [s, score];
  }
  return [`[${best.excerpt.source}]`, ...sentence.split(/\s+/u).filter(Boolean)].map((t) => ` ${t}`);
}
