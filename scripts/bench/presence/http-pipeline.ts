import { connect, type Socket } from 'node:net';

/** One answer: its status and the time from the request's send to the end of its body. */
export type OnAnswer = (status: number, body: Buffer, sentAt: number) => void;

/**
 * A keep-alive HTTP/1.1 connection that parses answers by Content-Length (uWS always sends it).
 * Far cheaper per request than node:http, so a load generator on the same small machine as the
 * gateway spends its CPU on sending, not on its own client. It can pipeline; the benchmark keeps
 * one request in flight per connection.
 */
export class PipelinedConnection {
  private readonly socket: Socket;
  private readonly sent: number[] = [];
  private head = 0;
  private buffer: Buffer = Buffer.alloc(0);
  private readyFlag = false;
  readonly ready: Promise<void>;

  constructor(
    port: number,
    private readonly onAnswer: OnAnswer,
    private readonly onError: (err: Error) => void,
  ) {
    this.socket = connect({ host: '127.0.0.1', port, noDelay: true });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => {
        this.readyFlag = true;
        resolve();
      });
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('error', (err) => this.onError(err));
  }

  get inFlight(): number {
    return this.sent.length - this.head;
  }

  get open(): boolean {
    return this.readyFlag && !this.socket.destroyed;
  }

  send(request: string, now: number): void {
    this.sent.push(now);
    this.socket.write(request);
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const header = this.buffer.toString('latin1', 0, end);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(header)?.[1] ?? 0);
      if (this.buffer.length < end + 4 + length) return;
      const body = this.buffer.subarray(end + 4, end + 4 + length);
      this.buffer = this.buffer.subarray(end + 4 + length);
      const sentAt = this.sent[this.head++] ?? 0;
      if (this.head > 4096) {
        this.sent.splice(0, this.head);
        this.head = 0;
      }
      this.onAnswer(Number(header.slice(9, 12)), body, sentAt);
    }
  }
}
