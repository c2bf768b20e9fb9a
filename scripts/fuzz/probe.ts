import WebSocket from 'ws';
import { parseServerFrame } from './oracle.js';
import type { Target } from './target.js';

export const PROBE_USER = 'fz-normal';

/**
 * A normal user beside the fuzzing, on a real WebSocket library (`ws`): one socket kept open for
 * the whole run, which must never be closed, never get another user's frame, and answer every
 * message in full. "Everyone else keeps being served" (SPEC §2, Hostile input).
 */
export class NormalUser {
  private socket: WebSocket | undefined;
  private frames: Array<Record<string, unknown>> = [];
  private closed: { code: number; reason: string } | null = null;
  readonly problems: string[] = [];
  private n = 0;
  readonly latenciesMs: number[] = [];

  constructor(
    private readonly target: Target,
    private readonly runTag: string,
  ) {}

  async connect(): Promise<void> {
    const res = await fetch(`${this.target.url}/token?userid=${PROBE_USER}`, {
      method: 'POST',
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status !== 200) throw new Error(`normal user: POST /token answered ${res.status}`);
    const { token } = (await res.json()) as { token: string };
    const socket = new WebSocket(
      `${this.target.url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(token)}&userid=${PROBE_USER}&stream=1`,
    );
    this.frames = [];
    this.closed = null;
    socket.on('message', (data, isBinary) => {
      const parsed = parseServerFrame(isBinary ? new Uint8Array() : Buffer.from(data as Buffer));
      if (!parsed.ok) {
        this.problems.push(`normal user got a malformed frame: ${parsed.why}: ${parsed.text.slice(0, 200)}`);
        return;
      }
      const f = parsed.frame as Record<string, unknown>;
      if (f.userid !== undefined && f.userid !== PROBE_USER)
        this.problems.push(
          `normal user got a frame for ${JSON.stringify(f.userid)}: ${parsed.text.slice(0, 200)}`,
        );
      this.frames.push(f);
    });
    socket.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error('normal user: the upgrade got no answer within 10 s'));
      }, 10_000);
      socket.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, r) =>
        reject(new Error(`normal user: upgrade answered HTTP ${r.statusCode}`)),
      );
    });
    this.socket = socket;
  }

  /** Sends one message and waits for its ack, deltas and final `response`; a problem string if not. */
  async check(timeoutMs: number): Promise<string | undefined> {
    const socket = this.socket;
    if (!socket || this.closed || socket.readyState !== WebSocket.OPEN) {
      return `the normal user's socket was closed by the server (${JSON.stringify(this.closed)})`;
    }
    const id = `${this.runTag}.probe.${++this.n}`;
    const started = performance.now();
    socket.send(JSON.stringify({ type: 'message', content: `probe ${this.n}: are you still there?`, id }));
    const final = await new Promise<Record<string, unknown> | undefined>((resolve) => {
      const timer = setTimeout(() => {
        clearInterval(poll);
        resolve(undefined);
      }, timeoutMs);
      const poll = setInterval(() => {
        const f = this.frames.find(
          (x) => x.request_id === id && (x.type === 'response' || x.type === 'error'),
        );
        if (f || this.closed) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve(f);
        }
      }, 1);
    });
    this.latenciesMs.push(performance.now() - started);
    const mine = this.frames.filter((x) => x.request_id === id);
    const others = this.frames.filter((x) => x.request_id !== id);
    this.frames = [];
    if (others.length > 0)
      this.problems.push(
        `normal user got frames about requests it never sent: ${JSON.stringify(others.slice(0, 2))}`,
      );
    if (!final)
      return this.closed
        ? `the normal user's socket was closed (${JSON.stringify(this.closed)})`
        : `the normal user got no answer within ${timeoutMs} ms`;
    if (final.type !== 'response')
      return `the normal user got ${JSON.stringify(final)} instead of a response`;
    if (!mine.some((x) => x.type === 'ack')) return 'the normal user got no ack';
    const deltas = mine.filter((x) => x.type === 'response.delta').map((x) => String(x.delta));
    if (deltas.join('') !== final.content) return `the normal user's deltas do not add up to the response`;
    return undefined;
  }

  close(): void {
    this.socket?.terminate();
    this.socket = undefined;
  }
}
