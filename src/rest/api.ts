import { OpenAPIHono } from '@hono/zod-openapi';
import type { Services } from '../services';
import { oauthRoutes } from './oauth-routes';
import { assistantRoutes } from './assistant-routes';
import { restRoutes } from './routes';
import { BEARER_SCHEME, bearerScheme } from './schemas';

/** What a request brings besides itself: the client's address, when a server knows it. */
export interface RestEnv {
  Bindings: { clientAddress: string | null };
}

/**
 * The REST API: every route of `restRoutes`, each described in the OpenAPI registry.
 *
 * Routes are added with `registerPath` + `on` rather than `app.openapi`, which would also put Hono's
 * validators in front of each handler: they read the body themselves (past the strict UTF-8 and cap
 * of `readBodyText`) and answer a foreign Content-Type with 415 and malformed input with 400. The
 * services validate instead, with the rules GraphQL and `/ws` share, and answer FastAPI's 422; the
 * routes' schemas are those same rules, so the document describes what is enforced.
 */
export function createRestApi(services: Services): OpenAPIHono<RestEnv> {
  const api = new OpenAPIHono<RestEnv>();
  api.openAPIRegistry.registerComponent('securitySchemes', BEARER_SCHEME, bearerScheme);
  for (const { route, handler } of [...restRoutes, ...oauthRoutes, ...assistantRoutes]) {
    api.openAPIRegistry.registerPath(route);
    api.on(route.method.toUpperCase(), route.getRoutingPath(), (c) =>
      handler({ request: c.req.raw, url: new URL(c.req.url), params: c.req.param(), services, clientAddress: c.env.clientAddress }),
    );
  }
  return api;
}
