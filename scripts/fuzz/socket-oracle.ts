import type { ErrorCode, ServerFrame } from '@relay/common';
import { compareStreamIds, parseServerFrame, type Verdict } from './oracle.js';
import type { RawConnection } from './ws-wire.js';

/**
 * Follows one fuzzed socket: what each frame sent must produce (from the oracle's verdicts), what
 * came back, and whether the two agree. Synchronous answers (errors about a frame, pongs, the
 * sentinel's `unknown_type`) come in the order the frames went out; the answers to accepted
 * messages (ack, deltas, the final frame) come later and are tied to their message by request_id.
 */

/** What the run remembers about a fuzz user between cases: requests whose answer never came. */
export interface UserLedger {
  /** Client ids accepted for this user (a resend is a duplicate: acked, never answered twice). */
  acceptedIds: Set<string>;
  /** Requests accepted on a socket that closed before their final frame: late frames are theirs. */
  orphanIds: Set<string>;
  anonymousOrphans: number;
  /** Server request ids of anonymous orphans already seen in a later socket. */
  orphanRequestIds: Set<string>;
}

export function newLedger(): UserLedger {
  return { acceptedIds: new Set(), orphanIds: new Set(), anonymousOrphans: 0, orphanRequestIds: new Set() };
}

type SyncExpectation =
  | { s: 'reject'; codes: ErrorCode[]; id?: string; label: string }
  | { s: 'pong'; payload: Buffer; label: string }
  | { s: 'sentinel'; tag: string; label: string }
  | { s: 'silent'; label: string };

interface AcceptedMessage {
  label: string;
  /** The client `id`, when the message had one. */
  id?: string;
  /** The request id the server uses (the client id, or the one the server made and sent back). */
  requestId?: string;
  /** An id this user already had accepted: one ack, no second answer. */
  duplicate: boolean;
  ackRequired: boolean;
  acks: number;
  finals: number;
  finalFrame?: ServerFrame;
  deltas: string[];
  lastSeq: number;
  /** Streaming stayed on from send to final (deltas must add up to the content then). */
  streamedThroughout: boolean;
  reset: boolean;
}

export interface EndExpectation {
  /** Close codes accepted; undefined = any close frame. */
  codes?: number[];
  tcpDropOk: boolean;
  why: string;
  /**
   * A WebSocket protocol error the layer may also let pass (uWS is lenient on some): then the
   * socket may stay open and what it makes of the rest is not modelled.
   */
  lenientOk?: boolean;
}

export class SocketOracle {
  readonly violations: string[] = [];
  readonly contained: string[] = [];
  readonly outcomes: string[] = [];
  readonly transcript: string[] = [];
  private sync: SyncExpectation[] = [];
  private accepted: AcceptedMessage[] = [];
  private byRequestId = new Map<string, AcceptedMessage>();
  private unbound: AcceptedMessage[] = [];
  private cancels = new Set<string>();
  private seen = 0;
  private lastEventId: string | null = null;
  private stream: boolean;
  private extensions: boolean;
  private streamEver: boolean;
  private extensionsEver: boolean;
  expectEnd: EndExpectation | null = null;
  /** After this the model says nothing: anything but a malformed frame or a crash is fine. */
  unknownFrom: string | null = null;
  /** Resume: replayed frames must come after this id. */
  replayAfter: string | null = null;
  endJudged = false;
  private lastSent = '(nothing yet)';

  constructor(
    private readonly conn: RawConnection,
    private readonly userid: string,
    flags: { stream: boolean; extensions: boolean },
    private readonly ledger: UserLedger,
  ) {
    this.stream = flags.stream;
    this.extensions = flags.extensions;
    this.streamEver = flags.stream;
    this.extensionsEver = flags.extensions;
  }

  private violation(text: string): void {
    this.violations.push(`${text} [after ${this.lastSent}]`);
  }

  private note(line: string): void {
    this.transcript.push(line);
    if (this.transcript.length > 40) this.transcript.splice(0, this.transcript.length - 40);
  }

  sent(label: string): void {
    this.lastSent = label;
    this.note(`→ ${label}`);
  }

