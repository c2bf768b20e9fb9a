import { createHmac } from 'node:crypto';
import { describe as describeDoc, serialize, type DocContext, type JNode } from './json-doc.js';
import {
  type DataFrame,
  type FramesCase,
  type ProtocolCase,
  type RawFrame,
  type UpgradeCase,
} from './generators.js';
import {
  USERID_PATTERN,
  expectedUpgrade,
  judgeMessage,
  modelWireFrames,
  type Limits,
  type WireFrame,
} from './oracle.js';
import { SocketOracle, type UserLedger } from './socket-oracle.js';
import type { Target } from './target.js';
import { OPCODES, RawConnection, closePayload, encodeFrame } from './ws-wire.js';

/** What a case runner needs from the run. */
export interface CaseContext {
  target: Target;
  limits: Limits;
  /** A token per fuzz user (from POST /token). */
  tokens: Map<string, string>;
  /** This worker's fuzz users (no other worker's case uses them): a case's `user` picks one. */
  users: readonly string[];
  ledger(userid: string): UserLedger;
  /** Unique per case in the run: the prefix of the case's ids. */
  caseTag: string;
  /** How long a socket may take to answer a frame (the sentinel) before it counts as dead. */
  answerTimeoutMs: number;
  /** How long an accepted message may take to get its final frame. */
  finalTimeoutMs: number;
}

/** What one case produced: outcome labels, broken rules, contained bugs, and a transcript. */
export interface CaseResult {
  outcomes: string[];
  violations: string[];
  contained: string[];
  transcript: string[];
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');

/** Lone surrogates as U+FFFD: what a client can put in a URL (encodeURIComponent throws on them). */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

const encode = (s: string) => encodeURIComponent(wellFormed(s));

function docContext(ctx: CaseContext, userid: string): DocContext {
  return { userid, idFor: (k) => `${ctx.caseTag}.${k}`, maxContentLength: ctx.limits.maxContentLength };
}

const sentinelFrame = (tag: string) =>
  encodeFrame({ opcode: OPCODES.text, payload: utf8(`{"type":"fz.sentinel.${tag}"}`) });

/** Opens a WebSocket the way a client does: raw TCP, then the HTTP upgrade. */
async function openSocket(
  ctx: CaseContext,
  query: string,
  headers: Array<[string, string]> = [],
  omit: string[] = [],
  timeoutMs = ctx.answerTimeoutMs,
): Promise<{ conn: RawConnection; status: number; body: string }> {
  const conn = await RawConnection.open(ctx.target.host, ctx.target.port);
  const reply = await conn.upgrade(`/ws?${query}`, {
    host: `${ctx.target.host}:${ctx.target.port}`,
    headers,
    omit,
    timeoutMs,
  });
  return { conn, status: reply?.status ?? 0, body: reply?.body.toString('utf8') ?? '' };
}

function connectQuery(ctx: CaseContext, userid: string, flags: { stream: boolean; ack: boolean }): string {
  const token = ctx.tokens.get(userid) ?? '';
  const q = new URLSearchParams({ token, userid });
  if (flags.stream) q.set('stream', '1');
  if (flags.ack) q.set('ack', '1');
  return q.toString();
}

/** The payload bytes of a data frame: its document, padded to a size, then changed at byte level. */
export function framePayload(frame: DataFrame, dc: DocContext, limits: Limits): Buffer {
  let text: string;
  if (frame.body.kind === 'bytes') {
    let bytes = Buffer.from(frame.body.bytes);
    if (frame.size)
      bytes = Buffer.concat([
        bytes,
        Buffer.alloc(Math.max(0, limits.maxPayloadBytes + frame.size.delta - bytes.length), 0x20),
      ]);
    return mutateBytes(bytes, frame);
  }
  text = serialize(frame.body.doc, dc);
  if (frame.size) {
    const want = Math.max(0, limits.maxPayloadBytes + frame.size.delta);
    const doc = frame.body.doc;
    const contentAt =
      doc.t === 'obj'
        ? doc.entries.findIndex(([k, v]) => k === 'content' && (v.t === 'str' || v.t === 'sized'))
        : -1;
    if (frame.size.how === 'content' && doc.t === 'obj' && contentAt >= 0) {
      const empty: JNode = {
        t: 'obj',
        entries: doc.entries.map(([k, v], i): [string, JNode] => [
          k,
          i === contentAt ? { t: 'str', s: '' } : v,
        ]),
      };
      const base = utf8(serialize(empty, dc)).length;
      const filled: JNode = {
        t: 'obj',
        entries: doc.entries.map(([k, v], i): [string, JNode] => [
          k,
          i === contentAt ? { t: 'str', s: 'a'.repeat(Math.max(0, want - base)) } : v,
        ]),
      };
      text = serialize(filled, dc);
    } else {
      const pad = ' '.repeat(Math.max(0, want - utf8(text).length));
      text = frame.size.how === 'leading-space' ? pad + text : text + pad;
    }
  }
  return mutateBytes(utf8(text), frame);
}

function mutateBytes(bytes: Buffer, frame: DataFrame): Buffer {
  const m = frame.bytesMutation;
  if (!m) return bytes;
  const at = Math.min(bytes.length, Math.floor(m.at * bytes.length));
  switch (m.b) {
    case 'truncate':
      return bytes.subarray(0, at);
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(m.bytes), bytes.subarray(at)]);
    case 'overwrite':
      return Buffer.concat([
        bytes.subarray(0, at),
        Buffer.from(m.bytes),
        bytes.subarray(Math.min(bytes.length, at + m.bytes.length)),
      ]);
  }
}

