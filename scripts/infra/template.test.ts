import { describe, expect, it } from 'vitest';
import { renderTemplate } from './template.js';

describe('renderTemplate', () => {
  it('fills upper-case placeholders and leaves nginx variables alone', () => {
    const text = 'listen ${NGINX_PORT}; proxy_set_header Host ${host}; return 200 $request_uri;';
    expect(renderTemplate(text, { NGINX_PORT: '8080' }, 'nginx.conf')).toBe(
      'listen 8080; proxy_set_header Host ${host}; return 200 $request_uri;',
    );
  });

  it('names every placeholder that has no value', () => {
    expect(() => renderTemplate('${A} ${B_2} ${A}', {}, 'x.conf')).toThrow(
      'x.conf: no value for ${A}, ${B_2}',
    );
  });
});
