export * from './backoff.js';
export * from './resilient-client.js';
export * from './storage.js';
export * from './http.js';
export * from './token-source.js';
export * from './history.js';
export * from './relay-client.js';
export type {
  Conversation,
  ConversationMessage,
  ConversationSummary,
  ErrorCode,
  ServerFrame,
  TokenResponse,
} from '@relay/common/contract';