/** The WebSocket frames that carry one message, in `fragments` pieces. */
function encodeData(payload: Buffer, binary: boolean, fragments: number): Buffer {
  const opcode = binary ? OPCODES.binary : OPCODES.text;
  if (fragments <= 1) return encodeFrame({ opcode, payload });
  const size = Math.ceil(payload.length / fragments);
  const parts: Buffer[] = [];
  for (let i = 0; i < fragments; i++) {
    parts.push(
      encodeFrame({
        opcode: i === 0 ? opcode : OPCODES.continuation,
        fin: i === fragments - 1,
        payload: payload.subarray(i * size, (i + 1) * size),
      }),
    );
  }
  return Buffer.concat(parts);
}

async function send(conn: RawConnection, bytes: Buffer, cuts: number[]): Promise<void> {
  if (cuts.length === 0) return conn.writeInChunks(bytes, []);
  return conn.writeInChunks(
    bytes,
    cuts.map((c) => Math.floor(c * bytes.length)),
  );
}

function describeFrame(frame: DataFrame, payload: Buffer, dc: DocContext): string {
  const body =
    frame.body.kind === 'doc'
      ? describeDoc(frame.body.doc, dc)
      : `bytes ${Buffer.from(frame.body.bytes).toString('hex').slice(0, 80)}`;
  const extras = [
    frame.opcode === 'binary' ? 'binary' : '',
    frame.size
      ? `padded to MAX_PAYLOAD_BYTES${frame.size.delta >= 0 ? '+' : ''}${frame.size.delta} (${frame.size.how})`
      : '',
    frame.bytesMutation ? `bytes ${frame.bytesMutation.b} at ${frame.bytesMutation.at.toFixed(3)}` : '',
    frame.fragments > 1 ? `${frame.fragments} fragments` : '',
    frame.tcpCuts.length ? `${frame.tcpCuts.length + 1} TCP writes` : '',
  ].filter(Boolean);
  return `${body} [${payload.length} bytes${extras.length ? `, ${extras.join(', ')}` : ''}]`;
}

async function settle(
  oracle: SocketOracle,
  conn: RawConnection,
  done: () => boolean,
  timeoutMs: number,
): Promise<boolean> {
  const ok = await conn.waitFor(() => {
    oracle.pump();
    return done() || conn.ending ? true : undefined;
  }, timeoutMs);
  oracle.pump();
  return ok === true;
}

