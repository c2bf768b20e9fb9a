export * from './config.js';
export { setupModel, type ModelEndpoint, type ModelSetup, type ModelSetupConfig } from './model-setup.js';
export { createFallbackModel, type FallbackModelOptions } from './fallback-model.js';
export * from './knowledge/index.js';
export {
  CONSUMER_GROUP,
  createAiConsumer,
  type AiConsumer,
  type AiConsumerConfig,
  type AiConsumerOptions,
  type TopicNames,
} from './ai-consumer.js';
export {
  createModelClient,
  type ModelClient,
  type ModelClientOptions,
  type StreamChatOptions,
  type StreamChatResult,
} from './model-client.js';
export { historyKey, type ChatMessage } from './history.js';
export type { BreakerState } from './circuit-breaker.js';
export { consumerMetrics, type ConsumerMetrics } from './consumer-metrics.js';
export { createMockOpenAI, type MockOpenAIServer, type MockOpenAIOptions } from './mock-openai/index.js';
