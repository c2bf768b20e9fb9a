/**
 * A browser `Origin` pattern of a site: an exact origin (`https://www.acme.example`), one with a
 * wildcard subdomain label (`https://*.acme.example`: exactly one label, never the bare domain) or a
 * wildcard port (`http://localhost:*`). Nothing else is a wildcard: a pattern is compiled once, at
 * start, and a malformed one is a configuration error.
 */
export interface OriginPattern {
  readonly source: string;
  matches(origin: string): boolean;
}

const PATTERN = /^(https?):\/\/(\*\.)?([a-z0-9.-]+|\[[0-9a-f:]+\])(?::(\d{1,5}|\*))?$/;

/** An origin as browsers send it: scheme, host, optional port, nothing else. */
const ORIGIN = /^(https?):\/\/([a-z0-9.-]+|\[[0-9a-f:]+\])(?::(\d{1,5}))?$/;

export function compileOrigin(source: string): OriginPattern {
  const m = PATTERN.exec(source.toLowerCase());
  if (!m) {
    throw new Error(
      `origin pattern ${JSON.stringify(source)} must be scheme://host[:port], with * only as the first label or the port`,
    );
  }
  const [, scheme, wildLabel, host, portPart] = m;
  const defaultPort = scheme === 'https' ? '443' : '80';
  return {
    source,
    matches(origin) {
      const o = ORIGIN.exec(origin.toLowerCase());
      if (!o) return false;
      const [, oScheme, oHost = '', oPort = defaultPort] = o;
      if (oScheme !== scheme) return false;
      if (wildLabel) {
        // One more label, not the domain itself: `*.acme.example` is not `acme.example`.
        const suffix = `.${host}`;
        const label = oHost.slice(0, -suffix.length);
        if (!oHost.endsWith(suffix) || label === '' || label.includes('.')) return false;
      } else if (oHost !== host) return false;
      if (portPart === '*') return true;
      return oPort === (portPart ?? defaultPort);
    },
  };
}
