export { createMockOpenAI } from './mock-openai-server.js';
export type { MockOpenAIServer, MockOpenAIStats } from './mock-openai-server.js';
export {
  MOCK_OPENAI_DEFAULTS,
  mockOpenAIOptionsSchema,
  resolveMockOpenAIOptions,
  type MockOpenAIOptions,
  type ResolvedMockOpenAIOptions,
} from './options.js';
export { answerTokens, embeddingFor } from './answer.js';
