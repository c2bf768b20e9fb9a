import type { Renderer } from '../shared/messages.js';

/** The DOM event widget-markdown.js dispatches on `document` with its renderer. */
export const RENDERER_EVENT = 'relaychat:renderer';

export interface RendererDetail {
  version: 1;
  render: Renderer;
}

export function isRendererDetail(value: unknown): value is RendererDetail {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.version === 1 && typeof v.render === 'function';
}