  /** Registers what a complete client message must produce. */
  expect(verdict: Verdict, label: string): void {
    switch (verdict.v) {
      case 'reject':
        this.sync.push({
          s: 'reject',
          codes: verdict.codes,
          id: verdict.id,
          label: `${label} (${verdict.why})`,
        });
        return;
      case 'hello':
        this.sync.push({ s: 'silent', label });
        this.stream = verdict.stream;
        this.extensions = true;
        this.extensionsEver = true;
        if (verdict.stream) this.streamEver = true;
        for (const m of this.accepted) if (m.finals === 0 && !verdict.stream) m.streamedThroughout = false;
        this.outcomes.push('hello');
        return;
      case 'cancel':
        this.sync.push({ s: 'silent', label });
        this.cancels.add(verdict.requestId);
        this.outcomes.push('cancel');
        return;
      case 'close':
        this.expectEnd = {
          codes: verdict.codes,
          tcpDropOk: verdict.tcpDropOk,
          why: `${label}: ${verdict.why}`,
        };
        return;
      case 'accept': {
        const duplicate = verdict.id !== undefined && this.ledger.acceptedIds.has(verdict.id);
        const m: AcceptedMessage = {
          label,
          id: verdict.id,
          requestId: verdict.id,
          duplicate,
          ackRequired: verdict.id !== undefined || this.extensions,
          acks: 0,
          finals: 0,
          deltas: [],
          lastSeq: -1,
          streamedThroughout: this.stream,
          reset: false,
        };
        this.sync.push({ s: 'silent', label });
        this.accepted.push(m);
        if (verdict.id !== undefined) {
          this.ledger.acceptedIds.add(verdict.id);
          if (!duplicate && !this.byRequestId.has(verdict.id)) this.byRequestId.set(verdict.id, m);
        } else {
          this.unbound.push(m);
        }
        this.outcomes.push(duplicate ? 'accepted:duplicate-id' : 'accepted');
        return;
      }
    }
  }

  expectPong(payload: Uint8Array, label: string): void {
    this.sync.push({ s: 'pong', payload: Buffer.from(payload), label });
  }

  expectSilence(label: string): void {
    this.sync.push({ s: 'silent', label });
  }

  expectSentinel(tag: string): void {
    this.sync.push({ s: 'sentinel', tag, label: `sentinel ${tag}` });
  }

  /** Nothing synchronous is outstanding (every frame sent so far was answered or needs no answer). */
  get syncDone(): boolean {
    return this.sync.every((e) => e.s === 'silent');
  }

  /** Every accepted message has what it must get (ack where required, one final unless duplicate). */
  get answersDone(): boolean {
    return this.accepted.every((m) =>
      m.duplicate
        ? m.acks >= 1 || m.finals >= 1
        : m.finals >= 1 && (!m.ackRequired || m.acks >= 1 || m.finalFrame?.type === 'error'),
    );
  }

  get ended(): boolean {
    return this.conn.ending !== null;
  }

  /** Reads the events that came in since the last call. */
  pump(): void {
    while (this.seen < this.conn.events.length) {
      const ev = this.conn.events[this.seen++];
      if (!ev) continue;
      switch (ev.kind) {
        case 'text':
          this.onText(ev.bytes);
          break;
        case 'binary':
          this.violation(`server sent a binary frame (${ev.bytes.length} bytes)`);
          break;
        case 'pong':
          this.onPong(ev.bytes);
          break;
        case 'ping':
          break;
        case 'close':
          this.note(`← close ${ev.code} ${JSON.stringify(ev.reason)}`);
          break;
        case 'bad-frame':
          this.violation(`malformed frame from the server: ${ev.why}`);
          break;
      }
    }
    if (this.conn.ending && !this.endJudged) this.judgeEnd();
  }

  private headAfterSilence(): SyncExpectation | undefined {
    return this.sync.find((e) => e.s !== 'silent');
  }

  /** Consumes the first non-silent expectation and the silent ones before it. */
  private consumeHead(): void {
    const i = this.sync.findIndex((e) => e.s !== 'silent');
    this.sync.splice(0, i + 1);
  }

  private onPong(bytes: Buffer): void {
    const head = this.headAfterSilence();
    if (head?.s === 'pong') {
      if (!head.payload.equals(bytes))
        this.violation(
          `pong payload ${bytes.toString('hex')} is not the ping's ${head.payload.toString('hex')}`,
        );
      this.consumeHead();
      this.outcomes.push('pong');
      return;
    }
    if (this.unknownFrom === null) this.outcomes.push('unsolicited-pong');
  }

