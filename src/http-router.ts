import { Hono } from 'hono';
import { getPath } from 'hono/utils/url';
import type { Services } from './services';
import { serveFrontDoor } from './front-door';
import type { RestEnv } from './rest/api';
import { createRestApi } from './rest/api';
import { serveDocs } from './rest/docs';
import { errorResponse, json } from './rest/http';

const SERVICE_NAME = 'Gemini Coop';

export interface HttpRouter {
  /** Answers a plain HTTP request: a REST route, the docs, the front door, or FastAPI's 404 or 405. */
  fetch: (request: Request, clientAddress: string | null) => Promise<Response>;
  /**
   * The route template a path matches (`/api/chats/:chat_id` for `/api/chats/7`), whatever the
   * method; null when no route owns it. What logs and metrics name a request by: never the raw path.
   */
  routeTemplate: (pathname: string) => string | null;
}

/** Every plain HTTP route of the server (sockets and GraphQL are dispatched before it, in src/app.ts). */
export function createHttpRouter(services: Services, { production }: { production: boolean }): HttpRouter {
  const api = createRestApi(services);
  const site = new Hono<RestEnv>();
  site.route('/', api);
  serveDocs(site, api, SERVICE_NAME);
  serveFrontDoor(site, { name: SERVICE_NAME, graphiql: !production });
  site.notFound((c) => refusal(site, c.req.path));
  // The REST edge's mapping of the error family, for every route.
  site.onError((error) => errorResponse(error, services.log));
  const templates = [...new Set(site.routes.map((route) => route.path))].map((path) => ({
    path,
    pattern: new RegExp(`^${path.replace(/:\w+/g, '[^/]+')}$`),
  }));
  return {
    routeTemplate: (pathname) => templates.find((template) => template.pattern.test(pathname))?.path ?? null,
    // Hono answers HEAD with a path's GET route; the original (FastAPI) refuses it like any other method a path lacks.
    fetch: async (request, clientAddress) => (request.method === 'HEAD' ? refusal(site, getPath(request)) : site.fetch(request, { clientAddress })),
  };
}

/** FastAPI's answer for a request no route takes: 405 naming the methods the path has, else 404. */
function refusal(site: Hono<RestEnv>, path: string): Response {
  const methods = [...new Set(site.routes.map((route) => route.method))];
  const allowed = methods.filter((method) => site.router.match(method, path)[0].length > 0);
  if (allowed.length === 0) return json({ detail: 'Not Found' }, 404);
  return json({ detail: 'Method Not Allowed' }, 405, { Allow: allowed.join(', ') });
}
