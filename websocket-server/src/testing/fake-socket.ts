import type { OutboundSocket } from '../socket-delivery.js';
import { createOutbox } from '../socket-delivery.js';
import type { UserData } from '../user-data.js';

/** An OutboundSocket in memory: records what was sent, with a send buffer the test sets. */
export interface FakeSocket extends OutboundSocket {
  sent: string[];
  /** Parsed `sent`. */
  frames(): Array<Record<string, unknown>>;
  buffered: number;
  /** What `send` returns (uWS: 0 buffered, 1 written, 2 dropped). @default 1 */
  sendStatus: number;
  closedWith: { code: number | undefined; reason: string | undefined } | null;
}

export function fakeSocket(
  options: { userid?: string; stream?: boolean; resumeFrom?: string } = {},
): FakeSocket {
  const data: UserData = {
    userid: options.userid ?? 'alice',
    connectionId: 1,
    stream: options.stream ?? true,
    extensions: true,
    ip: '127.0.0.1',
    closed: false,
    queue: Promise.resolve(),
    resumeFrom: options.resumeFrom ?? null,
    resyncFrom: null,
    awaitingResync: false,
    outbox: createOutbox(options.resumeFrom ?? null),
  };
  const socket: FakeSocket = {
    sent: [],
    frames: () => socket.sent.map((s) => JSON.parse(s) as Record<string, unknown>),
    buffered: 0,
    sendStatus: 1,
    closedWith: null,
    getUserData: () => data,
    send(message) {
      if (data.closed) throw new Error('send on a closed socket');
      socket.sent.push(message);
      return socket.sendStatus;
    },
    getBufferedAmount: () => socket.buffered,
    end(code, reason) {
      if (data.closed) throw new Error('end on a closed socket');
      socket.closedWith = { code, reason };
      // uWS calls the close handler synchronously from end().
      data.closed = true;
    },
  };
  return socket;
}