  private onText(bytes: Buffer): void {
    const parsed = parseServerFrame(bytes);
    this.note(`← ${parsed.text.slice(0, 200)}`);
    if (!parsed.ok) {
      this.violation(`${parsed.why}: ${parsed.text.slice(0, 300)}`);
      return;
    }
    const f = parsed.frame;
    if ('userid' in f && f.userid !== undefined && f.userid !== this.userid) {
      this.violation(
        `frame for user ${JSON.stringify(f.userid)} on a socket of ${JSON.stringify(this.userid)}: ${parsed.text.slice(0, 200)}`,
      );
      return;
    }
    const eventId = 'event_id' in f ? f.event_id : undefined;
    if (eventId !== undefined) {
      if (this.lastEventId !== null && compareStreamIds(eventId, this.lastEventId) <= 0) {
        this.violation(`event_id ${eventId} after ${this.lastEventId}: not increasing`);
      }
      if (this.replayAfter !== null && compareStreamIds(eventId, this.replayAfter) <= 0) {
        this.violation(`frame with event_id ${eventId} at or before last_event_id ${this.replayAfter}`);
      }
      this.lastEventId = eventId;
    }
    if (f.type === 'error' && this.onSyncError(f)) return;
    if (f.type === 'resume.gap') {
      if (this.replayAfter === null) this.violation(`resume.gap without a resume: ${parsed.text}`);
      else this.outcomes.push('resume.gap');
      return;
    }
    this.onRequestFrame(f, parsed.text);
  }

  /** An error frame that answers the next frame in order, or the sentinel. True when it did. */
  private onSyncError(f: Extract<ServerFrame, { type: 'error' }>): boolean {
    const head = this.headAfterSilence();
    if (!head) return false;
    if (head.s === 'sentinel') {
      if (f.code === 'unknown_type' && f.request_id === undefined) {
        this.consumeHead();
        return true;
      }
      return false;
    }
    if (head.s !== 'reject') return false;
    const sameId = f.request_id === undefined || f.request_id === head.id;
    if (!sameId) return false;
    // The same id may also name a cancel or an accepted message whose answer comes later.
    const laterAnswer =
      f.request_id !== undefined && (this.cancels.has(f.request_id) || this.byRequestId.has(f.request_id));
    if (laterAnswer && !head.codes.includes(f.code)) return false;
    // The sentinel's answer in place of this frame's: this frame got none (or the wrong one).
    if (
      f.code === 'unknown_type' &&
      f.message.includes('fz.sentinel.') &&
      !head.codes.includes('unknown_type')
    ) {
      this.violation(
        `no error frame for ${head.label}: expected ${head.codes.join('|')}, the next sentinel was answered first`,
      );
      this.consumeHead();
      this.consumeHead();
      return true;
    }
    if (head.codes.includes(f.code)) {
      this.outcomes.push(`error:${f.code}`);
    } else if (f.code === 'internal_error') {
      this.contained.push(`internal_error for ${head.label}`);
      this.outcomes.push('contained:internal_error');
    } else if (f.request_id !== undefined && this.byRequestId.has(f.request_id)) {
      return false;
    } else {
      this.violation(
        `${head.label}: expected error ${head.codes.join('|')}, got ${f.code} (${JSON.stringify(f.message)})`,
      );
    }
    this.consumeHead();
    return true;
  }

  /**
   * Whose frame this is. A request id not seen yet names the next message sent without an `id`:
   * an `ack` the next one that asked for acks (the others never get one, and a later message's
   * ack may come before an earlier one's answer), any other frame the next one that did not (one
   * that did has had its ack by then); the other kind when none of that kind is waiting.
   */
  private ownerOf(
    requestId: string | undefined,
    isAck: boolean,
  ): AcceptedMessage | 'ledger' | 'cancel' | undefined {
    if (requestId === undefined) return undefined;
    const known = this.byRequestId.get(requestId);
    if (known) return known;
    if (this.cancels.has(requestId)) return 'cancel';
    if (this.ledger.orphanIds.has(requestId) || this.ledger.orphanRequestIds.has(requestId)) return 'ledger';
    const preferred = this.unbound.findIndex((m) => m.ackRequired === isAck);
    const next = this.unbound.splice(preferred >= 0 ? preferred : 0, 1)[0];
    if (next) {
      next.requestId = requestId;
      this.byRequestId.set(requestId, next);
      return next;
    }
    if (this.ledger.anonymousOrphans > 0) {
      this.ledger.anonymousOrphans--;
      this.ledger.orphanRequestIds.add(requestId);
      return 'ledger';
    }
    return undefined;
  }

