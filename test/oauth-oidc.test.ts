import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, signUp } from './support/app';
import type { TestApp } from './support/app';
import { OAuthBrowser, PUBLIC_URL } from './support/oauth-browser';
import type { OidcIssuer } from './support/oidc-issuer';
import { startOidcIssuer } from './support/oidc-issuer';

/** Sign-in with an OpenID Connect provider (Google's settings) against a real `oidc-provider` on loopback. */

const CLIENT = { clientId: 'gemini-coop', clientSecret: 'test-client-secret-0123456789' };
const REDIRECT = 'http://localhost:3000/signed-in';

let issuer: OidcIssuer;
let app: TestApp;
let accountCounter = 0;
const account = (overrides: Partial<{ email: string; email_verified: boolean; preferred_username: string }> = {}) => {
  const n = ++accountCounter;
  return {
    sub: `sub-${n}-${crypto.randomUUID()}`,
    email: `person${n}.${Date.now()}@example.com`,
    email_verified: true,
    preferred_username: `person${n}`,
    ...overrides,
  };
};

beforeAll(async () => {
  issuer = await startOidcIssuer({ ...CLIENT, redirectUris: [`${PUBLIC_URL}/api/auth/oauth/google/callback`] });
  app = await createTestApp({
    GOOGLE_ISSUER: issuer.issuer,
    GOOGLE_CLIENT_ID: CLIENT.clientId,
    GOOGLE_CLIENT_SECRET: CLIENT.clientSecret,
    OAUTH_PUBLIC_URL: PUBLIC_URL,
    OAUTH_REDIRECT_URL: REDIRECT,
  });
}, 30_000);
afterAll(async () => {
  await app?.cleanup();
  await issuer?.close();
});

describe('the code flow', () => {
  test('start redirects to the issuer with PKCE (S256), state and nonce, and sets an HttpOnly state cookie', async () => {
    const response = await app.request('/api/auth/oauth/google/start');
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get('location')!);
    expect(location.origin).toBe(issuer.issuer);
    expect(location.searchParams.get('response_type')).toBe('code');
    expect(location.searchParams.get('client_id')).toBe(CLIENT.clientId);
    expect(location.searchParams.get('redirect_uri')).toBe(`${PUBLIC_URL}/api/auth/oauth/google/callback`);
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    expect(location.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(location.searchParams.get('nonce')).toBeTruthy();
    const state = location.searchParams.get('state')!;
    const cookie = response.headers.get('set-cookie')!;
    expect(cookie).toContain(`oauth_state_google=${state}`);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Lax');
    expect(cookie).toContain('Path=/api/auth/oauth/google/callback');
  });

  test('a new identity makes an account with a username from the profile, signs it in, and me lists the provider', async () => {
    const person = account({ preferred_username: 'Ada Lovelace!' });
    issuer.signInAs(person);
    const response = await new OAuthBrowser(app).signIn('google');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string; token_type: string; created: boolean; user: { username: string; email: string } };
    expect(body.token_type).toBe('bearer');
    expect(body.created).toBe(true);
    expect(body.user.username).toBe('Ada_Lovelace');
    expect(body.user.email).toBe(person.email);
    const me = await app.request('/api/auth/me', { token: body.access_token });
    expect(me.status).toBe(200);
    const profile = (await me.json()) as { identities: { provider: string; email: string }[] };
    expect(profile.identities).toEqual([expect.objectContaining({ provider: 'google', email: person.email })]);

    // The same identity again signs in to the same account.
    const again = (await (await new OAuthBrowser(app).signIn('google')).json()) as { created: boolean; user: { username: string } };
    expect(again).toMatchObject({ created: false, user: { username: 'Ada_Lovelace' } });
  });

  test('a taken username gets a suffix', async () => {
    await signUp(app, 'taken_name');
    issuer.signInAs(account({ preferred_username: 'taken_name' }));
    const body = (await (await new OAuthBrowser(app).signIn('google')).json()) as { user: { username: string } };
    expect(body.user.username).toMatch(/^taken_name-[0-9a-f]{4}$/);
  });

  test('without Accept: application/json the browser is sent to OAUTH_REDIRECT_URL with the token in the fragment', async () => {
    issuer.signInAs(account());
    const response = await new OAuthBrowser(app).signIn('google', {});
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.search).toBe('');
    const fragment = new URLSearchParams(location.hash.slice(1));
    expect(fragment.get('token_type')).toBe('bearer');
    expect((await app.request('/api/auth/me', { token: fragment.get('access_token')! })).status).toBe(200);
    // The state cookie is spent.
    expect(response.headers.get('set-cookie')).toContain('Max-Age=0');
  });

  test('an account made by a provider has no password: password login refuses it like a wrong password', async () => {
    issuer.signInAs(account({ preferred_username: 'no_password_user' }));
    const body = (await (await new OAuthBrowser(app).signIn('google')).json()) as { user: { username: string } };
    for (const password of ['', 'password123']) {
      const login = await app.request('/api/auth/login', { method: 'POST', json: { username: body.user.username, password } });
      expect([401, 422]).toContain(login.status);
    }
    const login = await app.request('/api/auth/login', { method: 'POST', json: { username: body.user.username, password: 'anything-at-all' } });
    expect(login.status).toBe(401);
    expect(await login.json()).toEqual({ detail: 'Incorrect username or password' });
  });

  test('an unconfigured provider is a 404, an unknown one a 422', async () => {
    expect((await app.request('/api/auth/oauth/github/start')).status).toBe(404);
    expect((await app.request('/api/auth/oauth/myspace/start')).status).toBe(422);
    expect(await (await app.request('/api/auth/oauth/providers')).json()).toEqual({ providers: ['google'] });
  });
});

