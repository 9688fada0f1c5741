import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, signUp } from './support/app';
import type { TestApp, TestUser } from './support/app';
import { startFakeGithub } from './support/fake-github';
import { OAuthBrowser, PUBLIC_URL } from './support/oauth-browser';
import type { OidcIssuer } from './support/oidc-issuer';
import { startOidcIssuer } from './support/oidc-issuer';

/**
 * Linking provider identities to accounts, and unlinking them: an email only links an identity to an
 * existing account when the provider verified it and the account's owner, signed in, confirms.
 */

const GOOGLE = { clientId: 'gemini-coop', clientSecret: 'test-client-secret-0123456789' };
const GITHUB = { clientId: 'gh-client', clientSecret: 'gh-secret-0123456789' };
let issuer: OidcIssuer;
let github: ReturnType<typeof startFakeGithub>;
let app: TestApp;
let counter = 0;

beforeAll(async () => {
  issuer = await startOidcIssuer({ ...GOOGLE, redirectUris: [`${PUBLIC_URL}/api/auth/oauth/google/callback`] });
  github = startFakeGithub(GITHUB);
  app = await createTestApp({
    GOOGLE_ISSUER: issuer.issuer,
    GOOGLE_CLIENT_ID: GOOGLE.clientId,
    GOOGLE_CLIENT_SECRET: GOOGLE.clientSecret,
    GITHUB_CLIENT_ID: GITHUB.clientId,
    GITHUB_CLIENT_SECRET: GITHUB.clientSecret,
    GITHUB_URL: github.webUrl,
    GITHUB_API_URL: github.apiUrl,
    OAUTH_PUBLIC_URL: PUBLIC_URL,
    OAUTH_REDIRECT_URL: 'http://localhost:3000/signed-in',
  });
}, 30_000);
afterAll(async () => {
  await app?.cleanup();
  await issuer?.close();
  await github?.close();
});

interface LinkRequired {
  link_required: true;
  link_token: string;
  provider: string;
  email: string;
  detail: string;
}
interface Methods {
  has_password: boolean;
  identities: { provider: string; email: string | null }[];
}

const emailOf = (user: TestUser) => `${user.username}@example.com`;
const googleAs = (email: string, verified = true) => issuer.signInAs({ sub: `sub-${++counter}-${crypto.randomUUID()}`, email, email_verified: verified });
const me = async (token: string) => (await (await app.request('/api/auth/me', { token })).json()) as Methods & { id: number };
const confirm = (token: string | undefined, linkToken: string) =>
  app.request('/api/auth/oauth/link', { method: 'POST', token, json: { link_token: linkToken } });

/** Signs in with Google as an identity whose verified email is `user`'s: the callback asks for linking. */
async function linkRequest(user: TestUser): Promise<LinkRequired> {
  googleAs(emailOf(user));
  const response = await new OAuthBrowser(app).signIn('google');
  expect(response.status).toBe(409);
  return (await response.json()) as LinkRequired;
}

