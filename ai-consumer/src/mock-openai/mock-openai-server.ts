/**
 * A mock OpenAI-compatible HTTP server, so the system runs (and its failure handling can be exercised)
 * without a provider. It speaks OpenAI's wire format closely enough for the official `openai` client:
 *
 * - `POST /v1/chat/completions` — a deterministic answer to the last user message (see `answer.ts`),
 *   as one `chat.completion` or, with `stream: true`, as `chat.completion.chunk` SSE events paced by
 *   `ttftMs`/`tokenMs`; honours `max_tokens`/`max_completion_tokens` (`finish_reason: 'length'`) and
 *   `stream_options.include_usage`.
 * - `GET /v1/models`, `GET /v1/models/{id}` — the configured model.
 * - `POST /v1/embeddings` — deterministic unit vectors (256 dimensions unless `dimensions` says otherwise),
 *   as floats or base64 (the client's default), in which texts sharing words point the same way
 *   (`similarity.ts`), so retrieval is testable; `stats().embeddings` counts the inputs embedded.
 * - Grounding: excerpts of a knowledge base in the system prompt (`<excerpt source="…">`, see
 *   `knowledge/prompt.ts`) make the answer cite the best-matching one (`grounding.ts`).
 * - anything else — 404 with OpenAI's error envelope. Any bearer token, or none, is accepted.
 *
 * Forcing an error status, to test retries and breakers:
 * - Header (any endpoint): `x-mock-status: 429` (any 400-599), optional `x-mock-retry-after: 1` (seconds,
 *   sent back as `Retry-After`) and `x-mock-retry-after-ms: 250` (sent back as `retry-after-ms`).
 * - Prompt marker (chat completions; for callers that cannot set headers, e.g. through the whole pipeline):
 *   `[mock:status=429,retry_after=1,retry_after_ms=250,times=1]` anywhere in the last user message. The
 *   first `times` requests carrying that exact prompt get the status, later ones a normal answer (without
 *   `times`, every one fails). Counts are per server instance. `model=<name>` limits it to requests for
 *   that model, so one mock can play a failing primary and a healthy fallback.
 * - `failRate`: each chat completion fails with 500 with that probability, from a PRNG seeded by `seed`.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { answerTokens, approximateTokenCount, createPrng } from './answer.js';
import {
  forcedStatusFromHeaders,
  forcedStatusFromPrompt,
  retryHeaders,
  type ForcedStatus,
} from './forced-status.js';
import {
  resolveMockOpenAIOptions,
  type MockOpenAIOptions,
  type ResolvedMockOpenAIOptions,
} from './options.js';
import { citationTokens } from './grounding.js';
import { embeddingFor } from './similarity.js';
import { SSE_DONE, SSE_HEADERS, SseWriter, pause, sseData } from './sse.js';
import {
  chatCompletionRequestSchema,
  describeInvalidBody,
  embeddingRequestSchema,
  messageText,
  openAIError,
  promptOf,
  type ChatCompletionRequest,
} from './wire.js';

export interface MockOpenAIStats {
  /** Every HTTP request received, whatever its outcome (retries included). */
  requests: number;
  /** Chat completions answered with 200 (a stream counts once it starts). */
  completions: number;
  /** Of `completions`, those asked for with `stream: true` (SSE); the rest were one JSON each. */
  streamed: number;
  /** Completions cut short because the client went away before the response finished. */
  aborted: number;
  /** Inputs embedded by `/v1/embeddings` (one request may carry many). */
  embeddings: number;
}

export interface MockOpenAIServer {
  /** Listens; resolves with the base URL (no `/v1`) and the bound port. Calling it again returns the same promise. */
  start(): Promise<{ url: string; port: number }>;
  /** Stops listening, drops keep-alive and streaming connections. Idempotent. */
  close(): Promise<void>;
  /** Base URL once started, e.g. `http://127.0.0.1:8090`; throws before. */
  readonly url: string;
  stats(): MockOpenAIStats;
}

const MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_EMBEDDING_DIMENSIONS = 256;
const SYSTEM_FINGERPRINT = 'fp_mock';

