/** Typed per-socket state, set at upgrade time (nothing is bolted onto uWS socket objects). */
export interface UserData {
  userid: string;
  connectionId: number;
  /** Opted in to `response.delta` frames (`?stream=1` or a `hello` frame). */
  stream: boolean;
  ip: string;
  /** Set in `close`: a uWS socket must not be touched after it closed. */
  closed: boolean;
}
