import { InfraError } from './errors.js';

/** `${NAME}` with an upper-case name; nginx's own `${host}`-style variables are lower case. */
const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)\}/g;

/**
 * Fills `${UPPER_CASE}` placeholders from `vars`. A placeholder without a value is an error
 * naming it, rather than a config that silently points at nothing.
 */
export function renderTemplate(
  text: string,
  vars: Readonly<Record<string, string | undefined>>,
  source: string,
): string {
  const missing = new Set<string>();
  const rendered = text.replace(PLACEHOLDER, (whole, name: string) => {
    const value = vars[name];
    if (value === undefined) {
      missing.add(name);
      return whole;
    }
    return value;
  });
  if (missing.size > 0) {
    throw new InfraError(`${source}: no value for ${[...missing].map((n) => `\${${n}}`).join(', ')}`);
  }
  return rendered;
}
