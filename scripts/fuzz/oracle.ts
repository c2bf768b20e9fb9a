import { ERROR_CODE_LIST, serverFrameSchema, type ErrorCode, type ServerFrame } from '@relay/common';

/**
 * What the protocol says a gateway does with each input, written from SPEC §2 and the contract's
 * documented rules, not from the gateway's code: the fuzz suite compares the two. Where the spec
 * leaves a choice open (which of two broken rules is reported first), the oracle accepts every
 * code that names a broken rule.
 */

/** Client ids (`id`, `conversation_id`, `request_id`): 1-64 of `[A-Za-z0-9_.:-]`. */
export const ID_PATTERN = /^[\w.:-]{1,64}$/;
/** Userids `POST /token` accepts: 1-128 of `[A-Za-z0-9_.@:-]`. */
export const USERID_PATTERN = /^[\w.@:-]{1,128}$/;
/** A Redis stream id, the form of `event_id` and `?last_event_id=`. */
export const STREAM_ID = /^\d+-\d+$/;

const CATALOG = new Set<string>(ERROR_CODE_LIST);

/** What one complete client message (text or binary, after reassembly) must produce. */
export type Verdict =
  | { v: 'reject'; codes: ErrorCode[]; id?: string; why: string }
  | { v: 'accept'; id?: string; why: string }
  | { v: 'hello'; stream: boolean; why: string }
  | { v: 'cancel'; requestId: string; why: string }
  | { v: 'close'; codes: number[]; tcpDropOk: boolean; why: string };

export interface Limits {
  maxPayloadBytes: number;
  maxContentLength: number;
}

// ignoreBOM keeps a leading U+FEFF, as the gateway's Buffer.toString does: JSON.parse rejects it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly; undefined when the bytes are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

const own = (o: object, k: string) => Object.hasOwn(o, k);

/**
 * The verdict for one complete client message, as SPEC §2 reads:
 * - larger than MAX_PAYLOAD_BYTES: close 1009 (past the WebSocket layer's own cap, 4× that, the
 *   connection may simply drop: README "Oversize frames");
 * - a text frame that is not UTF-8: the WebSocket layer closes (RFC 6455: 1007; uWS drops TCP);
 * - binary: `invalid_message`; not JSON: `invalid_json`; not an object: `invalid_message`;
 * - `type` not one of message/hello/cancel: `unknown_type`;
 * - each type's fields as the contract has them (strict: unknown keys rejected); `content` over
 *   MAX_CONTENT_LENGTH: `message_too_large`; a `userid` that is not the socket's: `userid_mismatch`.
 */
