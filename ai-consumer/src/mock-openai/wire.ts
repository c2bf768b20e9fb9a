import { z } from 'zod';

// OpenAI's request bodies and error envelope, as far as the mock needs them. These mirror an external API
// (not our own contract, which lives in `common`), and are lenient on unknown fields as OpenAI's server is
// towards new client versions.

const contentPartSchema = z.looseObject({ type: z.string(), text: z.string().optional() });

export const chatMessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(contentPartSchema), z.null()]).optional(),
});
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const chatCompletionRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(chatMessageSchema).min(1),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.number().int().positive().nullish(),
  user: z.string().optional(),
});
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

export const embeddingRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(z.number().int()).min(1),
    z.array(z.array(z.number().int()).min(1)).min(1),
  ]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().min(1).max(4096).optional(),
  user: z.string().optional(),
});
export type EmbeddingRequest = z.infer<typeof embeddingRequestSchema>;

/** Plain text of a message's content: a string, or the text parts of a multi-part content joined by spaces. */
export function messageText(message: ChatMessage): string {
  const { content } = message;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => part.text ?? '')
      .filter(Boolean)
      .join(' ');
  }
  return '';
}

/** The prompt the mock answers: the last user message, else the last message of any role. */
export function promptOf(messages: readonly ChatMessage[]): string {
  const lastUser = messages.findLast((message) => message.role === 'user');
  const chosen = lastUser ?? messages.at(-1);
  return chosen ? messageText(chosen) : '';
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** OpenAI's `type`/`code` for a status, as its API reports them (e.g. 429 → `requests`/`rate_limit_exceeded`). */
function classify(status: number): { type: string; code: string | null } {
  switch (status) {
    case 401:
      return { type: 'invalid_request_error', code: 'invalid_api_key' };
    case 403:
      return { type: 'permission_error', code: null };
    case 429:
      return { type: 'requests', code: 'rate_limit_exceeded' };
    default:
      return status >= 500
        ? { type: 'server_error', code: null }
        : { type: 'invalid_request_error', code: null };
  }
}

export function openAIError(
  status: number,
  message: string,
  overrides: { param?: string | null; code?: string | null } = {},
): OpenAIErrorBody {
  const { type, code } = classify(status);
  return { error: { message, type, param: overrides.param ?? null, code: overrides.code ?? code } };
}

/** `messages[0].content`-style path of a zod issue, the way OpenAI names the offending `param`. */
export function paramPath(path: readonly PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`))
    .join('');
}

/** One-line summary of a failed parse, naming the parameter like OpenAI does. */
export function describeInvalidBody(error: z.ZodError): { message: string; param: string | null } {
  const issue = error.issues[0];
  if (!issue) return { message: 'Invalid request body.', param: null };
  const param = paramPath(issue.path);
  return { message: `Invalid value for '${param ?? 'body'}': ${issue.message}.`, param };
}