describe('linking by a verified email', () => {
  test('a verified email of an existing account signs nobody in: it answers a link token, and links nothing yet', async () => {
    const owner = await signUp(app);
    const body = await linkRequest(owner);
    expect(body).toMatchObject({ link_required: true, provider: 'google', email: emailOf(owner) });
    expect(body).not.toHaveProperty('access_token');
    expect(body.link_token.length).toBeGreaterThanOrEqual(40);
    expect((await me(owner.token)).identities).toEqual([]);
  });

  test('in redirect mode the link token comes in the fragment, never a bearer token', async () => {
    const owner = await signUp(app);
    googleAs(emailOf(owner));
    const response = await new OAuthBrowser(app).signIn('google', {});
    expect(response.status).toBe(302);
    const fragment = new URLSearchParams(new URL(response.headers.get('location')!).hash.slice(1));
    expect(fragment.get('link_required')).toBe('true');
    expect(fragment.get('link_token')).toBeTruthy();
    expect(fragment.get('access_token')).toBeNull();
  });

  test('the owner, signed in, confirms: the identity is linked and signs in to their account from then on', async () => {
    const owner = await signUp(app);
    const { link_token } = await linkRequest(owner);
    const confirmed = await confirm(owner.token, link_token);
    expect(confirmed.status).toBe(200);
    expect(await confirmed.json()).toMatchObject({ has_password: true, identities: [{ provider: 'google', email: emailOf(owner) }] });
    // The same Google identity (the issuer still signs it in) now reaches the owner's account.
    const signedIn = (await (await new OAuthBrowser(app).signIn('google')).json()) as { created: boolean; user: { id: number } };
    expect(signedIn).toMatchObject({ created: false, user: { id: owner.id } });
  });

  test('an unverified email matching an account is refused: nothing is linked, no link token is given', async () => {
    const owner = await signUp(app);
    googleAs(emailOf(owner), false);
    const before = await app.app.services.db.oAuthLinkRequest.count();
    const response = await new OAuthBrowser(app).signIn('google');
    expect(response.status).toBe(403);
    expect(((await response.json()) as { detail: string }).detail).toContain('no verified email');
    expect(await app.app.services.db.oAuthLinkRequest.count()).toBe(before);
    expect((await me(owner.token)).identities).toEqual([]);
  });

  test('an unverified primary email at GitHub is refused the same way', async () => {
    const owner = await signUp(app);
    github.signInAs({ id: 90_000 + ++counter, login: 'impostor', emails: [{ email: emailOf(owner), primary: true, verified: false }] });
    expect((await new OAuthBrowser(app).signIn('github')).status).toBe(403);
    expect((await me(owner.token)).identities).toEqual([]);
  });

  test('the link token does nothing without the owner signed in: not signed out, not for another user', async () => {
    const owner = await signUp(app);
    const stranger = await signUp(app);
    const { link_token } = await linkRequest(owner);
    expect((await confirm(undefined, link_token)).status).toBe(401);
    const foreign = await confirm(stranger.token, link_token);
    expect(foreign.status).toBe(400);
    expect((await me(stranger.token)).identities).toEqual([]);
    expect((await me(owner.token)).identities).toEqual([]);
  });

  test('a link token works once', async () => {
    const owner = await signUp(app);
    const { link_token } = await linkRequest(owner);
    expect((await confirm(owner.token, link_token)).status).toBe(200);
    const again = await confirm(owner.token, link_token);
    expect(again.status).toBe(400);
    expect(((await again.json()) as { detail: string }).detail).toContain('invalid, expired or already used');
  });

  test('an expired link token is refused', async () => {
    const owner = await signUp(app);
    const { link_token } = await linkRequest(owner);
    await app.app.services.db.oAuthLinkRequest.updateMany({ where: { email: emailOf(owner) }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await confirm(owner.token, link_token)).status).toBe(400);
    expect((await me(owner.token)).identities).toEqual([]);
  });

  test('a made-up link token is refused, and a missing one is a 422', async () => {
    const owner = await signUp(app);
    expect((await confirm(owner.token, 'not-a-real-token')).status).toBe(400);
    expect((await app.request('/api/auth/oauth/link', { method: 'POST', token: owner.token, json: {} })).status).toBe(422);
  });
});

describe('unlinking', () => {
  test('a user with a password can unlink their only provider', async () => {
    const owner = await signUp(app);
    expect((await confirm(owner.token, (await linkRequest(owner)).link_token)).status).toBe(200);
    const response = await app.request('/api/auth/oauth/google', { method: 'DELETE', token: owner.token });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ has_password: true, identities: [] });
    expect((await app.request('/api/auth/oauth/google', { method: 'DELETE', token: owner.token })).status).toBe(404);
  });

  /** An account made by Google (no password), with GitHub linked too: its id, token and email. */
  async function providerOnlyUserWithTwoIdentities() {
    const email = `two-ways-${++counter}.${Date.now()}@example.com`;
    googleAs(email);
    const made = (await (await new OAuthBrowser(app).signIn('google')).json()) as { access_token: string; user: { id: number } };
    github.signInAs({ id: 50_000 + ++counter, login: `two-ways-${counter}`, emails: [{ email, primary: true, verified: true }] });
    const link = await new OAuthBrowser(app).signIn('github');
    expect(link.status).toBe(409);
    expect((await confirm(made.access_token, ((await link.json()) as LinkRequired).link_token)).status).toBe(200);
    return { token: made.access_token, id: made.user.id };
  }

  test('a user without a password keeps their last provider: unlinking it is refused', async () => {
    const user = await providerOnlyUserWithTwoIdentities();
    expect((await me(user.token)).identities.map((identity) => identity.provider)).toEqual(['google', 'github']);
    expect((await app.request('/api/auth/oauth/google', { method: 'DELETE', token: user.token })).status).toBe(200);
    const last = await app.request('/api/auth/oauth/github', { method: 'DELETE', token: user.token });
    expect(last.status).toBe(400);
    expect(((await last.json()) as { detail: string }).detail).toContain('no way to sign in');
    expect((await me(user.token)).identities.map((identity) => identity.provider)).toEqual(['github']);
  });

  test('two unlinks at once of the last two ways to sign in: one passes, one is refused', async () => {
    const user = await providerOnlyUserWithTwoIdentities();
    const answers = await Promise.all(
      ['google', 'github'].map((provider) => app.request(`/api/auth/oauth/${provider}`, { method: 'DELETE', token: user.token })),
    );
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 400]);
    expect((await me(user.token)).identities).toHaveLength(1);
  });

  test('unlinking needs a signed-in user, and a known provider name', async () => {
    expect((await app.request('/api/auth/oauth/google', { method: 'DELETE' })).status).toBe(401);
    const owner = await signUp(app);
    expect((await app.request('/api/auth/oauth/myspace', { method: 'DELETE', token: owner.token })).status).toBe(422);
  });
});

