/**
 * The error-code catalog: the codes clients see in `error` frames and Kafka error events.
 * Each code says whether trying again can help, so clients and the retry layer agree.
 */
export const ERROR_CODES = {
  invalid_json: { retryable: false, message: 'Frame is not valid JSON' },
  unknown_type: { retryable: false, message: 'Unknown frame type' },
  invalid_message: { retryable: false, message: 'Invalid message' },
  message_too_large: { retryable: false, message: 'Message content is too large' },
  userid_mismatch: { retryable: false, message: 'userid does not match the connection' },
  invalid_token: { retryable: false, message: 'Invalid or expired token' },
  origin_not_allowed: { retryable: false, message: 'Origin not allowed' },
  too_many_connections: { retryable: true, message: 'Too many connections for this user' },
  rate_limited: { retryable: true, message: 'Too many messages, slow down' },
  queue_full: {
    retryable: true,
    message: 'Too many messages waiting on this connection; wait for their acks',
  },
  budget_exceeded: { retryable: false, message: 'The daily usage limit is reached; try again tomorrow' },
  unknown_request: { retryable: false, message: 'No pending request with this request_id' },
  upstream_unavailable: { retryable: true, message: 'Service temporarily unavailable' },
  upstream_error: { retryable: false, message: 'The model provider rejected the request' },
  timeout: { retryable: true, message: 'The model did not answer in time' },
  cancelled: { retryable: false, message: 'Request cancelled' },
  internal_error: { retryable: true, message: 'Internal error' },
} as const satisfies Record<string, { retryable: boolean; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

export function isRetryable(code: ErrorCode): boolean {
  return ERROR_CODES[code].retryable;
}

/** Base class for errors that carry a catalog code. The client sees `code`; the log sees `cause`. */
export class RelayError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string = ERROR_CODES[code].message, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
  }
}

/** A configuration value is missing or invalid; its message is one line naming the variable. */
export class ConfigError extends Error {
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}
