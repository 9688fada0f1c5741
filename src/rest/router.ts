import type { Services } from '../services';
import { errorResponse, json } from './http';
import type { RouteContext } from './routes';
import { routes } from './routes';

interface CompiledRoute {
  method: string;
  path: string;
  pattern: RegExp;
  names: string[];
  handler: (context: RouteContext) => Promise<Response> | Response;
}

const compiled: CompiledRoute[] = routes.map(([method, path, handler]) => {
  const names: string[] = [];
  const source = path.replace(/:(\w+)/g, (_, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { method, path, pattern: new RegExp(`^${source}$`), names, handler };
});

/**
 * The route template a path matches (`/api/chats/:id` for `/api/chats/7`), whatever the method; null
 * when no REST route owns it. What logs and metrics name a request by: never the raw path.
 */
export function routeTemplate(pathname: string): string | null {
  return compiled.find((route) => route.pattern.test(pathname))?.path ?? null;
}

/**
 * The REST adapter: matches a route, runs it, and maps errors to the original's
 * `{"detail": ...}` bodies. Returns null for paths it does not own.
 */
export async function handleRest(request: Request, url: URL, services: Services, clientAddress: string | null): Promise<Response | null> {
  const matching = compiled.filter((route) => route.pattern.test(url.pathname));
  if (matching.length === 0) return null;
  const route = matching.find((candidate) => candidate.method === request.method);
  if (!route) return json({ detail: 'Method Not Allowed' }, 405, { Allow: matching.map((candidate) => candidate.method).join(', ') });
  const values = route.pattern.exec(url.pathname)!.slice(1);
  const params = Object.fromEntries(route.names.map((name, index) => [name, decodeSegment(values[index]!)]));
  try {
    return await route.handler({ request, url, params, services, clientAddress });
  } catch (error) {
    return errorResponse(error, services.log);
  }
}

/** A path segment, percent-decoded; a malformed escape stays as sent and fails validation (422), not the server. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
