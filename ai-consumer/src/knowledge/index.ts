export { chunkText, type ChunkOptions } from './chunker.js';
export { contentHash, createEmbedder, type Embedder, type EmbedderOptions } from './embedder.js';
export { KNOWLEDGE_EXTENSIONS, listFiles } from './files.js';
export { ground, type Grounding } from './grounding.js';
export {
  createKnowledgeBase,
  type KnowledgeBase,
  type KnowledgeBaseOptions,
  type RefreshReport,
} from './knowledge-base.js';
export { checkSources, knowledgeFragment, type KnowledgeSettings, type KnowledgeSource } from './options.js';
export { GROUNDING_INSTRUCTIONS, groundedSystemPrompt, sourcesOf } from './prompt.js';
export { setupKnowledge, type KnowledgeDeps } from './setup.js';
export type { RetrievedChunk, Retriever, Source } from './types.js';
