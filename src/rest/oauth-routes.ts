import { z } from '@hono/zod-openapi';
import type { OAuthProviderName } from '../oauth-config';
import type { Services } from '../services';
import { domainError } from '../services/errors';
import type { SignInResult } from '../services/oauth/oauth.service';
import { SIGN_IN_TTL_MS } from '../services/oauth/oauth.service';
import { oauthLinkInput, oauthProviderInput } from '../services/validation';
import { signInMethodsJson, userJson } from '../serializers';
import { json, readBody } from './http';
import type { RestRoute } from './routes';
import { authenticatedRoute, jsonBody, publicRoute } from './routes';
import {
  detailResponse,
  jsonResponse,
  retryLaterResponse,
  oauthLinkRequiredSchema,
  oauthSignedInSchema,
  signInMethodsSchema,
  validationErrorResponse,
} from './schemas';

const providerParam = oauthProviderInput;
const unknownProvider = detailResponse('"Unknown or disabled sign-in provider": not configured on this server');

/** The cookie that binds a started sign-in to the browser that started it (login CSRF), one per provider. */
const stateCookie = (provider: string) => `oauth_state_${provider}`;

function cookieValue(request: Request, name: string): string | null {
  for (const part of (request.headers.get('cookie') ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=') || null;
  }
  return null;
}

/** HttpOnly, SameSite=Lax (the provider's redirect back is a top-level navigation), scoped to the callback's path. */
function setStateCookie(services: Services, provider: OAuthProviderName, state: string, maxAgeSeconds: number): string {
  const path = new URL(services.oauth.callbackUrl(provider)).pathname;
  const secure = services.oauth.secureCookies ? '; Secure' : '';
  return `${stateCookie(provider)}=${state}; Path=${path}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Lax${secure}`;
}

/** JSON for a client that asks for it (`Accept: application/json`), or when OAUTH_REDIRECT_URL is not set. */
const wantsJson = (request: Request, services: Services) => !services.oauth.redirectUrl || (request.headers.get('accept') ?? '').includes('application/json');

/** OAUTH_REDIRECT_URL with `fields` in its fragment: a fragment never reaches a server's logs or a Referer. */
function redirectWith(services: Services, fields: Record<string, string>, cookie: string): Response {
  const target = new URL(services.oauth.redirectUrl!);
  target.hash = new URLSearchParams(fields).toString();
  return new Response(null, { status: 302, headers: { location: target.href, 'set-cookie': cookie, 'cache-control': 'no-store' } });
}

function callbackAnswer(result: SignInResult, request: Request, services: Services, cookie: string): Response {
  const headers = { 'set-cookie': cookie, 'cache-control': 'no-store' };
  if (result.kind === 'signed_in') {
    if (!wantsJson(request, services)) return redirectWith(services, { access_token: result.token, token_type: 'bearer' }, cookie);
    return json({ access_token: result.token, token_type: 'bearer', user: userJson(result.user), created: result.created }, 200, headers);
  }
  if (!wantsJson(request, services)) {
    return redirectWith(services, { link_required: 'true', provider: result.provider, email: result.email, link_token: result.linkToken }, cookie);
  }
  const detail = `An account with ${result.email} exists: sign in to it, then confirm linking ${result.provider} with the link token`;
  return json({ detail, link_required: true, provider: result.provider, email: result.email, link_token: result.linkToken }, 409, headers);
}

/** Sign-in with Google (or any OpenID Connect provider) and GitHub, and linking providers to an account. */
export const oauthRoutes: RestRoute[] = [
  publicRoute(
    {
      method: 'get',
      path: '/api/auth/oauth/providers',
      tags: ['auth'],
      summary: 'The sign-in providers turned on',
      responses: { 200: jsonResponse(z.strictObject({ providers: z.array(z.string()) }), 'Each configured provider, by name') },
    },
    ({ services }) => json({ providers: services.oauth.enabledProviders() }),
  ),
  publicRoute(
    {
      method: 'get',
      path: '/api/auth/oauth/{provider}/start',
      tags: ['auth'],
      summary: 'Start signing in with a provider',
      description:
        'Redirects the browser to the provider (authorization code with PKCE and `state`; a `nonce` for OpenID Connect). Sets an HttpOnly cookie holding the state, valid 10 minutes: the callback must come back to the same browser.',
      request: { params: providerParam },
      responses: {
        302: { description: "To the provider's authorization page", headers: z.object({ Location: z.string(), 'Set-Cookie': z.string() }) },
        404: unknownProvider,
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many sign-ins started from this address, try again shortly" (OAUTH_START_RATE_LIMIT)'),
        503: detailResponse('"<provider> did not answer": its discovery document could not be read'),
      },
    },
    async ({ services, params, clientAddress }) => {
      const { url, state } = await services.oauth.start(params.provider!, clientAddress);
      const cookie = setStateCookie(services, params.provider as OAuthProviderName, state, SIGN_IN_TTL_MS / 1000);
      return new Response(null, { status: 302, headers: { location: url.href, 'set-cookie': cookie, 'cache-control': 'no-store' } });
    },
  ),
  publicRoute(
    {
      method: 'get',
      path: '/api/auth/oauth/{provider}/callback',
      tags: ['auth'],
      summary: 'Finish signing in with a provider',
      description:
        "Where the provider sends the browser back. With OAUTH_REDIRECT_URL set and no `Accept: application/json`, redirects there with the outcome in the URL fragment: `#access_token=…&token_type=bearer`, `#link_required=true&provider=…&email=…&link_token=…`, or `#error=…&error_description=…`. Otherwise answers JSON. A new identity makes an account; one whose verified email an existing account has is not signed in: that account's owner must sign in and confirm with the link token.",
      request: { params: providerParam, query: z.object({ code: z.string().optional(), state: z.string().optional(), error: z.string().optional() }) },
      responses: {
        200: jsonResponse(oauthSignedInSchema, "Signed in: this server's usual bearer token"),
        302: { description: 'To OAUTH_REDIRECT_URL, the outcome in the fragment', headers: z.object({ Location: z.string() }) },
        400: detailResponse("The state does not match this browser's, the sign-in expired or was finished already, or the provider refused it: start again"),
        403: detailResponse('"Your <provider> account has no verified email address…": nothing was made or linked'),
        404: unknownProvider,
        409: jsonResponse(oauthLinkRequiredSchema, 'An existing account has this verified email: its owner must confirm the link'),
        422: validationErrorResponse,
        503: detailResponse('"<provider> did not answer"'),
      },
    },
    async ({ request, url, services, params }) => {
      const provider = params.provider as OAuthProviderName;
      // The cookie is spent whatever happens: a sign-in is tried once.
      const clearCookie = setStateCookie(services, provider, '', 0);
      try {
        const result = await services.oauth.finish(provider, url, cookieValue(request, stateCookie(provider)));
        return callbackAnswer(result, request, services, clearCookie);
      } catch (error) {
        const refusal = domainError(error);
        if (!refusal || wantsJson(request, services) || refusal.code === 'NOT_FOUND') throw error;
        return redirectWith(services, { error: refusal.code.toLowerCase(), error_description: refusal.message }, clearCookie);
      }
    },
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/auth/oauth/link',
      tags: ['auth'],
      summary: 'Confirm linking a provider to your account',
      description: 'The link token a callback answered for your verified email. Single-use, valid 10 minutes, and only for the account it names.',
      request: { body: jsonBody(oauthLinkInput) },
      responses: {
        200: jsonResponse(signInMethodsSchema, 'How you can sign in now'),
        400: detailResponse('"This link token is invalid, expired or already used…", or the identity is linked already'),
        422: validationErrorResponse,
      },
    },
    async ({ request, services }, user) => json(signInMethodsJson(await services.oauth.confirmLink(user, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/auth/oauth/{provider}',
      tags: ['auth'],
      summary: 'Unlink a provider from your account',
      description: 'Refused when it is your last way to sign in (no password and no other provider).',
      request: { params: providerParam },
      responses: {
        200: jsonResponse(signInMethodsSchema, 'How you can sign in now'),
        400: detailResponse('"Unlinking <provider> would leave no way to sign in…"'),
        404: detailResponse('"No <provider> account is linked"'),
        422: validationErrorResponse,
      },
    },
    async ({ services, params }, user) => json(signInMethodsJson(await services.oauth.unlink(user, params.provider!))),
  ),
];