/** The end of every WebSocket case: answers for accepted messages, a last sentinel, a clean close. */
async function finishSocket(
  ctx: CaseContext,
  oracle: SocketOracle,
  conn: RawConnection,
  tag: string,
): Promise<void> {
  if (oracle.unknownFrom !== null) {
    // The model lost track (a length that lies): give the server a moment, then hang up.
    await settle(oracle, conn, () => false, 200);
  } else if (oracle.expectEnd?.lenientOk) {
    const ended = await settle(oracle, conn, () => false, 1500);
    if (!ended) {
      oracle.outcomes.push(`ws-layer:lenient:${oracle.expectEnd.why.replace(/^.*: /, '')}`);
      oracle.unknownFrom = oracle.expectEnd.why;
      oracle.expectEnd = null;
    }
  } else if (oracle.expectEnd) {
    const ended = await settle(oracle, conn, () => false, ctx.answerTimeoutMs);
    if (!ended)
      oracle.violations.push(
        `${oracle.expectEnd.why}: the connection was still open after ${ctx.answerTimeoutMs} ms`,
      );
  } else {
    await settle(oracle, conn, () => oracle.answersDone, ctx.finalTimeoutMs);
    if (!conn.ending) {
      oracle.expectSentinel(`${tag}.last`);
      conn.write(sentinelFrame(`${tag}.last`));
      await settle(oracle, conn, () => oracle.syncDone, ctx.answerTimeoutMs);
    }
  }
  oracle.finish();
  if (!conn.ending) {
    oracle.clientClosed = true;
    const closed = await conn.closeHandshake(1000, ctx.answerTimeoutMs);
    if (!closed && oracle.unknownFrom === null)
      oracle.violations.push('the server did not answer the client close frame');
  }
  conn.destroy();
}

function result(oracle: SocketOracle, extra: string[] = []): CaseResult {
  return {
    outcomes: [...extra, ...oracle.outcomes],
    violations: oracle.violations,
    contained: oracle.contained,
    transcript: oracle.transcript,
  };
}

/**
 * The socket of a frames or protocol case: its user's, upgraded with a valid token and the case's
 * flags, watched by an oracle; a refused upgrade is the case's result (a violation).
 */
async function openJudgedSocket(
  ctx: CaseContext,
  c: { user: number; connect: FramesCase['connect'] },
): Promise<
  | { refused: CaseResult }
  | {
      userid: string;
      dc: ReturnType<typeof docContext>;
      conn: Awaited<ReturnType<typeof openSocket>>['conn'];
      oracle: SocketOracle;
    }
> {
  const userid = ctx.users[c.user % ctx.users.length] ?? 'fz-a';
  const dc = docContext(ctx, userid);
  const { conn, status, body } = await openSocket(ctx, connectQuery(ctx, userid, c.connect));
  if (status !== 101) {
    conn.destroy();
    return {
      refused: {
        outcomes: [],
        violations: [`upgrade with a valid token refused: HTTP ${status} ${body.slice(0, 200)}`],
        contained: [],
        transcript: [],
      },
    };
  }
  const oracle = new SocketOracle(
    conn,
    userid,
    { stream: c.connect.stream, extensions: c.connect.stream || c.connect.ack },
    ctx.ledger(userid),
  );
  return { userid, dc, conn, oracle };
}

/** Frames on one socket: each judged by the oracle, sentinels marking when all were answered. */
export async function runFramesCase(ctx: CaseContext, c: FramesCase): Promise<CaseResult> {
  const opened = await openJudgedSocket(ctx, c);
  if ('refused' in opened) return opened.refused;
  const { userid, dc, conn, oracle } = opened;
  let n = 0;
  for (const frame of c.frames) {
    const payload = framePayload(frame, dc, ctx.limits);
    const label = `frame ${n + 1} ${describeFrame(frame, payload, dc)}`;
    oracle.sent(label);
    oracle.expect(judgeMessage(payload, frame.opcode === 'binary', userid, ctx.limits), label);
    await send(conn, encodeData(payload, frame.opcode === 'binary', frame.fragments), frame.tcpCuts);
    n++;
    if (oracle.expectEnd) break;
    if (c.mode === 'step') {
      const tag = `${ctx.caseTag}.${n}`;
      oracle.expectSentinel(tag);
      conn.write(sentinelFrame(tag));
      await settle(oracle, conn, () => oracle.syncDone, ctx.answerTimeoutMs);
      if (conn.ending) break;
    }
  }
  if (c.mode === 'burst' && !oracle.expectEnd && !conn.ending) {
    const tag = `${ctx.caseTag}.end`;
    oracle.expectSentinel(tag);
    conn.write(sentinelFrame(tag));
    await settle(oracle, conn, () => oracle.syncDone, ctx.answerTimeoutMs);
  }
  await finishSocket(ctx, oracle, conn, ctx.caseTag);
  return result(oracle, ['case:frames']);
}

