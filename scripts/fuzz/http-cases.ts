import { RAW_HTTP_TEMPLATES, type HttpCase, type RawHttpCase } from './generators.js';
import { USERID_PATTERN, expectedHttp } from './oracle.js';
import type { CaseContext, CaseResult } from './ws-cases.js';
import { RawConnection } from './ws-wire.js';

/** How long a raw HTTP case waits for a reply or a close before it counts as "waiting for more". */
const RAW_HTTP_WAIT_MS = 500;

/** Fields SPEC §2 requires in `GET /health`. */
const HEALTH_FIELDS = ['status', 'service', 'server_id', 'active_users', 'total_connections'];

function checkBody(
  route: string,
  method: string,
  status: number,
  contentType: string,
  body: string,
  userid: string | null | undefined,
  siteMode: boolean,
): string[] {
  const problems: string[] = [];
  if (method === 'HEAD') return problems;
  const json = () => {
    try {
      return JSON.parse(body) as Record<string, unknown>;
    } catch {
      problems.push(`${route} ${status}: body is not JSON: ${body.slice(0, 120)}`);
      return undefined;
    }
  };
  if (route === '/token' && method === 'POST') {
    const b = json();
    if (!b) return problems;
    if (status === 200) {
      if (typeof b.token !== 'string' || typeof b.expires_in !== 'number')
        problems.push(`/token 200 without token/expires_in: ${body.slice(0, 200)}`);
      if (!siteMode && b.userid !== userid)
        problems.push(`/token issued for ${JSON.stringify(b.userid)}, asked ${JSON.stringify(userid)}`);
      if (typeof b.userid !== 'string' || !USERID_PATTERN.test(b.userid))
        problems.push(`/token issued for an invalid userid ${JSON.stringify(b.userid)}`);
    } else if (typeof b.error !== 'string') {
      problems.push(`/token ${status} without "error": ${body.slice(0, 200)}`);
    }
  } else if (route === '/health' && status === 200) {
    const b = json();
    if (b)
      for (const f of HEALTH_FIELDS)
        if (!(f in b)) problems.push(`/health lacks "${f}": ${body.slice(0, 200)}`);
  } else if (route === '/ready' && method === 'GET') {
    const b = json();
    if (b && typeof b.status !== 'string') problems.push(`/ready without status: ${body.slice(0, 200)}`);
  } else if (route === '/metrics' && status === 200) {
    if (!/text\/plain|openmetrics/.test(contentType) || !body.includes('# HELP'))
      problems.push(`/metrics is not Prometheus text (${contentType})`);
  } else if (route.startsWith('/api/v2/presence') && ['GET', 'PUT', 'POST'].includes(method)) {
    const b = json();
    if (b && status === 200 && typeof b.user_id !== 'string' && !Array.isArray(b.presence))
      problems.push(`presence API 200 without a record or "presence": ${body.slice(0, 200)}`);
    if (b && status !== 200 && status !== 404 && typeof b.error !== 'string')
      problems.push(`presence API ${status} without "error"`);
  } else if (route.startsWith('/api/') && method === 'GET') {
    const b = json();
    if (b && status === 200 && !Array.isArray(b.conversations) && !Array.isArray(b.messages)) {
      problems.push(`history API 200 without conversations/messages: ${body.slice(0, 200)}`);
    }
    if (b && status !== 200 && typeof b.error !== 'string')
      problems.push(`history API ${status} without "error"`);
  } else if (status === 404) {
    json();
  }
  return problems;
}

