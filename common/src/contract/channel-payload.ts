/**
 * What the relay publishes on `user:{userid}` and gateways read back: the one module that writes
 * and parses this layout.
 *
 * A payload is the client frame's bytes (made by `serializeFrame`/`attachEventId`, always a JSON
 * object, so it starts with `{`), sent to sockets as they are. Redis pub/sub has no headers, so
 * when the relay traces a frame the trace context travels in front of it, one `name:value` line
 * each (`traceparent:00-…-01\n`), and the frame follows on the last line. A JSON text made by
 * `JSON.stringify` never holds a raw newline, and header values never do, so the first line that
 * starts with `{` is the frame. The gateway cuts the lines off before any socket sees the payload:
 * clients get exactly the frame, with or without tracing, and a frame replayed from the log (which
 * stores frames only) is the same bytes as one delivered live.
 */

const OPEN_BRACE = 0x7b;
const NEWLINE = '\n';

/** True when the payload carries trace context lines in front of its frame. One comparison. */
export function hasTraceContext(payload: string): boolean {
  return payload.length > 0 && payload.charCodeAt(0) !== OPEN_BRACE;
}

/** The payload to publish: the frame, preceded by the carrier's lines when there are any. */
export function withTraceContext(frame: string, carrier: Readonly<Record<string, string>>): string {
  let head = '';
  for (const name in carrier) {
    const value = carrier[name];
    // A name or value that could break the layout is not trace context we made; leave it out.
    if (value === undefined || /[\n:]/.test(name) || value.includes(NEWLINE)) continue;
    head += `${name}:${value}${NEWLINE}`;
  }
  return head + frame;
}

/**
 * Splits a payload into its frame and its trace context (empty when there is none). A payload
 * without a frame line (not one a relay made) is all frame: it goes to sockets as it was.
 */
export function splitTraceContext(payload: string): { frame: string; carrier: Record<string, string> } {
  const carrier: Record<string, string> = {};
  let at = 0;
  while (at < payload.length && payload.charCodeAt(at) !== OPEN_BRACE) {
    const end = payload.indexOf(NEWLINE, at);
    if (end < 0) return { frame: payload, carrier: {} };
    const colon = payload.indexOf(':', at);
    if (colon > at && colon < end) carrier[payload.slice(at, colon)] = payload.slice(colon + 1, end);
    at = end + 1;
  }
  return { frame: payload.slice(at), carrier };
}