interface CompletionPlan {
  id: string;
  created: number;
  model: string;
  tokens: string[];
  finishReason: 'stop' | 'length';
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export function createMockOpenAI(options: MockOpenAIOptions = {}): MockOpenAIServer {
  const config: ResolvedMockOpenAIOptions = resolveMockOpenAIOptions(options);
  const failDraw = createPrng(config.seed);
  const markerHits = new Map<string, number>();
  const counters: MockOpenAIStats = { requests: 0, completions: 0, streamed: 0, aborted: 0, embeddings: 0 };
  let requestSeq = 0;
  let starting: Promise<{ url: string; port: number }> | undefined;
  let closing: Promise<void> | undefined;
  let baseUrl: string | undefined;

  const server = createServer((req, res) => {
    counters.requests++;
    requestSeq++;
    res.setHeader('x-request-id', `req_mock_${requestSeq.toString(16).padStart(8, '0')}`);
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
      } else {
        const message = error instanceof Error ? error.message : String(error);
        sendJson(res, 500, openAIError(500, `Mock server error: ${message}`));
      }
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://mock.invalid').pathname;

    const fromHeader = forcedStatusFromHeaders(req.headers);
    if (!fromHeader.ok) return sendJson(res, 400, openAIError(400, fromHeader.message));
    if (fromHeader.forced) return sendForced(res, fromHeader.forced);

    if (method === 'POST' && path === '/v1/chat/completions') return chatCompletions(req, res);
    if (method === 'POST' && path === '/v1/embeddings') return embeddings(req, res);
    if (method === 'GET' && path === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: [modelObject(config.model)] });
    }
    if (method === 'GET' && path.startsWith('/v1/models/')) {
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (id === config.model) return sendJson(res, 200, modelObject(id));
      return sendJson(
        res,
        404,
        openAIError(404, `The model '${id}' does not exist or you do not have access to it.`, {
          code: 'model_not_found',
        }),
      );
    }
    return sendJson(res, 404, openAIError(404, `Invalid URL (${method} ${path})`));
  }

  async function chatCompletions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, res);
    if (body === undefined) return;
    const parsed = chatCompletionRequestSchema.safeParse(body);
    if (!parsed.success) {
      const { message, param } = describeInvalidBody(parsed.error);
      return sendJson(res, 400, openAIError(400, message, { param }));
    }
    const request = parsed.data;
    const prompt = promptOf(request.messages);

    const fromPrompt = forcedStatusFromPrompt(prompt);
    if (!fromPrompt.ok) return sendJson(res, 400, openAIError(400, fromPrompt.message));
    const forced = fromPrompt.forced;
    if (
      forced &&
      (forced.model === undefined || forced.model === request.model) &&
      takeMarkerHit(prompt, forced)
    )
      return sendForced(res, forced);

    if (config.failRate > 0 && failDraw() < config.failRate) {
      return sendJson(
        res,
        500,
        openAIError(500, 'The server had an error while processing your request (mock failRate).'),
      );
    }

    const plan = planCompletion(request, prompt);
    counters.completions++;
    if (request.stream) {
      counters.streamed++;
      return streamCompletion(res, plan, request.stream_options?.include_usage === true);
    }
    await pause(config.ttftMs + config.tokenMs * Math.max(0, plan.tokens.length - 1), abortOnClose(res));
    sendJson(res, 200, {
      id: plan.id,
      object: 'chat.completion',
      created: plan.created,
      model: plan.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: plan.tokens.join(''), refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: plan.finishReason,
        },
      ],
      usage: plan.usage,
      service_tier: 'default',
      system_fingerprint: SYSTEM_FINGERPRINT,
    });
  }

  /** Whether this request is one of the first `times` carrying `prompt` (always, without `times`). */
  function takeMarkerHit(prompt: string, forced: ForcedStatus): boolean {
    if (forced.times === undefined) return true;
    const hits = markerHits.get(prompt) ?? 0;
    if (hits >= forced.times) return false;
    markerHits.set(prompt, hits + 1);
    return true;
  }

  function planCompletion(request: ChatCompletionRequest, prompt: string): CompletionPlan {
    const all = [...answerTokens(prompt, config.minTokens), ...citationTokens(request.messages, prompt)];
    const caps = [request.max_tokens, request.max_completion_tokens].filter(
      (cap): cap is number => cap != null,
    );
    const cap = caps.length > 0 ? Math.min(...caps) : Number.POSITIVE_INFINITY;
    const tokens = all.length > cap ? all.slice(0, cap) : all;
    const promptTokens = request.messages.reduce(
      (sum, message) => sum + 4 + approximateTokenCount(messageText(message)),
      3,
    );
    return {
      id: `chatcmpl-${randomUUID().replaceAll('-', '').slice(0, 24)}`,
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      tokens,
      finishReason: tokens.length < all.length ? 'length' : 'stop',
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: tokens.length,
        total_tokens: promptTokens + tokens.length,
      },
    };
  }

  async function streamCompletion(
    res: ServerResponse,
    plan: CompletionPlan,
    includeUsage: boolean,
  ): Promise<void> {
    const signal = abortOnClose(res);
    const writer = new SseWriter(res, signal);
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();

    // With include_usage OpenAI adds `usage: null` to every chunk and a final chunk with `choices: []`.
    const chunk = (choices: unknown[], usage?: CompletionPlan['usage']): string =>
      sseData({
        id: plan.id,
        object: 'chat.completion.chunk',
        created: plan.created,
        model: plan.model,
        service_tier: 'default',
        system_fingerprint: SYSTEM_FINGERPRINT,
        choices,
        ...(includeUsage ? { usage: usage ?? null } : {}),
      });
    const delta = (value: Record<string, unknown>, finishReason: string | null = null): unknown[] => [
      { index: 0, delta: value, logprobs: null, finish_reason: finishReason },
    ];

    // Token i is due TTFT + i intervals after the start, not one interval after the previous write:
    // relative pauses drift by each timer's lateness, which over a 60-token answer added tens of ms
    // that load tests subtracting the configured model time counted as pipeline cost.
    const start = performance.now();
    const dueIn = (i: number) => start + config.ttftMs + i * config.tokenMs - performance.now();
    if (!(await pause(config.ttftMs, signal))) return;
    if (!(await writer.write(chunk(delta({ role: 'assistant', content: '', refusal: null }))))) return;
    for (const [i, token] of plan.tokens.entries()) {
      if (i > 0 && !(await pause(dueIn(i), signal))) return;
      if (!(await writer.write(chunk(delta({ content: token }))))) return;
    }
    if (!(await writer.write(chunk(delta({}, plan.finishReason))))) return;
    if (includeUsage && !(await writer.write(chunk([], plan.usage)))) return;
    if (!(await writer.write(SSE_DONE))) return;
    writer.end();
  }

  async function embeddings(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, res);
    if (body === undefined) return;
    const parsed = embeddingRequestSchema.safeParse(body);
    if (!parsed.success) {
      const { message, param } = describeInvalidBody(parsed.error);
      return sendJson(res, 400, openAIError(400, message, { param }));
    }
    const { input, model, dimensions = DEFAULT_EMBEDDING_DIMENSIONS, encoding_format } = parsed.data;
    // Token-id inputs are hashed by their JSON text: deterministic, which is all a mock needs.
    const inputs: string[] =
      typeof input === 'string'
        ? [input]
        : input.every((item) => typeof item === 'string')
          ? input
          : input.every((item) => typeof item === 'number')
            ? [JSON.stringify(input)]
            : input.map((item) => JSON.stringify(item));
    const promptTokens = inputs.reduce((sum, text) => sum + approximateTokenCount(text), 0);
    counters.embeddings += inputs.length;
    sendJson(res, 200, {
      object: 'list',
      data: inputs.map((text, index) => {
        const vector = embeddingFor(text, dimensions);
        return {
          object: 'embedding',
          index,
          embedding:
            encoding_format === 'base64'
              ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
              : Array.from(vector),
        };
      }),
      model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  }

  /** The parsed body, or `undefined` after answering 400/413 itself. */
  async function readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const part of req) {
      const buffer: Buffer = Buffer.isBuffer(part) ? part : Buffer.from(String(part));
      size += buffer.length;
      if (size > MAX_BODY_BYTES) {
        res.setHeader('connection', 'close');
        sendJson(res, 413, openAIError(413, `Request body exceeds ${MAX_BODY_BYTES} bytes.`));
        return undefined;
      }
      chunks.push(buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      sendJson(
        res,
        400,
        openAIError(
          400,
          "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        ),
      );
      return undefined;
    }
  }

  function sendForced(res: ServerResponse, forced: ForcedStatus): void {
    const message =
      forced.status === 429
        ? `Rate limit reached (forced by mock ${forced.source}).`
        : `Mock error ${forced.status} (forced by mock ${forced.source}).`;
    sendJson(res, forced.status, openAIError(forced.status, message), retryHeaders(forced));
  }

  function start(): Promise<{ url: string; port: number }> {
    if (closing) return Promise.reject(new Error('mock OpenAI server is closed'));
    starting ??= new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.once('error', onError);
      server.listen(config.port, config.host, () => {
        server.off('error', onError);
        const { port } = server.address() as AddressInfo;
        baseUrl = `http://${urlHost(config.host)}:${port}`;
        resolve({ url: baseUrl, port });
      });
    });
    return starting;
  }

  function close(): Promise<void> {
    closing ??= (async () => {
      if (starting) await Promise.allSettled([starting]);
      if (!server.listening) return;
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Idle keep-alive sockets and in-flight streams would otherwise hold close() open.
        server.closeAllConnections();
      });
    })();
    return closing;
  }

  return {
    start,
    close,
    get url(): string {
      if (baseUrl === undefined) throw new Error('mock OpenAI server not started');
      return baseUrl;
    },
    stats: () => ({ ...counters }),
  };

  /** Aborts when the client disconnects before the response finished; counts it as an aborted stream. */
  function abortOnClose(res: ServerResponse): AbortSignal {
    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) {
        counters.aborted++;
        controller.abort();
      }
    });
    return controller.signal;
  }
}

function modelObject(id: string): { id: string; object: 'model'; created: number; owned_by: string } {
  return { id, object: 'model', created: 1_700_000_000, owned_by: 'mock' };
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** A host to put in a URL: loopback for unspecified addresses, brackets around IPv6 literals. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