/** One HTTP request over fetch: method, path, query, headers and body fuzzed; status checked per route. */
export async function runHttpCase(ctx: CaseContext, c: HttpCase): Promise<CaseResult> {
  const query = c.query.join('&');
  let url: URL;
  try {
    url = new URL(`${ctx.target.url}${c.path}${query ? `?${query}` : ''}`);
  } catch {
    return { outcomes: ['http:unbuildable-url'], violations: [], contained: [], transcript: [] };
  }
  // What fetch sends is what URL made of it: the oracle reasons on that, as the server will.
  const sentQuery = url.search.slice(1);
  const route = url.pathname;
  const expected = expectedHttp(
    c.method,
    route,
    sentQuery,
    c.method === 'GET' || c.method === 'HEAD' ? '' : (c.body ?? ''),
  );
  const label = `${c.method} ${url.pathname}${url.search.length > 200 ? `${url.search.slice(0, 200)}…(${url.search.length})` : url.search} headers ${JSON.stringify(c.headers).slice(0, 160)}${c.body !== undefined ? ` body ${c.body.length} chars` : ''}`;
  const headers = new Headers();
  if (c.auth) {
    const token =
      c.auth === 'valid' ? (ctx.tokens.get(ctx.users[0] ?? '') ?? '') : c.auth === 'garbage' ? 'a.b.c' : '';
    headers.set('authorization', `Bearer ${token}`);
  }
  for (const [k, v] of c.headers) {
    try {
      headers.append(k, v);
    } catch {
      // A header value fetch refuses to send is not a request this case can make.
    }
  }
  let status: number;
  let body: string;
  let contentType: string;
  const request = () =>
    fetch(url, {
      method: c.method,
      headers,
      body: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body,
      signal: AbortSignal.timeout(ctx.answerTimeoutMs),
      redirect: 'manual',
    });
  try {
    // fetch reuses idle keep-alive connections, and one the server is closing at that moment fails
    // with "other side closed" before anything was sent: a client race, so that one is tried again.
    const res = await request().catch((err: unknown) => {
      if ((err as { cause?: { code?: string } }).cause?.code === 'UND_ERR_SOCKET') return request();
      throw err;
    });
    status = res.status;
    contentType = res.headers.get('content-type') ?? '';
    body = await res.text();
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    // fetch itself refused to build the request: nothing reached the server.
    if (cause === 'UND_ERR_INVALID_ARG' || (err instanceof TypeError && !('cause' in err && err.cause))) {
      return { outcomes: ['http:unsendable-by-fetch'], violations: [], contained: [], transcript: [label] };
    }
    // A header too large for the server may end the connection instead of a 431.
    const big = c.headers.some(([, v]) => v.length > 4000) || url.href.length > 4000;
    if (big)
      return {
        outcomes: ['http:closed-on-large-request'],
        violations: [],
        contained: [],
        transcript: [label],
      };
    return {
      outcomes: ['http:no-reply'],
      violations: [`${label}: no HTTP reply (${cause})`],
      contained: [],
      transcript: [label],
    };
  }
  const large = c.headers.some(([, v]) => v.length > 4000) || url.href.length > 4000;
  const statuses = large ? [...expected.statuses, 400, 413, 414, 431] : expected.statuses;
  const transcript = [`→ ${label}`, `← ${status} ${body.slice(0, 200)}`];
  const outcome = `http:${route === '/token' || route === '/health' || route === '/ready' || route === '/metrics' ? route : 'other'}:${c.method}:${status}`;
  if (!statuses.includes(status)) {
    const contained = status === 500 && body.includes('internal_error');
    return {
      outcomes: [outcome],
      violations: contained
        ? []
        : [`${label}: expected ${statuses.join('|')} (${expected.why}), got ${status} ${body.slice(0, 200)}`],
      contained: contained ? [`HTTP 500 internal_error on ${c.method} ${route} — ${label}`] : [],
      transcript,
    };
  }
  const problems =
    large && status !== 200
      ? []
      : checkBody(route, c.method, status, contentType, body, expected.userid, expected.site === true);
  return {
    outcomes: [outcome],
    violations: problems.map((p) => `${label}: ${p}`),
    contained: [],
    transcript,
  };
}

/** Bytes that only look like HTTP on a raw connection: a reply with some status, or a clean close. */
export async function runRawHttpCase(ctx: CaseContext, c: RawHttpCase): Promise<CaseResult> {
  const bytes =
    c.request.r === 'bytes'
      ? Buffer.from(c.request.bytes)
      : Buffer.from(
          (RAW_HTTP_TEMPLATES[c.request.template] ?? '').replaceAll('{fill}', c.request.fill),
          'utf8',
        );
  const label = `raw HTTP ${JSON.stringify(bytes.subarray(0, 300).toString('latin1'))}${bytes.length > 300 ? `…(${bytes.length} bytes)` : ''}${c.halfClose ? ' + FIN' : ''}`;
  const conn = await RawConnection.open(ctx.target.host, ctx.target.port);
  try {
    conn.write(bytes);
    if (c.halfClose) conn.socket.end();
    // Most of these are not complete requests: a server that waits for the rest is right to.
    const reply = await conn.rawHttp(new Uint8Array(), RAW_HTTP_WAIT_MS);
    if (reply) {
      const ok = reply.status >= 100 && reply.status <= 599;
      if (reply.status === 101) {
        // Only a complete, valid upgrade may switch protocols; the templates' upgrades lack a key
        // or carry a fuzzed Upgrade header.
        return {
          outcomes: ['raw-http:101'],
          violations: [`${label}: switched protocols`],
          contained: [],
          transcript: [label],
        };
      }
      return {
        outcomes: [`raw-http:${reply.status}`],
        violations: ok ? [] : [`${label}: status line ${reply.status} ${reply.statusText}`],
        contained: reply.status === 500 ? [`${label}: 500`] : [],
        transcript: [label, `← ${reply.status}`],
      };
    }
    if (conn.ending)
      return {
        outcomes: [`raw-http:closed(${conn.ending.tcp})`],
        violations: [],
        contained: [],
        transcript: [label],
      };
    // An incomplete request: the server waits for the rest, which is what it should do.
    return { outcomes: ['raw-http:waiting-for-more'], violations: [], contained: [], transcript: [label] };
  } finally {
    conn.destroy();
  }
}