function rawPayload(f: RawFrame, dc: DocContext): Buffer {
  const p = f.payload;
  switch (p.p) {
    case 'doc':
      return utf8(serialize(p.doc, dc));
    case 'bytes':
      return Buffer.from(p.bytes);
    case 'close':
      return closePayload(p.code, Uint8Array.from(p.reason));
    case 'fill':
      return Buffer.alloc(p.size, 0x61);
    case 'piece': {
      const all = utf8(serialize(p.doc, dc));
      const size = Math.ceil(all.length / p.of);
      return all.subarray(p.index * size, (p.index + 1) * size);
    }
  }
}

function describeRaw(f: RawFrame, payload: Buffer): string {
  if (f.opcode < 0) return `raw bytes ${payload.toString('hex').slice(0, 60)} (${payload.length})`;
  const bits = [
    `opcode ${f.opcode}`,
    f.fin ? 'FIN' : 'no FIN',
    f.rsv ? `RSV ${f.rsv}` : '',
    f.masked ? '' : 'UNMASKED',
    f.lengthForm !== 'min' ? `${f.lengthForm}-bit length` : '',
    f.lie ? `length lies (${f.lie})` : '',
  ].filter(Boolean);
  const shown = payload.length <= 60 ? JSON.stringify(payload.toString('latin1')) : `${payload.length} bytes`;
  return `[${bits.join(', ')}] ${shown}`;
}