describe('GraphQL', () => {
  const graphql = async (query: string, variables: Record<string, unknown> = {}, token?: string) =>
    (await (await app.request('/graphql', { method: 'POST', json: { query, variables }, token })).json()) as {
      data?: Record<string, unknown> | null;
      errors?: { message: string; extensions: { code: string } }[];
    };
  const ME = '{ me { id signInMethods { hasPassword } identities { provider email createdAt } } }';
  const CONFIRM = 'mutation ($linkToken: String!) { confirmOAuthLink(linkToken: $linkToken) { hasPassword identities { provider } } }';
  const UNLINK = 'mutation ($provider: String!) { unlinkOAuthProvider(provider: $provider) { hasPassword identities { provider } } }';

  test('oauthProviders lists the providers turned on', async () => {
    expect((await graphql('{ oauthProviders }')).data).toEqual({ oauthProviders: ['google', 'github'] });
  });

  test('me shows your linked identities; confirmOAuthLink links, unlinkOAuthProvider unlinks', async () => {
    const owner = await signUp(app);
    expect((await graphql(ME, {}, owner.token)).data).toMatchObject({ me: { signInMethods: { hasPassword: true }, identities: [] } });
    const { link_token } = await linkRequest(owner);
    expect((await graphql(CONFIRM, { linkToken: link_token }, owner.token)).data).toEqual({
      confirmOAuthLink: { hasPassword: true, identities: [{ provider: 'google' }] },
    });
    expect((await graphql(ME, {}, owner.token)).data).toMatchObject({ me: { identities: [{ provider: 'google', email: emailOf(owner) }] } });
    // Used once already.
    expect((await graphql(CONFIRM, { linkToken: link_token }, owner.token)).errors?.[0]?.extensions.code).toBe('BAD_REQUEST');
    expect((await graphql(UNLINK, { provider: 'google' }, owner.token)).data).toEqual({ unlinkOAuthProvider: { hasPassword: true, identities: [] } });
    expect((await graphql(UNLINK, { provider: 'google' }, owner.token)).errors?.[0]?.extensions.code).toBe('NOT_FOUND');
    expect((await graphql(UNLINK, { provider: 'myspace' }, owner.token)).errors?.[0]?.extensions.code).toBe('BAD_USER_INPUT');
  });

  test("another user's identities are null, and the mutations need a signed-in user", async () => {
    const owner = await signUp(app);
    const other = await signUp(app);
    const query = 'query ($q: String!) { searchUsers(query: $q) { id identities { provider } signInMethods { hasPassword } } }';
    expect((await graphql(query, { q: other.username }, owner.token)).data).toEqual({
      searchUsers: [{ id: String(other.id), identities: null, signInMethods: null }],
    });
    expect((await graphql(CONFIRM, { linkToken: 'x' })).errors?.[0]?.extensions.code).toBe('UNAUTHENTICATED');
    expect((await graphql(UNLINK, { provider: 'google' })).errors?.[0]?.extensions.code).toBe('UNAUTHENTICATED');
  });
});