  private onRequestFrame(f: ServerFrame, text: string): void {
    const rid = 'request_id' in f ? f.request_id : undefined;
    // A cancel refused (nothing of that id pending any more): about the cancel, not a message's final.
    if (f.type === 'error' && f.code === 'unknown_request' && rid !== undefined && this.cancels.has(rid)) {
      this.outcomes.push('cancel:error:unknown_request');
      return;
    }
    // A duplicate's ack: same request id as the first copy. Acks come in the order the messages
    // were sent, so the first copy (on this socket and not acked yet) takes the first one.
    const first = rid !== undefined ? this.byRequestId.get(rid) : undefined;
    const firstWaits = first !== undefined && f.type === 'ack' && first.acks === 0 && first.finals === 0;
    const dup =
      rid !== undefined && !firstWaits
        ? this.accepted.find((m) => m.duplicate && m.id === rid && m.acks === 0 && m.finals === 0)
        : undefined;
    if (dup && (f.type === 'ack' || f.type === 'error')) {
      if (f.type === 'ack') dup.acks++;
      else dup.finals++;
      this.outcomes.push(f.type === 'ack' ? 'ack:duplicate' : `final:error:${f.code}`);
      return;
    }
    const owner = this.ownerOf(rid, f.type === 'ack');
    if (owner === 'ledger') {
      this.outcomes.push('late-frame-of-an-earlier-socket');
      if (f.type === 'response' || f.type === 'error') {
        if (rid !== undefined) this.ledger.orphanIds.delete(rid);
      }
      return;
    }
    if (owner === 'cancel') {
      if (f.type === 'error') this.outcomes.push(`cancel:error:${f.code}`);
      else this.violation(`${f.type} frame for a cancel's request id: ${text.slice(0, 200)}`);
      return;
    }
    if (!owner) {
      if (this.expectEnd?.lenientOk) {
        this.outcomes.push('frame-after-a-tolerated-protocol-error');
        return;
      }
      if (this.unknownFrom !== null || this.replayAfter !== null) {
        this.outcomes.push(this.replayAfter !== null ? 'replayed-frame' : 'frame-after-unknown');
        return;
      }
      this.violation(`frame about a request this socket did not send: ${text.slice(0, 200)}`);
      return;
    }
    switch (f.type) {
      case 'ack':
        if (!owner.ackRequired && !this.extensionsEver)
          this.violation(`ack for ${owner.label}: the client did not ask for acks`);
        owner.acks++;
        if (owner.acks > 1) this.violation(`second ack for ${owner.label}`);
        if (owner.finals > 0) this.violation(`ack after the final frame for ${owner.label}`);
        return;
      case 'response.delta':
        if (!this.streamEver)
          this.violation(`response.delta for ${owner.label} on a socket that did not opt in to streaming`);
        if (f.seq <= owner.lastSeq)
          this.violation(`delta seq ${f.seq} after ${owner.lastSeq} for ${owner.label}`);
        owner.lastSeq = f.seq;
        owner.deltas.push(f.delta);
        if (owner.finals > 0) this.violation(`delta after the final frame for ${owner.label}`);
        return;
      case 'queued':
        // A position is told only while the prompt waits for a worker, i.e. before its call starts;
        // its later events come after it on the same partition, from the same producer.
        if (!this.streamEver)
          this.violation(`queued for ${owner.label} on a socket that did not opt in to streaming`);
        if (owner.finals > 0) this.violation(`queued after the final frame for ${owner.label}`);
        else if (owner.deltas.length > 0) this.violation(`queued after a delta for ${owner.label}`);
        if ('event_id' in f && f.event_id !== undefined)
          this.violation(
            `queued frame with an event_id (it is not in the replay log): ${text.slice(0, 200)}`,
          );
        this.outcomes.push('queued');
        return;
      case 'response.reset':
        if (!this.streamEver) this.violation(`response.reset on a socket that did not opt in to streaming`);
        owner.deltas = [];
        owner.lastSeq = -1;
        owner.reset = true;
        return;
      case 'response':
      case 'error':
        owner.finals++;
        owner.finalFrame = f;
        if (owner.finals > 1) this.violation(`second final frame for ${owner.label}: ${text.slice(0, 200)}`);
        if (f.type === 'response') {
          this.outcomes.push(f.finish_reason === 'cancelled' ? 'final:response:cancelled' : 'final:response');
          const joined = owner.deltas.join('');
          if (owner.streamedThroughout && !owner.reset && owner.deltas.length > 0 && joined !== f.content) {
            this.violation(
              `deltas of ${owner.label} add up to ${JSON.stringify(joined.slice(0, 80))}, not the final content ${JSON.stringify(f.content.slice(0, 80))}`,
            );
          }
        } else {
          this.outcomes.push(
            f.code === 'internal_error' ? 'contained:internal_error' : `final:error:${f.code}`,
          );
          if (f.code === 'internal_error') this.contained.push(`internal_error for ${owner.label}`);
        }
        return;
      default:
        this.violation(`unexpected ${f.type} frame: ${text.slice(0, 200)}`);
    }
  }

