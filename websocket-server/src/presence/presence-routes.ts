import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { ApiRequest } from '../api-auth.js';
import type { RouteHandler } from '../http-exchange.js';
import type { Site } from '../sites/sites.js';
import type { PresenceAnswer, PresenceApi } from './presence-api.js';

export interface PresenceRoutesDeps {
  api: PresenceApi;
  /** The gateway's guarded route (http-exchange.ts `guardedRoute`). */
  route: (name: string, handler: RouteHandler) => (res: HttpResponse, req: HttpRequest) => void;
  /** CORS headers of an answer to `origin` on `site` (the token issuer's). */
  cors: (site: Site | undefined, origin: string) => Record<string, string>;
  site: (id: string) => Site | undefined;
}

const apiRequest = (req: HttpRequest): ApiRequest => ({
  authorization: req.getHeader('authorization'),
  query: new URLSearchParams(req.getQuery() ?? ''),
  origin: req.getHeader('origin'),
});

/** The path's user id, or null when it is not valid percent-encoding (a 400, not a thrown URIError). */
function pathUser(req: HttpRequest): string | null {
  try {
    return decodeURIComponent(req.getParameter(0) ?? '');
  } catch {
    return null;
  }
}

const BAD_PATH: PresenceAnswer = {
  status: 400,
  body: { error: 'invalid_request', message: 'The user id in the path is not valid percent-encoding' },
};

/** `/api/v2/presence…` on the gateway's app (docs/presence.md). The preflight is `OPTIONS /api/*`. */
export function registerPresenceRoutes(app: TemplatedApp, deps: PresenceRoutesDeps): TemplatedApp {
  const { api } = deps;

  /** Reads what the answer needs from `req` (and the body, if any) before the first await. */
  function handler(
    answer: (
      request: ApiRequest,
      req: HttpRequest,
      body: Promise<Buffer | null> | null,
    ) => Promise<PresenceAnswer>,
    withBody = false,
  ): RouteHandler {
    return async (exchange, req) => {
      const request = apiRequest(req);
      const body = withBody ? exchange.readBody(api.bodyLimit) : null;
      const result = await answer(request, req, body);
      exchange.json(`${result.status} ${STATUS_CODES[result.status] ?? ''}`, result.body, {
        ...deps.cors(result.site ? deps.site(result.site) : undefined, request.origin),
        'cache-control': 'no-store',
      });
    };
  }

  const text = async (body: Promise<Buffer | null> | null) => {
    const buffer = await body;
    return buffer ? buffer.toString('utf8') : null;
  };

  return app
    .get(
      '/api/v2/presence',
      deps.route(
        'presence',
        handler((request) => api.list(request)),
      ),
    )
    .post(
      '/api/v2/presence/batch',
      deps.route(
        'presence',
        handler(async (request, _req, body) => api.batch(request, await text(body)), true),
      ),
    )
    .get(
      '/api/v2/presence/:user',
      deps.route(
        'presence',
        handler((request, req) => {
          const user = pathUser(req);
          return user === null ? Promise.resolve(BAD_PATH) : api.get(request, user);
        }),
      ),
    )
    .put(
      '/api/v2/presence/:user',
      deps.route(
        'presence',
        handler(async (request, req, body) => {
          // The path is read before the body is awaited: uWS' req is gone after the first await.
          const user = pathUser(req);
          const raw = await text(body);
          return user === null ? BAD_PATH : api.put(request, user, raw);
        }, true),
      ),
    );
}
