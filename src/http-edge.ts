import { AppError } from './services/errors';
import type { ValidationIssue } from './services/validation';

/**
 * What every HTTP response passes through, whichever adapter made it: CORS (one policy for REST
 * and GraphQL), the usual security headers, and the request body cap.
 *
 * Hono's `cors`, `secureHeaders` and `bodyLimit` would cover only the routes Hono serves, while
 * GraphQL (Yoga) and `/ws` are dispatched beside it; and Hono's `cors` answers every OPTIONS request
 * with 204 (not only preflights: the original answers a plain OPTIONS with 405), names the allowed
 * methods to an origin it refuses, and adds `Vary: Origin` when no origin is allowed at all. The
 * cap stops reading at 1 MiB where it matters, on a served request: Bun refuses the rest
 * (`maxRequestBodySize` in src/server.ts).
 */

export const MAX_BODY_BYTES = 1_048_576;

export interface CorsPolicy {
  /** '*' for any origin, else the exact origins allowed; empty means no cross-origin access. */
  origins: '*' | string[];
}

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-site',
};
// JSON needs no scripts, styles or frames. HTML pages set their own: GraphiQL's (development only)
// inlines its scripts and sets none, `/docs` and `/` set strict ones (src/rest/docs.ts, src/front-door.ts).
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

function allowedOrigin(policy: CorsPolicy, origin: string | null): string | null {
  if (!origin) return null;
  if (policy.origins === '*') return '*';
  return policy.origins.includes(origin) ? origin : null;
}

/** Answers a CORS preflight, or null when the request is not one. */
export function preflight(request: Request, policy: CorsPolicy): Response | null {
  if (request.method !== 'OPTIONS' || !request.headers.get('access-control-request-method')) return null;
  const origin = allowedOrigin(policy, request.headers.get('origin'));
  const headers = new Headers();
  if (origin) {
    headers.set('Access-Control-Allow-Origin', origin);
    headers.set('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS');
    headers.set('Access-Control-Allow-Headers', 'Authorization, Content-Type');
    headers.set('Access-Control-Max-Age', '600');
  }
  return secure(new Response(null, { status: 204, headers }), request, policy);
}

/** Adds the security headers, and CORS headers when the request's origin is allowed. */
export function secure(response: Response, request: Request, policy: CorsPolicy): Response {
  const headers = response.headers;
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) headers.set(name, value);
  // A response that set its own policy keeps it (HTML pages, downloaded files).
  if (!headers.get('content-type')?.startsWith('text/html') && !headers.has('content-security-policy')) headers.set('Content-Security-Policy', API_CSP);
  const origin = allowedOrigin(policy, request.headers.get('origin'));
  if (origin) headers.set('Access-Control-Allow-Origin', origin);
  // With a list, the answer depends on the Origin header whether or not this one is allowed: a cache
  // must not hand a response made for one origin (with or without ACAO) to another.
  if (policy.origins !== '*' && policy.origins.length > 0) varyOnOrigin(headers);
  return response;
}

function varyOnOrigin(headers: Headers): void {
  const vary = headers.get('vary');
  if (!vary) headers.set('Vary', 'Origin');
  else if (!vary.split(',').some((name) => ['origin', '*'].includes(name.trim().toLowerCase()))) headers.set('Vary', `${vary}, Origin`);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A request's body as text, read the one way REST and GraphQL both read it: within the cap (Bun
 * stops an undeclared, chunked body at the server's cap and throws; in-process it is counted here),
 * and strictly as UTF-8, refusing invalid bytes instead of storing U+FFFD in their place.
 * Throws PAYLOAD_TOO_LARGE, or BAD_USER_INPUT with FastAPI's `json_invalid` issue.
 */
export async function readBodyText(request: Request): Promise<string> {
  const bytes = await readCapped(request);
  if (!bytes) throw new AppError('PAYLOAD_TOO_LARGE', 'Request body too large');
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const issue: ValidationIssue = { type: 'json_invalid', loc: ['body', 0], msg: 'Invalid UTF-8 in request body' };
    throw new AppError('BAD_USER_INPUT', 'Invalid UTF-8 in request body', [issue]);
  }
}

/**
 * The body, read until it passes MAX_BODY_BYTES (then null, and the rest is never read): the
 * server admits larger bodies for uploads (MAX_UPLOAD_BYTES), which no other route may buffer.
 */
async function readCapped(request: Request): Promise<Uint8Array | null> {
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of request.body) {
      total += chunk.length;
      if (total > MAX_BODY_BYTES) return null;
      chunks.push(chunk);
    }
  } catch {
    return null;
  }
  return Buffer.concat(chunks);
}

/** Room for a multipart body's boundaries and part headers around an uploaded file. */
export const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/** The routes that take a file: their bodies may reach the upload cap. */
const UPLOAD_PATH = /^\/api\/(chats\/[^/]+\/attachments|auth\/me\/avatar)$/;

/** A declared body over the cap (for an upload route, MAX_UPLOAD_BYTES and its multipart framing) is refused before anything reads it. */
export function bodyTooLarge(request: Request, pathname: string, maxUploadBytes: number): boolean {
  const cap = UPLOAD_PATH.test(pathname) ? maxUploadBytes + MULTIPART_OVERHEAD_BYTES : MAX_BODY_BYTES;
  return Number(request.headers.get('content-length') ?? 0) > cap;
}
