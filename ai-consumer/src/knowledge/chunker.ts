export interface ChunkOptions {
  /** Longest chunk in characters (a single word longer than that is cut). */
  size: number;
  /** Characters of the previous chunk a chunk of the same section starts with; below `size / 2`. */
  overlap: number;
}

const HEADING = /^#{1,6}\s+\S/u;

/** The text split at markdown headings; each section starts with its heading line (if any). */
function sections(text: string): Array<{ heading: string; body: string }> {
  const out: Array<{ heading: string; lines: string[] }> = [{ heading: '', lines: [] }];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/u.test(line)) fenced = !fenced;
    if (!fenced && HEADING.test(line)) out.push({ heading: line.trim(), lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out.map((s) => ({ heading: s.heading, body: s.lines.join('\n').trim() }));
}

/** `text` cut into pieces of at most `max` characters, at whitespace where there is some. */
function split(text: string, max: number): string[] {
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const cut = rest.lastIndexOf(' ', max);
    const at = cut > max / 2 ? cut : max;
    pieces.push(rest.slice(0, at).trim());
    rest = rest.slice(at).trim();
  }
  if (rest) pieces.push(rest);
  return pieces;
}

/** The last `overlap` characters of `chunk`, from a word start. */
function tail(chunk: string, overlap: number): string {
  if (overlap <= 0 || chunk.length <= overlap) return overlap <= 0 ? '' : chunk;
  const from = chunk.length - overlap;
  const space = chunk.indexOf(' ', from);
  return (space === -1 ? chunk.slice(from) : chunk.slice(space + 1)).trim();
}

/**
 * Chunks for embedding. Sections (markdown headings) are never mixed, so a chunk is about one topic;
 * within a section whole paragraphs are packed up to `size` characters, a longer paragraph is cut at
 * spaces, and each chunk after the first starts with the section's heading and the last `overlap`
 * characters of the chunk before it, so a fact cut at a boundary is still whole in one of them.
 */
export function chunkText(text: string, options: ChunkOptions): string[] {
  const { size } = options;
  const chunks: string[] = [];
  for (const { heading, body } of sections(text.replace(/\r\n?/gu, '\n'))) {
    if (!body) {
      // A heading alone says little, but a file of headings only still says something.
      if (heading) chunks.push(heading.slice(0, size));
      continue;
    }
    // A heading longer than a fifth of the chunk is cut, so that there is room for the text.
    const head = heading.slice(0, Math.floor(size / 5));
    const overlap = Math.min(options.overlap, Math.floor(size / 2) - 1);
    // Every piece fits in a chunk after the heading and the overlap, so packing always progresses.
    const room = size - (head ? head.length + 2 : 0) - overlap - 2;
    const pieces = body
      .split(/\n\s*\n/u)
      .map((p) => p.trim().replace(/[ \t]+/gu, ' '))
      .filter(Boolean)
      .flatMap((p) => split(p, Math.max(1, room)));
    let current: string[] = head ? [head] : [];
    let length = head.length;
    let hasText = false;
    for (const piece of pieces) {
      if (hasText && length + 2 + piece.length > size) {
        const done = current.join('\n\n');
        chunks.push(done);
        const carried = tail(done.slice(head.length), overlap);
        current = [head, carried].filter(Boolean);
        length = current.join('\n\n').length;
      }
      current.push(piece);
      length += (length > 0 ? 2 : 0) + piece.length;
      hasText = true;
    }
    if (hasText) chunks.push(current.join('\n\n'));
  }
  return chunks;
}