export function judgeMessage(payload: Uint8Array, binary: boolean, userid: string, limits: Limits): Verdict {
  if (payload.length > limits.maxPayloadBytes) {
    // Text that is also not UTF-8: the WebSocket layer may refuse it before the size is looked at.
    const badText = !binary && decodeUtf8(payload) === undefined;
    return {
      v: 'close',
      codes: badText ? [1009, 1007, 1002] : [1009],
      tcpDropOk: badText || payload.length > limits.maxPayloadBytes * 4,
      why: `payload of ${payload.length} bytes > MAX_PAYLOAD_BYTES ${limits.maxPayloadBytes}`,
    };
  }
  if (binary) return { v: 'reject', codes: ['invalid_message'], why: 'binary frame' };
  const text = decodeUtf8(payload);
  if (text === undefined)
    return { v: 'close', codes: [1007, 1002], tcpDropOk: true, why: 'text frame is not UTF-8' };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return { v: 'reject', codes: ['invalid_json'], why: 'not JSON' };
    // The oracle's own parser gave up (it never should): any answer from the catalog will do.
    return { v: 'reject', codes: [...ERROR_CODE_LIST], why: `oracle could not parse: ${String(err)}` };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { v: 'reject', codes: ['invalid_message', 'unknown_type'], why: 'JSON but not an object' };
  }
  const o = data as Record<string, unknown>;
  const id = own(o, 'id') && typeof o.id === 'string' && ID_PATTERN.test(o.id) ? o.id : undefined;
  const type = own(o, 'type') ? o.type : undefined;
  if (typeof type !== 'string') {
    return {
      v: 'reject',
      codes: ['unknown_type', 'invalid_message'],
      id,
      why: 'type is missing or not a string',
    };
  }
  if (type !== 'message' && type !== 'hello' && type !== 'cancel') {
    return {
      v: 'reject',
      codes: ['unknown_type'],
      id,
      why: `unknown type ${JSON.stringify(type.slice(0, 30))}`,
    };
  }
  const broken: Array<[ErrorCode, string]> = [];
  const allowed = {
    message: ['type', 'content', 'userid', 'id', 'conversation_id'],
    hello: ['type', 'stream'],
    cancel: ['type', 'request_id'],
  }[type];
  const unknown = Object.keys(o).filter((k) => !allowed.includes(k));
  if (unknown.length > 0)
    broken.push(['invalid_message', `unknown keys ${JSON.stringify(unknown.slice(0, 3))}`]);
  const idOk = (k: string) => !own(o, k) || (typeof o[k] === 'string' && ID_PATTERN.test(o[k] as string));
  if (type === 'message') {
    const content = own(o, 'content') ? o.content : undefined;
    if (typeof content !== 'string') broken.push(['invalid_message', 'content is not a string']);
    else if (content.length > limits.maxContentLength)
      broken.push(['message_too_large', `content of ${content.length} > ${limits.maxContentLength}`]);
    else if (content.trim() === '') broken.push(['invalid_message', 'content is blank']);
    if (own(o, 'userid') && o.userid !== userid) {
      broken.push(['userid_mismatch', 'userid is not the socket user']);
      // A userid that is not even a string is also just an invalid field.
      if (typeof o.userid !== 'string') broken.push(['invalid_message', 'userid is not a string']);
    }
    if (!idOk('id')) broken.push(['invalid_message', 'bad id']);
    if (!idOk('conversation_id')) broken.push(['invalid_message', 'bad conversation_id']);
    if (broken.length === 0) return { v: 'accept', id, why: 'valid message' };
  } else if (type === 'hello') {
    if (own(o, 'stream') && typeof o.stream !== 'boolean')
      broken.push(['invalid_message', 'stream is not a boolean']);
    if (broken.length === 0) return { v: 'hello', stream: o.stream !== false, why: 'valid hello' };
  } else {
    if (!own(o, 'request_id')) broken.push(['invalid_message', 'request_id missing']);
    else if (!idOk('request_id')) broken.push(['invalid_message', 'bad request_id']);
    if (broken.length === 0) return { v: 'cancel', requestId: o.request_id as string, why: 'valid cancel' };
  }
  return {
    v: 'reject',
    codes: [...new Set(broken.map(([c]) => c))],
    id,
    why: broken.map(([, w]) => w).join('; '),
  };
}

/** A server frame read off a socket: well-formed or the reason it is not. */
export type ParsedServerFrame =
  { ok: true; frame: ServerFrame; text: string } | { ok: false; why: string; text: string };

/** Server frames must be UTF-8 JSON of a type the contract defines, with catalog error codes. */
export function parseServerFrame(bytes: Uint8Array): ParsedServerFrame {
  const text = decodeUtf8(bytes);
  if (text === undefined)
    return { ok: false, why: 'server text frame is not UTF-8', text: Buffer.from(bytes).toString('hex') };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, why: 'server frame is not JSON', text };
  }
  const parsed = serverFrameSchema.safeParse(data);
  if (!parsed.success) {
    const code = (data as { code?: unknown } | null)?.code;
    const why =
      typeof code === 'string' && !CATALOG.has(code)
        ? `error code ${code} is not in the catalog`
        : `server frame breaks the contract: ${parsed.error.issues[0]?.message}`;
    return { ok: false, why, text };
  }
  return { ok: true, frame: parsed.data, text };
}

/** Compares two stream ids numerically (`ms-seq`). */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ma = BigInt(am);
  const mb = BigInt(bm);
  if (ma !== mb) return ma < mb ? -1 : 1;
  const sa = BigInt(as);
  const sb = BigInt(bs);
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}

// ---------------------------------------------------------------- WebSocket protocol model

/** A frame as it goes on the wire, for the protocol model (already encoded payload). */
export interface WireFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
  /** The length field does not match the payload (the model cannot say what the server reads next). */
  lies: boolean;
  /** The length field announces more than the WebSocket layer's cap. */
  announcesOverCap: boolean;
  /** Raw bytes that are not a frame at all. */
  garbage: boolean;
}

/** What the protocol model expects after each wire frame. */
export type WireStep =
  | { w: 'message'; payload: Uint8Array; binary: boolean }
  | { w: 'pong'; payload: Uint8Array }
  | { w: 'nothing'; why: string }
  /** The server must end the connection: any close code, or TCP closed (protocol errors, client close). */
  | { w: 'end'; why: string; protocolError: boolean }
  /** The model cannot say (lying lengths, garbage): anything but a crash or a malformed server frame. */
  | { w: 'unknown'; why: string };