describe('refusals', () => {
  test("a callback whose state is not this browser's is refused (login CSRF)", async () => {
    issuer.signInAs(account());
    const victim = new OAuthBrowser(app);
    await victim.start('google');
    const attacker = new OAuthBrowser(app);
    const attackerCallback = await attacker.authorize(await attacker.start('google'));
    const response = await victim.callback(attackerCallback);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain('state');
  });

  test('a callback without the state cookie is refused', async () => {
    issuer.signInAs(account());
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('google'));
    browser.appCookies.clear();
    expect((await browser.callback(callback)).status).toBe(400);
  });

  test('a replayed callback (same state, same cookie) is refused: each sign-in is claimed once', async () => {
    issuer.signInAs(account());
    const browser = new OAuthBrowser(app);
    const cookies = new Map<string, string>();
    const callback = await browser.authorize(await browser.start('google'));
    for (const [name, value] of browser.appCookies) cookies.set(name, value);
    expect((await browser.callback(callback)).status).toBe(200);
    for (const [name, value] of cookies) browser.appCookies.set(name, value);
    const replay = await browser.callback(callback);
    expect(replay.status).toBe(400);
    expect(((await replay.json()) as { detail: string }).detail).toContain('already finished');
  });

  test('a PKCE verifier that does not match the challenge is refused by the issuer', async () => {
    issuer.signInAs(account());
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('google'));
    await app.app.services.db.oAuthSignIn.updateMany({ data: { codeVerifier: 'x'.repeat(43) } });
    const response = await browser.callback(callback);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain('invalid_grant');
  });

  test('an ID token whose nonce is not the one sent is refused', async () => {
    issuer.signInAs(account());
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('google'));
    await app.app.services.db.oAuthSignIn.updateMany({ data: { nonce: 'another-sign-ins-nonce' } });
    const response = await browser.callback(callback);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain('nonce');
  });

  test('an expired sign-in is refused', async () => {
    issuer.signInAs(account());
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('google'));
    await app.app.services.db.oAuthSignIn.updateMany({ data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await browser.callback(callback)).status).toBe(400);
  });

  test('the provider refusing (access_denied) is a 400 naming it; in redirect mode the error is in the fragment', async () => {
    const browser = new OAuthBrowser(app);
    const start = await browser.start('google');
    const denied = new URL(`${PUBLIC_URL}/api/auth/oauth/google/callback`);
    denied.searchParams.set('error', 'access_denied');
    denied.searchParams.set('state', start.searchParams.get('state')!);
    denied.searchParams.set('iss', issuer.issuer);
    const response = await browser.callback(denied);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain('access_denied');

    const again = new OAuthBrowser(app);
    const second = await again.start('google');
    denied.searchParams.set('state', second.searchParams.get('state')!);
    const redirected = await again.callback(denied, {});
    expect(redirected.status).toBe(302);
    const fragment = new URLSearchParams(new URL(redirected.headers.get('location')!).hash.slice(1));
    expect(fragment.get('error')).toBe('bad_request');
    expect(fragment.get('error_description')).toContain('access_denied');
  });
});