/** Frames at the WebSocket level: reserved bits and opcodes, control frames, fragments, lying lengths. */
export async function runProtocolCase(ctx: CaseContext, c: ProtocolCase): Promise<CaseResult> {
  const opened = await openJudgedSocket(ctx, c);
  if ('refused' in opened) return opened.refused;
  const { userid, dc, conn, oracle } = opened;
  const cap = ctx.limits.maxPayloadBytes * 4;
  const wire: WireFrame[] = [];
  const chunks: Buffer[] = [];
  const labels: string[] = [];
  for (const f of c.frames) {
    const payload = rawPayload(f, dc);
    labels.push(describeRaw(f, payload));
    if (f.opcode < 0) {
      chunks.push(payload);
      wire.push({
        fin: true,
        rsv: 0,
        opcode: -1,
        masked: true,
        payload,
        lies: false,
        announcesOverCap: false,
        garbage: true,
      });
      continue;
    }
    const real = BigInt(payload.length);
    const declared =
      f.lie === 'more'
        ? real + 7n
        : f.lie === 'less' && real > 0n
          ? real - 1n
          : f.lie === 'huge'
            ? 2n ** 62n
            : f.lie === 'max64'
              ? 2n ** 64n - 1n
              : f.lie === 'over-limit'
                ? BigInt(cap + 1)
                : undefined;
    chunks.push(
      encodeFrame({
        fin: f.fin,
        rsv: f.rsv,
        opcode: f.opcode,
        masked: f.masked,
        payload,
        lengthForm: f.lengthForm,
        declaredLength: declared,
      }),
    );
    wire.push({
      fin: f.fin,
      rsv: f.rsv,
      opcode: f.opcode,
      masked: f.masked,
      payload,
      lies: declared !== undefined && declared !== real && declared <= BigInt(cap),
      announcesOverCap: (declared ?? real) > BigInt(cap),
      garbage: false,
    });
  }
  let model = modelWireFrames(wire, ctx.limits);
  if (model.openFragment) {
    // A message left open would make the sentinel a protocol error of ours: finish it (FIN, empty).
    const fin: WireFrame = {
      fin: true,
      rsv: 0,
      opcode: 0,
      masked: true,
      payload: new Uint8Array(),
      lies: false,
      announcesOverCap: false,
      garbage: false,
    };
    chunks.push(encodeFrame({ opcode: OPCODES.continuation, payload: new Uint8Array() }));
    wire.push(fin);
    labels.push('[opcode 0, FIN] "" (closes the open fragmented message)');
    model = modelWireFrames(wire, ctx.limits);
  }
  const steps = model.steps;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    const label = `raw frame ${i + 1} ${labels[i] ?? ''}`;
    oracle.sent(label);
    if (!step) continue;
    switch (step.w) {
      case 'message':
        oracle.expect(
          judgeMessage(step.payload, step.binary, userid, ctx.limits),
          `${label} → message ${JSON.stringify(Buffer.from(step.payload).toString('utf8').slice(0, 80))}`,
        );
        break;
      case 'pong':
        oracle.expectPong(step.payload, label);
        break;
      case 'nothing':
        oracle.expectSilence(label);
        break;
      case 'end':
        oracle.expectEnd = { tcpDropOk: true, why: `${label}: ${step.why}`, lenientOk: step.protocolError };
        break;
      case 'unknown':
        oracle.unknownFrom = `${label}: ${step.why}`;
        break;
    }
    if (oracle.expectEnd || oracle.unknownFrom !== null) break;
  }
  const bytes = Buffer.concat(chunks);
  if (c.tcp === 'bytewise') {
    const head = Math.min(bytes.length, 2000);
    await conn.writeInChunks(
      bytes,
      Array.from({ length: head }, (_, i) => i + 1),
    );
  } else if (c.tcp === 'whole') {
    await conn.writeInChunks(bytes, []);
  } else {
    await conn.writeInChunks(
      bytes,
      c.tcp.cuts.map((x) => Math.floor(x * bytes.length)),
    );
  }
  if (!oracle.expectEnd && oracle.unknownFrom === null) {
    const tag = `${ctx.caseTag}.p`;
    oracle.expectSentinel(tag);
    conn.write(sentinelFrame(tag));
    await settle(oracle, conn, () => oracle.syncDone, ctx.answerTimeoutMs);
  }
  await finishSocket(ctx, oracle, conn, ctx.caseTag);
  return result(oracle, ['case:protocol']);
}

// ---------------------------------------------------------------- upgrade requests

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** An HS256 token like the gateway's (issuer ai-relay, audience ai-relay-ws), with any claims. */
export function signToken(
  secret: string,
  claims: Record<string, unknown>,
  alg: 'HS256' | 'none' | 'HS512',
): string {
  const head = b64url(JSON.stringify({ alg }));
  const body = b64url(JSON.stringify(claims));
  if (alg === 'none') return `${head}.${body}.`;
  const mac = createHmac(alg === 'HS256' ? 'sha256' : 'sha512', secret)
    .update(`${head}.${body}`)
    .digest();
  return `${head}.${body}.${b64url(mac)}`;
}

function jsonValue(node: JNode, dc: DocContext): unknown {
  try {
    return JSON.parse(serialize(node, dc));
  } catch {
    return serialize(node, dc);
  }
}

