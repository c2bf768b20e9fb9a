/**
 * A JSON text described as a tree, so a generated frame keeps its structure while fast-check
 * shrinks it (a 20 000-level nesting shrinks to the smallest depth that still fails, not to a
 * random string), and so it can say what JSON.stringify never writes: duplicate keys, number
 * literals such as `1e400` or `-0`, bad escapes, raw control characters.
 */
export type JNode =
  /** A string written by JSON.stringify: lone surrogates come out as `\ud800` escapes. */
  | { t: 'str'; s: string }
  /** `"` + body + `"` with the body as is: bad escapes, raw control characters, unpaired `\ud800`. */
  | { t: 'rawstr'; body: string }
  /** A number literal as written (`1e400`, `-0`, 30 digits…). */
  | { t: 'num'; text: string }
  | { t: 'lit'; text: 'true' | 'false' | 'null' }
  | { t: 'arr'; items: JNode[] }
  /** Entries in order; a key may repeat (JSON.parse keeps the last). */
  | { t: 'obj'; entries: Array<[string, JNode]> }
  /** `depth` levels of `[` or `{"k":` around `inner`: nesting without building a deep tree here. */
  | { t: 'deep'; open: 'array' | 'object'; key: string; depth: number; inner: JNode }
  /** A string of `units` UTF-16 code units, relative to the server's content limit (`delta` off it). */
  | { t: 'sized'; delta: number; unit: string }
  /** Values only known when the case runs: the socket's user, or the k-th id of this case. */
  | { t: 'ref'; ref: 'user' | 'id'; k: number };

export interface DocContext {
  userid: string;
  /** The k-th client id of the running case (unique in the run, so cases stay independent). */
  idFor(k: number): string;
  maxContentLength: number;
}

/** Writes the document as JSON text. Not recursive in `deep` nodes, so any depth is cheap. */
export function serialize(node: JNode, ctx: DocContext): string {
  switch (node.t) {
    case 'str':
      return JSON.stringify(node.s);
    case 'rawstr':
      return `"${node.body}"`;
    case 'num':
    case 'lit':
      return node.text;
    case 'arr':
      return `[${node.items.map((i) => serialize(i, ctx)).join(',')}]`;
    case 'obj':
      return `{${node.entries.map(([k, v]) => `${JSON.stringify(k)}:${serialize(v, ctx)}`).join(',')}}`;
    case 'deep': {
      const open = node.open === 'array' ? '[' : `{${JSON.stringify(node.key)}:`;
      const close = node.open === 'array' ? ']' : '}';
      return open.repeat(node.depth) + serialize(node.inner, ctx) + close.repeat(node.depth);
    }
    case 'sized': {
      const length = Math.max(0, ctx.maxContentLength + node.delta);
      const unit = node.unit || 'a';
      return JSON.stringify(unit.repeat(Math.ceil(length / unit.length)).slice(0, length));
    }
    case 'ref':
      return JSON.stringify(node.ref === 'user' ? ctx.userid : ctx.idFor(node.k));
  }
}

/** A short human-readable form for reports: long runs are elided, deep nestings summarised. */
export function describe(node: JNode, ctx: DocContext, budget = 300): string {
  const text = (() => {
    switch (node.t) {
      case 'deep':
        return `${node.open === 'array' ? '[' : `{${JSON.stringify(node.key)}:`}×${node.depth} ${describe(node.inner, ctx, 80)} ${node.open === 'array' ? ']' : '}'}×${node.depth}`;
      case 'sized':
        return `<string of maxContentLength${node.delta >= 0 ? '+' : ''}${node.delta} units of ${JSON.stringify(node.unit)}>`;
      case 'arr':
        return `[${node.items.map((i) => describe(i, ctx, 120)).join(',')}]`;
      case 'obj':
        return `{${node.entries.map(([k, v]) => `${JSON.stringify(k)}:${describe(v, ctx, 200)}`).join(',')}}`;
      default:
        return serialize(node, ctx);
    }
  })();
  return elide(text, budget);
}

export function elide(text: string, budget: number): string {
  if (text.length <= budget) return text;
  const half = Math.floor(budget / 2) - 10;
  return `${text.slice(0, half)}…(${text.length - 2 * half} more)…${text.slice(-half)}`;
}