const VALID_CLOSE = (code: number) =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);

/**
 * RFC 6455 as a server must apply it to a sequence of client frames. Returns one step per frame;
 * after an `end` or `unknown` step nothing more is modelled.
 */
export function modelWireFrames(
  frames: WireFrame[],
  limits: Limits,
): { steps: WireStep[]; openFragment: boolean } {
  let open = false;
  const steps = modelFrames(frames, limits, (o) => (open = o));
  return { steps, openFragment: open };
}

function modelFrames(frames: WireFrame[], limits: Limits, fragmentOpen: (open: boolean) => void): WireStep[] {
  const steps: WireStep[] = [];
  let fragment: { binary: boolean; parts: Uint8Array[]; size: number } | null = null;
  for (const f of frames) {
    if (f.garbage) return [...steps, { w: 'unknown', why: 'bytes that are not a frame' }];
    if (f.announcesOverCap)
      return [...steps, { w: 'end', why: 'length over the WebSocket layer cap', protocolError: false }];
    if (f.lies) return [...steps, { w: 'unknown', why: 'length field does not match the payload' }];
    if (f.rsv !== 0)
      return [...steps, { w: 'end', why: 'reserved bits set without an extension', protocolError: true }];
    if (!f.masked) return [...steps, { w: 'end', why: 'unmasked client frame', protocolError: true }];
    const control = f.opcode >= 8;
    if ((f.opcode > 2 && f.opcode < 8) || f.opcode > 10)
      return [...steps, { w: 'end', why: `reserved opcode ${f.opcode}`, protocolError: true }];
    if (control && (f.payload.length > 125 || !f.fin))
      return [...steps, { w: 'end', why: 'control frame over 125 bytes or fragmented', protocolError: true }];
    if (f.opcode === 8) {
      const p = f.payload;
      if (p.length >= 2) {
        const code = (p[0] as number) * 256 + (p[1] as number);
        const why = VALID_CLOSE(code) ? `client close ${code}` : `client close with invalid code ${code}`;
        return [...steps, { w: 'end', why, protocolError: false }];
      }
      return [
        ...steps,
        {
          w: 'end',
          why: p.length === 1 ? 'close frame with 1 byte' : 'client close, no code',
          protocolError: false,
        },
      ];
    }
    if (f.opcode === 9) {
      steps.push({ w: 'pong', payload: f.payload });
      continue;
    }
    if (f.opcode === 10) {
      steps.push({ w: 'nothing', why: 'unsolicited pong' });
      continue;
    }
    if (f.opcode === 0) {
      if (!fragment)
        return [...steps, { w: 'end', why: 'continuation without a first fragment', protocolError: true }];
      fragment.parts.push(f.payload);
      fragment.size += f.payload.length;
      if (fragment.size > limits.maxPayloadBytes * 4)
        return [...steps, { w: 'end', why: 'fragments over the cap', protocolError: false }];
      if (!f.fin) {
        steps.push({ w: 'nothing', why: 'continuation' });
        continue;
      }
      steps.push({ w: 'message', payload: Buffer.concat(fragment.parts), binary: fragment.binary });
      fragment = null;
      continue;
    }
    if (fragment)
      return [...steps, { w: 'end', why: 'new data frame inside a fragmented message', protocolError: true }];
    if (f.fin) {
      steps.push({ w: 'message', payload: f.payload, binary: f.opcode === 2 });
    } else {
      fragment = { binary: f.opcode === 2, parts: [f.payload], size: f.payload.length };
      steps.push({ w: 'nothing', why: 'first fragment' });
    }
  }
  fragmentOpen(fragment !== null);
  return steps;
}

// ---------------------------------------------------------------- HTTP

