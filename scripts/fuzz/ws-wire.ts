import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/**
 * A WebSocket client written on a raw TCP socket, so the fuzz suite can send what no WebSocket
 * library would: invalid UTF-8 in text frames, reserved opcodes and bits, unmasked or oversized
 * control frames, broken fragmentation, lengths that lie, frames split over many TCP writes.
 * It reads the server's frames itself too, and says exactly how the connection ended (a close
 * frame with its code, or the TCP connection dropped without one).
 */

export const OPCODES = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

export interface FrameSpec {
  /** @default true */
  fin?: boolean;
  /** The three reserved bits, as a number 0-7. @default 0 */
  rsv?: number;
  opcode: number;
  payload: Uint8Array;
  /** Client frames must be masked (RFC 6455 §5.3); false sends the payload as is. @default true */
  masked?: boolean;
  /** Length field form: the shortest one, or a longer one than needed. @default 'min' */
  lengthForm?: 'min' | '16' | '64';
  /** Announce this length instead of the payload's (a frame that lies about its size). */
  declaredLength?: bigint;
}

export function encodeFrame(spec: FrameSpec): Buffer {
  const fin = spec.fin ?? true;
  const masked = spec.masked ?? true;
  const payload = Buffer.from(spec.payload);
  const length = spec.declaredLength ?? BigInt(payload.length);
  const form = spec.lengthForm ?? 'min';
  const first = (fin ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f);
  let header: Buffer;
  if (form === 'min' && length < 126n) {
    header = Buffer.from([first, (masked ? 0x80 : 0) | Number(length)]);
  } else if (form !== '64' && length < 65_536n) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(length & 0xffff_ffff_ffff_ffffn, 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([header, mask, body]);
}

export function closePayload(code: number | null, reason: Uint8Array = new Uint8Array()): Buffer {
  if (code === null) return Buffer.from(reason);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code & 0xffff, 0);
  return Buffer.concat([b, Buffer.from(reason)]);
}

/** What the server sent, in order. A text frame's payload is kept as bytes: its UTF-8 is checked too. */
export type ServerEvent =
  | { kind: 'text'; bytes: Buffer; at: number }
  | { kind: 'binary'; bytes: Buffer; at: number }
  | { kind: 'ping'; bytes: Buffer; at: number }
  | { kind: 'pong'; bytes: Buffer; at: number }
  | { kind: 'close'; code: number | null; reason: string; at: number }
  | { kind: 'bad-frame'; why: string; at: number };

/** How the connection ended, once it has. */
export interface Ending {
  /** The server's close frame, if one came before the TCP connection ended. */
  closeFrame: { code: number | null; reason: string } | null;
  /** 'end' = FIN, 'reset' = ECONNRESET or another socket error. */
  tcp: 'end' | 'reset';
  error?: string;
}