  private judgeEnd(): void {
    this.endJudged = true;
    const ending = this.conn.ending;
    if (!ending) return;
    const close = ending.closeFrame;
    const how = close
      ? `close ${close.code}${close.reason ? ` ${close.reason}` : ''}`
      : `TCP ${ending.tcp} without a close frame`;
    this.note(`ended: ${how}`);
    if (this.clientClosed) {
      this.outcomes.push('closed-by-client');
      return;
    }
    const exp = this.expectEnd;
    if (exp) {
      if (close && (exp.codes === undefined || (close.code !== null && exp.codes.includes(close.code)))) {
        this.outcomes.push(`close:${close.code}`);
      } else if (!close && exp.tcpDropOk) {
        this.outcomes.push('ws-layer:tcp-drop');
      } else if (close?.code === 1011) {
        this.contained.push(`close 1011 (${close.reason}) where ${exp.why}`);
        this.outcomes.push('contained:close-1011');
      } else {
        this.violation(
          `${exp.why}: expected ${exp.codes ? `close ${exp.codes.join('|')}` : 'a close'}${exp.tcpDropOk ? ' or a TCP drop' : ''}, got ${how}`,
        );
      }
      return;
    }
    if (this.unknownFrom !== null) {
      this.outcomes.push(`after-unknown:${close ? `close:${close.code}` : 'tcp-drop'}`);
      return;
    }
    if (close?.code === 1011) {
      this.contained.push(`close 1011 (${close.reason})`);
      this.outcomes.push('contained:close-1011');
      return;
    }
    this.violation(`the server closed the socket (${how}) though nothing sent asks for it`);
  }

  clientClosed = false;

  /** What was still missing when the case ended; the socket closed or the waits ran out. */
  finish(): void {
    this.pump();
    if (!this.ended && this.unknownFrom === null) {
      const missing = this.sync.filter((e) => e.s !== 'silent');
      for (const e of missing) {
        this.violation(
          e.s === 'sentinel'
            ? `the socket stopped answering: no unknown_type for ${e.label} (silently dead socket)`
            : `no answer to ${e.label}`,
        );
      }
    }
    for (const m of this.accepted) {
      const done = m.duplicate ? m.acks + m.finals >= 1 : m.finals >= 1;
      if (done && (!m.ackRequired || m.acks > 0 || m.finalFrame?.type === 'error' || m.duplicate)) continue;
      if (this.ended || this.unknownFrom !== null) {
        // The socket went away first: its answer may still come, to another socket of this user.
        if (!m.duplicate && m.finals === 0) {
          if (m.requestId !== undefined && m.id === undefined) this.ledger.orphanRequestIds.add(m.requestId);
          else if (m.id !== undefined) this.ledger.orphanIds.add(m.id);
          else this.ledger.anonymousOrphans++;
        }
        continue;
      }
      if (m.finals === 0 && !m.duplicate)
        this.violation(`accepted ${m.label} got no final frame (response or error)`);
      else if (m.ackRequired && m.acks === 0) this.violation(`accepted ${m.label} got no ack`);
    }
  }
}