/** The statuses accepted per route (SPEC §2 "HTTP on every gateway", README, and plain HTTP for the rest). */
export function expectedHttp(
  method: string,
  path: string,
  query: string,
  body = '',
): { statuses: number[]; why: string; userid?: string | null; site?: boolean } {
  if (path === '/token') {
    if (method === 'POST' && body.trim() === '' && new URLSearchParams(query).has('userid')) {
      // Dev mode (docs/identity.md): the original `POST /token?userid=`, no body.
      const userid = new URLSearchParams(query).get('userid');
      const valid = userid !== null && USERID_PATTERN.test(userid);
      // 429 is the documented per-IP limit (raised here, so rare); 503 if the store failed.
      return {
        statuses: valid ? [200, 429, 503] : [400],
        why: valid ? 'valid userid' : 'invalid or missing userid',
        userid,
      };
    }
    if (method === 'POST') {
      // A site token request (JSON body): the statuses docs/identity.md lists.
      return { statuses: [200, 400, 401, 403, 413, 429, 503], why: 'site token request', site: true };
    }
    if (method === 'OPTIONS') return { statuses: [204], why: 'CORS preflight' };
  }
  if (path.startsWith('/api/')) {
    if (method === 'OPTIONS') return { statuses: [204], why: 'CORS preflight' };
    if (method === 'GET' && /^\/api\/v1\/conversations(\/[^/]*)?$/.test(path)) {
      return { statuses: [200, 400, 401, 403, 404], why: 'history API' };
    }
    // docs/presence.md: reads, the batch read and the own-user PUT.
    if (path === '/api/v2/presence' && method === 'GET') {
      return { statuses: [200, 400, 401, 403, 503], why: 'presence batch read (?users=)' };
    }
    if (/^\/api\/v2\/presence\/[^/]+$/.test(path)) {
      if (method === 'GET') return { statuses: [200, 400, 401, 403, 404, 503], why: 'presence read' };
      if (method === 'PUT') return { statuses: [200, 400, 401, 403, 413, 429, 503], why: 'presence update' };
      if (method === 'POST' && path === '/api/v2/presence/batch') {
        return { statuses: [200, 400, 401, 403, 413, 503], why: 'presence batch read (body)' };
      }
    }
  }
  // HEAD is no route of its own: uWS answers it like any other unrouted method.
  if (method === 'HEAD') return { statuses: [200, 404, 405], why: 'HEAD' };
  if (method === 'GET') {
    if (path === '/health') return { statuses: [200], why: 'liveness' };
    if (path === '/ready') return { statuses: [200, 503], why: 'readiness' };
    if (path === '/metrics') return { statuses: [200], why: 'metrics' };
    // The chat page and its files, or not found.
    return { statuses: [200, 404], why: 'static file or not found' };
  }
  return { statuses: [404, 405], why: 'no such route for this method' };
}

/** What an upgrade request must get, from SPEC §2 "Connect" and the README. */
export function expectedUpgrade(input: {
  headersOk: boolean;
  query: string;
  /** The token's user when it is valid, else null. */
  tokenUser: string | null;
  requestTooLarge: boolean;
}): { statuses: number[]; why: string } {
  if (input.requestTooLarge)
    // Then even which headers the WebSocket layer saw is not known: any refusal, or not answering.
    return {
      statuses: [101, 400, 401, 403, 404, 413, 414, 426, 431, 0],
      why: 'request larger than the server reads',
    };
  const gateway = gatewayAdmission(input.query, input.tokenUser);
  if (!input.headersOk) {
    // The gateway may judge the query before the WebSocket layer looks at the headers, or after.
    // 101 too: a lenient WebSocket layer may upgrade anyway (then the socket must work as usual).
    return {
      statuses: [...new Set([400, 404, 426, 0, ...gateway.statuses])],
      why: `not a valid WebSocket upgrade; ${gateway.why}`,
    };
  }
  return gateway;
}

function gatewayAdmission(query: string, tokenUser: string | null): { statuses: number[]; why: string } {
  const input = { query, tokenUser };
  const q = new URLSearchParams(input.query);
  const problems: Array<[number, string]> = [];
  const last = q.get('last_event_id');
  if (last && !STREAM_ID.test(last)) problems.push([400, 'malformed last_event_id']);
  const [ms = '0', seq = '0'] = (last ?? '').split('-');
  // A position in the future, or past 64 bits, is no position of this stream: refusing it is fair.
  const unreal =
    last && STREAM_ID.test(last) && (BigInt(ms) > BigInt(Date.now()) || BigInt(seq) >= 2n ** 64n);
  const claimed = q.get('userid');
  if (input.tokenUser === null) problems.push([401, 'invalid token']);
  else if (claimed !== null && claimed !== input.tokenUser)
    problems.push([401, 'userid is not the token user']);
  if (problems.length === 0) {
    return unreal
      ? { statuses: [101, 400], why: 'last_event_id ahead of any event' }
      : { statuses: [101], why: 'valid upgrade' };
  }
  if (unreal) problems.push([400, 'last_event_id ahead of any event']);
  return { statuses: problems.map(([s]) => s), why: problems.map(([, w]) => w).join('; ') };
}
