import type { Connection } from './connection/connection.js';
import type { FrameRate, IntakeQueue } from './socket-intake.js';

/**
 * Typed per-socket state, set at upgrade time (nothing is bolted onto uWS socket objects). uWS
 * copies this object's fields into its own at the upgrade, so each field is an object the gateway
 * keeps a reference to; the socket's delivery state lives in `connection` alone.
 */
export interface UserData {
  connection: Connection;
  /** Client messages on their way to Kafka, in order, bounded (`MAX_QUEUED_FRAMES`). */
  intake: IntakeQueue;
  /** Every client frame counts against it (`RATE_LIMIT_FRAMES` per `RATE_LIMIT_WINDOW_MS`). */
  frames: FrameRate;
}

/** A socket of either gateway: what the registry, intake and sessions need of it. */
export interface SessionSocket {
  getUserData(): UserData;
}