export interface HttpReply {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** One TCP connection speaking WebSocket (after `upgrade`) or plain HTTP (`rawHttp`). */
export class RawConnection {
  readonly events: ServerEvent[] = [];
  ending: Ending | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private mode: 'http' | 'ws' = 'http';
  private fragments: { opcode: number; parts: Buffer[] } | null = null;
  private listeners = new Set<() => void>();
  private sawCloseFrame: { code: number | null; reason: string } | null = null;
  /** Answer the server's pings, as a real client does. @default true */
  autoPong = true;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      if (this.mode === 'ws') this.parseFrames();
      this.notify();
    });
    socket.on('error', (err) => {
      if (!this.ending) this.ending = { closeFrame: this.sawCloseFrame, tcp: 'reset', error: err.message };
      this.notify();
    });
    socket.on('close', () => {
      if (!this.ending) this.ending = { closeFrame: this.sawCloseFrame, tcp: 'end' };
      this.notify();
    });
  }

  static open(host: string, port: number, timeoutMs = 5000): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawConnection(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Resolves with the predicate's value once it is defined, or with undefined after `timeoutMs`. */
  waitFor<T>(predicate: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    const now = predicate();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (v: T | undefined) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(v);
      };
      const check = () => {
        const v = predicate();
        if (v !== undefined) done(v);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.listeners.add(check);
    });
  }

  write(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Writes bytes in several TCP writes, each flushed before the next, to split frames mid-header. */
  async writeInChunks(bytes: Uint8Array, cuts: number[]): Promise<void> {
    const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(bytes.length, c))))].sort(
      (a, b) => a - b,
    );
    let from = 0;
    for (const to of [...points, bytes.length]) {
      if (to <= from) continue;
      if (this.socket.destroyed || !this.socket.writable) return;
      await new Promise<void>((resolve) => this.socket.write(bytes.subarray(from, to), () => resolve()));
      from = to;
    }
  }

  /** Sends an HTTP request as given (any bytes) and reads one response; undefined if none came. */
  async rawHttp(request: Uint8Array, timeoutMs: number): Promise<HttpReply | undefined> {
    this.write(request);
    return this.readHttpReply(timeoutMs);
  }

  private readHttpReply(timeoutMs: number): Promise<HttpReply | undefined> {
    return this.waitFor(() => {
      const head = this.buffer.indexOf('\r\n\r\n');
      if (head < 0) return undefined;
      const lines = this.buffer.subarray(0, head).toString('latin1').split('\r\n');
      const statusLine = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const status = statusLine ? Number(statusLine[1]) : 0;
      const rest = this.buffer.subarray(head + 4);
      if (status === 101) {
        this.buffer = rest;
        this.mode = 'ws';
        this.parseFrames();
        return { status, statusText: statusLine?.[2] ?? '', headers, body: Buffer.alloc(0) };
      }
      const length = headers['content-length'];
      let body: Buffer | undefined;
      if (length !== undefined) {
        if (rest.length < Number(length))
          return this.ending ? { status, statusText: '', headers, body: rest } : undefined;
        body = rest.subarray(0, Number(length));
      } else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
        body = dechunk(rest) ?? (this.ending ? rest : undefined);
        if (!body) return undefined;
      } else if (this.ending) {
        body = rest;
      } else if (status === 204 || status === 304) {
        body = Buffer.alloc(0);
      } else {
        return undefined;
      }
      return { status, statusText: statusLine?.[2] ?? '', headers, body };
    }, timeoutMs);
  }

  private parseFrames(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const first = b[0] as number;
      const second = b[1] as number;
      let offset = 2;
      let length = second & 0x7f;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > 64n * 1024n * 1024n) {
          this.events.push({ kind: 'bad-frame', why: `server frame of ${big} bytes`, at: Date.now() });
          this.buffer = Buffer.alloc(0);
          return;
        }
        length = Number(big);
        offset = 10;
      }
      const masked = (second & 0x80) !== 0;
      if (masked) offset += 4;
      if (b.length < offset + length) return;
      let payload = b.subarray(offset, offset + length);
      if (masked) {
        const mask = b.subarray(offset - 4, offset);
        payload = Buffer.from(payload.map((x, i) => x ^ (mask[i & 3] as number)));
        this.events.push({ kind: 'bad-frame', why: 'server frame is masked', at: Date.now() });
      }
      this.buffer = b.subarray(offset + length);
      const fin = (first & 0x80) !== 0;
      if ((first & 0x70) !== 0) {
        this.events.push({
          kind: 'bad-frame',
          why: `server frame has RSV bits ${(first >> 4) & 7}`,
          at: Date.now(),
        });
      }
      this.onFrame(fin, first & 0x0f, Buffer.from(payload));
    }
  }

  private onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    const at = Date.now();
    switch (opcode) {
      case OPCODES.text:
      case OPCODES.binary:
        if (this.fragments) {
          this.events.push({ kind: 'bad-frame', why: 'new data frame inside a fragmented one', at });
        }
        if (fin) this.events.push({ kind: opcode === OPCODES.text ? 'text' : 'binary', bytes: payload, at });
        else this.fragments = { opcode, parts: [payload] };
        return;
      case OPCODES.continuation:
        if (!this.fragments) {
          this.events.push({ kind: 'bad-frame', why: 'continuation without a first frame', at });
          return;
        }
        this.fragments.parts.push(payload);
        if (fin) {
          const bytes = Buffer.concat(this.fragments.parts);
          this.events.push({ kind: this.fragments.opcode === OPCODES.text ? 'text' : 'binary', bytes, at });
          this.fragments = null;
        }
        return;
      case OPCODES.close: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
        const reason = payload.subarray(2).toString('utf8');
        this.sawCloseFrame = { code, reason };
        this.events.push({ kind: 'close', code, reason, at });
        return;
      }
      case OPCODES.ping:
        this.events.push({ kind: 'ping', bytes: payload, at });
        if (this.autoPong && !this.sawCloseFrame) {
          this.write(encodeFrame({ opcode: OPCODES.pong, payload }));
        }
        return;
      case OPCODES.pong:
        this.events.push({ kind: 'pong', bytes: payload, at });
        return;
      default:
        this.events.push({ kind: 'bad-frame', why: `server used opcode ${opcode}`, at });
    }
  }

  /** Upgrades this connection: sends the request line and headers given, reads the response. */
  async upgrade(
    target: string,
    options: { host: string; headers?: Array<[string, string]>; omit?: string[]; timeoutMs: number },
  ): Promise<HttpReply | undefined> {
    const standard: Array<[string, string]> = [
      ['Host', options.host],
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Key', randomBytes(16).toString('base64')],
      ['Sec-WebSocket-Version', '13'],
    ];
    const omit = new Set((options.omit ?? []).map((h) => h.toLowerCase()));
    const given = options.headers ?? [];
    const overridden = new Set(given.map(([k]) => k.toLowerCase()));
    const headers = [
      ...standard.filter(([k]) => !omit.has(k.toLowerCase()) && !overridden.has(k.toLowerCase())),
      ...given,
    ];
    const head = `GET ${target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    return this.rawHttp(Buffer.from(head, 'latin1'), options.timeoutMs);
  }

  get isUpgraded(): boolean {
    return this.mode === 'ws';
  }

  /** Starts the closing handshake; resolves true once the connection ended, false on timeout. */
  async closeHandshake(code: number, timeoutMs: number): Promise<boolean> {
    if (!this.ending && !this.sawCloseFrame)
      this.write(encodeFrame({ opcode: OPCODES.close, payload: closePayload(code) }));
    const ended = await this.waitFor(() => (this.ending || this.sawCloseFrame ? true : undefined), timeoutMs);
    return ended === true;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(data.subarray(at, eol).toString('latin1'), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    if (data.length < eol + 2 + size + 2) return undefined;
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}
