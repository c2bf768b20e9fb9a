import { z } from 'zod';
import type { ErrorCode } from '../errors.js';

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
}

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
  return { message, hello, cancel, frame: z.discriminatedUnion('type', [message, hello, cancel]) };
}

export type ClientFrameSchemas = ReturnType<typeof clientFrameSchemas>;
export type ClientMessageFrame = z.infer<ClientFrameSchemas['message']>;
export type ClientHelloFrame = z.infer<ClientFrameSchemas['hello']>;
export type ClientCancelFrame = z.infer<ClientFrameSchemas['cancel']>;
export type ClientFrame = z.infer<ClientFrameSchemas['frame']>;

export type ClientFrameParseResult =
  { ok: true; frame: ClientFrame } | { ok: false; code: ErrorCode; message: string; id?: string };

const KNOWN_TYPES = new Set(['message', 'hello', 'cancel']);

/**
 * Parses one text frame from a client into a typed frame or a catalog error code. The socket's
 * user is passed in: a `userid` field that names anyone else is rejected (identity comes from the token).
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
    return { ok: false, code: 'invalid_json', message: 'Frame is not valid JSON' };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { ok: false, code: 'invalid_message', message: 'Frame must be a JSON object' };
  }
  const record = data as Record<string, unknown>;
  const id = typeof record.id === 'string' && idSchema.safeParse(record.id).success ? record.id : undefined;
  if (typeof record.type !== 'string' || !KNOWN_TYPES.has(record.type)) {
    return {
      ok: false,
      code: 'unknown_type',
      message: `Unknown frame type: ${String(record.type).slice(0, 40)}`,
    };
  }
  if (record.type === 'message') {
    if (typeof record.content === 'string' && record.content.length > limits.maxContentLength) {
      return {
        ok: false,
        code: 'message_too_large',
        message: `content exceeds ${limits.maxContentLength} characters`,
        ...(id ? { id } : {}),
      };
    }
    if (record.userid !== undefined && record.userid !== connectionUserid) {
      return {
        ok: false,
        code: 'userid_mismatch',
        message: 'userid does not match the connection',
        ...(id ? { id } : {}),
      };
    }
  }
  const parsed = schemas.frame.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    return {
      ok: false,
      code: 'invalid_message',
      message: `${where}${issue?.message ?? 'invalid frame'}`,
      ...(id ? { id } : {}),
    };
  }
  return { ok: true, frame: parsed.data };
}
