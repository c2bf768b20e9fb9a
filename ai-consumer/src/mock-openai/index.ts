export { createMockOpenAI } from './mock-openai-server.js';
export type { MockOpenAIServer, MockOpenAIStats } from './mock-openai-server.js';
export {
  MOCK_OPENAI_DEFAULTS,
  mockOpenAIOptionsSchema,
  resolveMockOpenAIOptions,
  type MockOpenAIOptions,
  type ResolvedMockOpenAIOptions,
} from './options.js';
export { answerTokens } from './answer.js';
export { embeddingFor, stems } from './similarity.js';
export { citationTokens } from './grounding.js';
