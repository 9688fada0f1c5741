import { readBodyText } from '../http-edge';
import type { Logger } from '../log';
import { AppError, domainError } from '../services/errors';
import type { ValidationIssue } from '../services/validation';

/** Seed-compatible JSON responses and the REST edge's mapping of the error family. */
export const json = (body: unknown, status = 200, headers: HeadersInit = {}) => Response.json(body, { status, headers });

export function errorResponse(caught: unknown, log: Logger): Response {
  const error = domainError(caught);
  if (error) {
    const headers: Record<string, string> = {};
    if (error.status === 401) headers['WWW-Authenticate'] = 'Bearer';
    if (error.code === 'RANGE_NOT_SATISFIABLE') headers['Content-Range'] = `bytes */${String(error.detail)}`;
    // The rest of a body too slow is never read: without this Bun keeps the connection, and the trickle on it, until its idle timeout.
    if (error.code === 'REQUEST_TIMEOUT') headers['Connection'] = 'close';
    if (error.retryAfterSeconds !== undefined) headers['Retry-After'] = String(Math.max(1, error.retryAfterSeconds));
    const detail = error.code === 'BAD_USER_INPUT' && error.detail ? error.detail : error.message;
    return json({ detail }, error.status, headers);
  }
  // The line carries the request id that the response's X-Request-Id gives the client.
  log.error({ err: caught, component: 'rest' }, 'unhandled error');
  return json({ detail: 'Internal server error' }, 500);
}

/** A JSON (or, for OAuth2 clients, form-encoded) body; malformed input is FastAPI's 422. */
export async function readBody(request: Request, { acceptForm = false } = {}): Promise<unknown> {
  const type = request.headers.get('content-type') ?? '';
  const text = await readBodyText(request);
  if (acceptForm && type.startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    return JSON.parse(text);
  } catch {
    const issue: ValidationIssue = { type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error' };
    throw new AppError('BAD_USER_INPUT', 'JSON decode error', [issue]);
  }
}
