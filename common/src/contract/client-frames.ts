import { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import {
  CHOSEN_PRESENCE_STATUSES,
  PRESENCE_MESSAGE_MAX_LENGTH_DEFAULT,
  PRESENCE_MESSAGE_PATTERN,
} from './presence.js';

/** Client-chosen idempotency key / ids: short, printable, no whitespace. */
export const idSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[\w.:-]+$/, { message: 'must be 1-64 characters of [A-Za-z0-9_.:-]' });

export const useridSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\w.@:-]+$/, { message: 'must be 1-128 characters of [A-Za-z0-9_.@:-]' });

export interface ClientFrameLimits {
  /** Longest accepted `content`, in characters. */
  maxContentLength: number;
  /** Longest presence status `message`, in characters. @default 140 */
  maxPresenceMessageLength?: number;
}

/**
 * What a user may set as their presence (frame `presence`, `PUT /api/v2/presence/{user_id}`):
 * strict, a chosen status and an optional one-line message, bounded.
 */
export function presenceUpdateSchema(maxMessageLength: number = PRESENCE_MESSAGE_MAX_LENGTH_DEFAULT) {
  return z.strictObject({
    status: z.enum(CHOSEN_PRESENCE_STATUSES),
    message: z
      .string()
      .max(maxMessageLength, { message: `must be at most ${maxMessageLength} characters` })
      .regex(PRESENCE_MESSAGE_PATTERN, { message: 'must not contain control characters' })
      .optional(),
  });
}
export type PresenceUpdate = z.infer<ReturnType<typeof presenceUpdateSchema>>;

/** Client frames are untrusted: strict objects, unknown keys rejected. */
export function clientFrameSchemas(limits: ClientFrameLimits) {
  const message = z.strictObject({
    type: z.literal('message'),
    content: z.string().trim().min(1, { message: 'content must not be empty' }).max(limits.maxContentLength),
    userid: z.string().optional(),
    id: idSchema.optional(),
    conversation_id: idSchema.optional(),
  });
  const hello = z.strictObject({ type: z.literal('hello'), stream: z.boolean().optional() });
  const cancel = z.strictObject({ type: z.literal('cancel'), request_id: idSchema });
  const presence = presenceUpdateSchema(limits.maxPresenceMessageLength).extend({
    type: z.literal('presence'),
  });
  return {
    message,
    hello,
    cancel,
    presence,
    frame: z.discriminatedUnion('type', [message, hello, cancel, presence]),
  };
}

export type ClientFrameSchemas = ReturnType<typeof clientFrameSchemas>;
export type ClientMessageFrame = z.infer<ClientFrameSchemas['message']>;
export type ClientHelloFrame = z.infer<ClientFrameSchemas['hello']>;
export type ClientCancelFrame = z.infer<ClientFrameSchemas['cancel']>;
export type ClientPresenceFrame = z.infer<ClientFrameSchemas['presence']>;
export type ClientFrame = z.infer<ClientFrameSchemas['frame']>;

export type ClientFrameParseResult =
  { ok: true; frame: ClientFrame } | { ok: false; code: ErrorCode; message: string; id?: string };

const KNOWN_TYPES = new Set(['message', 'hello', 'cancel', 'presence']);

/** Longest `message` of a parse error: it may quote client text (a key name), which is bounded here. */
const MAX_ERROR_MESSAGE_LENGTH = 200;

function refuse(code: ErrorCode, message: string, id: string | undefined): ClientFrameParseResult {
  const bounded =
    message.length > MAX_ERROR_MESSAGE_LENGTH
      ? `${message.slice(0, MAX_ERROR_MESSAGE_LENGTH - 1)}…`
      : message;
  return { ok: false, code, message: bounded, ...(id ? { id } : {}) };
}

/**
 * Parses one text frame from a client into a typed frame or a catalog error code. The socket's
 * user is passed in: a `userid` field that names anyone else is rejected (identity comes from the token).
 *
 * The frame is hostile: nothing here converts, prints or walks a value whose type it has not
 * checked. Every client frame is flat (its fields are strings, booleans or numbers), so an object or
 * array anywhere inside is refused before zod or an error message looks into it: depth and
 * `toString`/`valueOf` traps then cannot reach any code. `JSON.parse` itself is iterative in V8 and
 * the payload is already bounded by MAX_PAYLOAD_BYTES.
 */
export function parseClientFrame(
  raw: string,
  schemas: ClientFrameSchemas,
  limits: ClientFrameLimits,
  connectionUserid: string,
): ClientFrameParseResult {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return refuse('invalid_json', 'Frame is not valid JSON', undefined);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return refuse('invalid_message', 'Frame must be a JSON object', undefined);
  }
  const record = data as Record<string, unknown>;
  const id = typeof record.id === 'string' && idSchema.safeParse(record.id).success ? record.id : undefined;
  const type = record.type;
  if (typeof type !== 'string') {
    return refuse('unknown_type', 'Frame type must be a string', id);
  }
  if (!KNOWN_TYPES.has(type)) {
    // JSON.stringify quotes and escapes whatever the client sent (control characters, lone surrogates).
    return refuse('unknown_type', `Unknown frame type: ${JSON.stringify(type.slice(0, 40))}`, id);
  }
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (typeof value === 'object' && value !== null) {
      return refuse(
        'invalid_message',
        `${JSON.stringify(key.slice(0, 40))} must not be an object or array`,
        id,
      );
    }
  }
  if (type === 'message') {
    if (typeof record.content === 'string' && record.content.length > limits.maxContentLength) {
      return refuse('message_too_large', `content exceeds ${limits.maxContentLength} characters`, id);
    }
    if (record.userid !== undefined && record.userid !== connectionUserid) {
      return refuse('userid_mismatch', 'userid does not match the connection', id);
    }
  }
  const parsed = schemas.frame.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.map((p) => String(p)).join('.')}: ` : '';
    return refuse('invalid_message', `${where}${issue?.message ?? 'invalid frame'}`, id);
  }
  return { ok: true, frame: parsed.data };
}