/** An upgrade request with a fuzzed token, userid, resume point, flags and headers. */
export async function runUpgradeCase(ctx: CaseContext, c: UpgradeCase): Promise<CaseResult> {
  const userid = ctx.users[c.user % ctx.users.length] ?? 'fz-a';
  const other = ctx.users[(c.user + 1) % ctx.users.length] ?? 'fz-b';
  const dc = docContext(ctx, userid);
  const valid = ctx.tokens.get(userid) ?? '';
  let token: string | null;
  let tokenUser: string | null = null;
  let siteUncertain = false;
  const now = Math.floor(Date.now() / 1000);
  switch (c.token.k) {
    case 'valid':
      token = valid;
      tokenUser = userid;
      break;
    case 'other-user':
      token = ctx.tokens.get(other) ?? '';
      tokenUser = other;
      break;
    case 'missing':
      token = null;
      break;
    case 'empty':
      token = '';
      break;
    case 'garbage':
      token = c.token.text;
      break;
    case 'tampered':
      token = `${valid.slice(0, -3)}${valid.endsWith('AAA') ? 'BBB' : 'AAA'}`;
      break;
    case 'signed': {
      if (!ctx.target.jwtSecret) {
        token = valid;
        tokenUser = userid;
        break;
      }
      const claims: Record<string, unknown> = {
        iat: now,
        iss: c.token.iss === 'ok' ? 'ai-relay' : 'someone',
        aud: c.token.aud === 'ok' ? 'ai-relay-ws' : 'other',
      };
      if (c.token.exp === 'future') claims.exp = now + 600;
      if (c.token.exp === 'past') claims.exp = now - 600;
      const sub = c.token.sub === null ? undefined : jsonValue(c.token.sub, dc);
      if (sub !== undefined) claims.sub = sub;
      if (c.token.site !== 'missing') claims.site = c.token.site;
      if (c.token.mode !== 'missing') claims.mode = c.token.mode;
      token = signToken(ctx.target.jwtSecret, claims, c.token.alg);
      // A session token (docs/identity.md): HS256, issuer and audience, iat and exp, a site and a
      // mode, and a sub that is a valid userid.
      const ok =
        c.token.iss === 'ok' &&
        c.token.aud === 'ok' &&
        c.token.exp === 'future' &&
        c.token.alg === 'HS256' &&
        c.token.site !== 'missing' &&
        ['dev', 'anonymous', 'signed'].includes(c.token.mode);
      tokenUser = ok && typeof sub === 'string' && USERID_PATTERN.test(sub) ? sub : null;
      // Only the dev pseudo-site is sure to take any userid from any origin.
      siteUncertain = tokenUser !== null && (c.token.site !== 'dev' || c.token.mode !== 'dev');
      break;
    }
  }
  const parts: string[] = [];
  if (token !== null) parts.push(`token=${encode(token)}`);
  switch (c.userid.u) {
    case 'same':
      parts.push(`userid=${encode(tokenUser ?? userid)}`);
      break;
    case 'other':
      parts.push(`userid=${encode(other === tokenUser ? userid : other)}`);
      break;
    case 'empty':
      parts.push('userid=');
      break;
    case 'dup-same-first':
      parts.push(`userid=${encode(tokenUser ?? userid)}`, `userid=${encode(other)}`);
      break;
    case 'dup-other-first':
      parts.push(`userid=${encode(other)}`, `userid=${encode(tokenUser ?? userid)}`);
      break;
    case 'raw':
      parts.push(`userid=${c.userid.value}`);
      break;
    case 'missing':
      break;
  }
  let last = c.lastEventId;
  if (last === 'future') last = `${Date.now() + 86_400_000}-0`;
  if (last !== null) parts.push(`last_event_id=${encode(last)}`);
  parts.push(...c.flags, ...c.extra);
  // A request target has no spaces, CR, LF or non-ASCII: what a client library would escape.
  const query = parts
    .join('&')
    .replaceAll(/[^\x21-\x7e]/gu, (ch) => encode(ch))
    .replaceAll('#', '%23');
  const headerBytes = c.headers.reduce((n, [k, v]) => n + k.length + v.length, 0);
  const requestTooLarge = query.length + headerBytes > 4000;
  const omitted = new Set(c.omit.map((h) => h.toLowerCase()));
  // A repeated header: the WebSocket layer reads the first one.
  const overridden = new Map<string, string>();
  for (const [k, v] of c.headers) if (!overridden.has(k.toLowerCase())) overridden.set(k.toLowerCase(), v);
  const headerOk = (name: string, ok: (v: string) => boolean) =>
    !omitted.has(name) && (!overridden.has(name) || ok(overridden.get(name) ?? ''));
  const headersOk =
    headerOk(
      'sec-websocket-key',
      (v) => Buffer.from(v, 'base64').length === 16 && /^[A-Za-z0-9+/]{22}==$/.test(v),
    ) &&
    headerOk('sec-websocket-version', (v) => v === '13') &&
    headerOk('upgrade', (v) => v.toLowerCase() === 'websocket') &&
    headerOk('connection', (v) => /\bupgrade\b/i.test(v)) &&
    !omitted.has('host');
  const expected = expectedUpgrade({ headersOk, query, tokenUser, requestTooLarge });
  if (siteUncertain) expected.statuses.push(401, 403);
  const label = `upgrade /ws?${query.length > 300 ? `${query.slice(0, 300)}…(${query.length})` : query} headers ${JSON.stringify(c.headers).slice(0, 200)} omit ${JSON.stringify(c.omit)}`;
  let opened: Awaited<ReturnType<typeof openSocket>>;
  try {
    // A refusal comes at once; an upgrade the server does not answer at all is what is looked for.
    opened = await openSocket(ctx, query, c.headers, c.omit, 1500);
  } catch (err) {
    return {
      outcomes: [],
      violations: [`${label}: could not connect: ${(err as Error).message}`],
      contained: [],
      transcript: [],
    };
  }
  const { conn, status, body } = opened;
  const outcome = `upgrade:${status === 0 ? 'closed-without-reply' : status}`;
  const transcript = [`→ ${label}`, `← HTTP ${status} ${body.slice(0, 200)}`];
  if (!expected.statuses.includes(status)) {
    conn.destroy();
    const contained = status === 500 && /internal_error/.test(body);
    return {
      outcomes: [outcome],
      violations: contained
        ? []
        : [
            `${label}: expected HTTP ${expected.statuses.join('|')} (${expected.why}), got ${status} ${body.slice(0, 200)}`,
          ],
      contained: contained ? [`${label}: HTTP 500 internal_error`] : [],
      transcript,
    };
  }
  if (status !== 101) {
    conn.destroy();
    if (status >= 400 && status !== 0 && body) {
      try {
        const parsed = JSON.parse(body) as { error?: unknown };
        if (typeof parsed.error !== 'string')
          return {
            outcomes: [outcome],
            violations: [`${label}: HTTP ${status} body has no "error": ${body.slice(0, 200)}`],
            contained: [],
            transcript,
          };
      } catch {
        // uWS' own refusals (not the gateway's) are not JSON; only the gateway's are documented.
      }
    }
    return { outcomes: [outcome], violations: [], contained: [], transcript };
  }
  // Upgraded: the socket belongs to the token's user and must work like any other.
  const socketUser = tokenUser ?? userid;
  const q = new URLSearchParams(query);
  const flag = (n: string) => ['1', 'true'].includes(q.get(n) ?? '');
  const stream = flag('stream');
  const oracle = new SocketOracle(
    conn,
    socketUser,
    { stream, extensions: stream || flag('ack') },
    ctx.ledger(socketUser),
  );
  if (!headersOk) {
    // The WebSocket layer let a broken upgrade through (e.g. `Connection: close`, then it closes).
    oracle.unknownFrom = 'an upgrade with broken headers was let through';
    oracle.outcomes.push('upgrade:101-despite-broken-headers');
  }
  const resumeFrom = q.get('last_event_id') || null;
  if (resumeFrom !== null) oracle.replayAfter = resumeFrom;
  oracle.sent(label);
  if (c.message && resumeFrom === null && socketUser.length > 0) {
    const msg = utf8(
      JSON.stringify({ type: 'message', content: 'hello after a fuzzed upgrade', id: `${ctx.caseTag}.u` }),
    );
    oracle.sent('a valid message');
    oracle.expect(judgeMessage(msg, false, socketUser, ctx.limits), 'a valid message');
    conn.write(encodeFrame({ opcode: OPCODES.text, payload: msg }));
  }
  const tag = `${ctx.caseTag}.u`;
  oracle.expectSentinel(tag);
  conn.write(sentinelFrame(tag));
  await settle(oracle, conn, () => oracle.syncDone, ctx.answerTimeoutMs);
  await finishSocket(ctx, oracle, conn, ctx.caseTag);
  const r = result(oracle, ['case:upgrade', outcome]);
  r.transcript.unshift(...transcript);
  return r;
}
