// Deterministic "model": the answer, token counts and embeddings are pure functions of the input, so tests
// (and anyone comparing a streamed answer with a non-streamed one) can predict them exactly.

/** 32-bit FNV-1a over the UTF-16 code units of `text`. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function createPrng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VOCABULARY = [
  'streams',
  'tokens',
  'quietly',
  'through',
  'the',
  'relay',
  'while',
  'amber',
  'signals',
  'drift',
  'across',
  'calm',
  'servers',
  'and',
  'bright',
  'queues',
  'hum',
  'softly',
  'under',
  'silver',
  'clouds',
  'today',
] as const;

/** How many words of the prompt the answer repeats. */
const ECHO_WORDS = 8;
const MARKER_PATTERN = /\[mock:[^\]]*\]/g;

/**
 * The mock's answer to `prompt`, as tokens: the first token is `Echo:`, every later one carries its leading
 * space, so `tokens.join('')` is the full content. Shape: `Echo: <first words of the prompt>[ …] — <4..7
 * words picked by a hash of the prompt>.` — at least 6 tokens even for an empty prompt, and at least
 * `minTokens` (more picked words) when given: real answers run to hundreds of tokens.
 */
export function answerTokens(prompt: string, minTokens = 0): string[] {
  const words = prompt.replace(MARKER_PATTERN, ' ').split(/\s+/u).filter(Boolean);
  const random = createPrng(hash32(prompt));
  const echoed = Math.min(words.length, ECHO_WORDS) + (words.length > ECHO_WORDS ? 1 : 0);
  // `Echo:`, the echoed words, `—`, then the picked words: as many as `minTokens` asks for.
  const extraCount = Math.max(4 + Math.floor(random() * 4), minTokens - echoed - 2);
  const extra: string[] = [];
  for (let i = 0; i < extraCount; i++) {
    extra.push(VOCABULARY[Math.floor(random() * VOCABULARY.length)] ?? 'mock');
  }
  extra[extra.length - 1] += '.';
  const parts = [...words.slice(0, ECHO_WORDS), ...(words.length > ECHO_WORDS ? ['…'] : []), '—', ...extra];
  return ['Echo:', ...parts.map((part) => ` ${part}`)];
}

/** The rough "four characters per token" rule OpenAI documents; good enough for mock usage numbers. */
export function approximateTokenCount(text: string): number {
  return Math.ceil(text.length / 4);
}
