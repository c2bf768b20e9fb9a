import { silentLogger } from '@relay/common/testing';
import { Connection, type DeliveryPolicy } from '../connection/connection.js';
import type { GatewaySocket } from '../socket-sessions.js';
import { FrameRate, IntakeQueue } from '../socket-intake.js';
import type { UserData } from '../user-data.js';

/** A socket in memory: records what was sent, with a send buffer the test sets. */
export interface FakeSocket extends GatewaySocket {
  sent: string[];
  /** Parsed `sent`. */
  frames(): Array<Record<string, unknown>>;
  buffered: number;
  /** What `send` returns (uWS: 0 buffered, 1 written, 2 dropped). @default 1 */
  sendStatus: number;
  closedWith: { code: number | undefined; reason: string | undefined } | null;
  /** The socket's connection (`getUserData().connection`). */
  connection: Connection;
}

export const TEST_POLICY: DeliveryPolicy = { softBytes: 1 << 20, hardBytes: 1 << 22, logger: silentLogger };

/**
 * A fake socket with its own connection, already opened (`live`, or `resuming` with `resumeFrom`)
 * unless `open: false`. `end` runs the connection's `closed()` at once, as uWS runs its close
 * handler from inside `end()`.
 */
export function fakeSocket(
  options: {
    userid?: string;
    stream?: boolean;
    resumeFrom?: string;
    policy?: DeliveryPolicy;
    open?: boolean;
    nowMs?: number;
  } = {},
): FakeSocket {
  const connection = new Connection(
    {
      id: 1,
      userid: options.userid ?? 'alice',
      site: 'dev',
      ip: '127.0.0.1',
      stream: options.stream ?? true,
      extensions: true,
      resumeFrom: options.resumeFrom ?? null,
    },
    options.policy ?? TEST_POLICY,
  );
  const data: UserData = { connection, intake: new IntakeQueue(32), frames: new FrameRate(1000, 10_000) };
  let ended = false;
  const socket: FakeSocket = {
    connection,
    sent: [],
    frames: () => socket.sent.map((s) => JSON.parse(s) as Record<string, unknown>),
    buffered: 0,
    sendStatus: 1,
    closedWith: null,
    getUserData: () => data,
    send(message) {
      if (ended) throw new Error('send on a closed socket');
      socket.sent.push(message);
      return socket.sendStatus;
    },
    getBufferedAmount: () => socket.buffered,
    end(code, reason) {
      if (ended) throw new Error('end on a closed socket');
      ended = true;
      socket.closedWith = { code, reason };
      connection.closed();
    },
  };
  if (options.open ?? true) connection.opened(socket, options.nowMs ?? 1_000);
  return socket;
}
