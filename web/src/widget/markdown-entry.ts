import { renderMarkdown } from '../shared/markdown.js';
import { RENDERER_EVENT, type RendererDetail } from './renderer-event.js';

// widget-markdown.js: hands the markdown renderer to the widget(s) of this page, defines nothing.
const detail: RendererDetail = { version: 1, render: renderMarkdown };
document.dispatchEvent(new CustomEvent(RENDERER_EVENT, { detail }));
