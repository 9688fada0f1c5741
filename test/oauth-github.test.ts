import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { MAX_PROVIDER_ANSWER_BYTES } from '../src/services/oauth/providers';
import { createTestApp } from './support/app';
import type { TestApp } from './support/app';
import type { GithubAccount } from './support/fake-github';
import { startFakeGithub } from './support/fake-github';
import { OAuthBrowser, PUBLIC_URL } from './support/oauth-browser';

/** Sign-in with GitHub's OAuth app flow and user API, against a local stand-in of both. */

const CLIENT = { clientId: 'gh-client', clientSecret: 'gh-secret-0123456789' };
let github: ReturnType<typeof startFakeGithub>;
let app: TestApp;
let counter = 0;

const githubAccount = (overrides: Partial<GithubAccount> = {}): GithubAccount => {
  const n = ++counter;
  return {
    id: 1000 + n,
    login: `octo${n}`,
    name: `Octo ${n}`,
    emails: [
      { email: `octo${n}@users.noreply.example`, primary: false, verified: true },
      { email: `octo${n}.${Date.now()}@example.com`, primary: true, verified: true },
    ],
    ...overrides,
  };
};

beforeAll(async () => {
  github = startFakeGithub(CLIENT);
  app = await createTestApp({
    GITHUB_CLIENT_ID: CLIENT.clientId,
    GITHUB_CLIENT_SECRET: CLIENT.clientSecret,
    GITHUB_URL: github.webUrl,
    GITHUB_API_URL: github.apiUrl,
    OAUTH_PUBLIC_URL: PUBLIC_URL,
  });
}, 30_000);
afterAll(async () => {
  await app?.cleanup();
  await github?.close();
});

describe('GitHub sign-in', () => {
  test('start redirects to GitHub with PKCE (S256) and state, no nonce', async () => {
    const response = await app.request('/api/auth/oauth/github/start');
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(`${github.webUrl}/login/oauth/authorize`);
    expect(location.searchParams.get('client_id')).toBe(CLIENT.clientId);
    expect(location.searchParams.get('scope')).toBe('read:user user:email');
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    expect(location.searchParams.get('state')).toBeTruthy();
    expect(location.searchParams.get('nonce')).toBeNull();
  });

  test('the whole flow makes an account from the login and the verified primary email, and signs in to it after', async () => {
    const account = githubAccount({ login: 'the-octocat' });
    github.signInAs(account);
    const response = await new OAuthBrowser(app).signIn('github');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { access_token: string; created: boolean; user: { id: number; username: string; email: string } };
    expect(body.created).toBe(true);
    expect(body.user.username).toBe('the-octocat');
    expect(body.user.email).toBe(account.emails[1]!.email);
    const me = (await (await app.request('/api/auth/me', { token: body.access_token })).json()) as { identities: { provider: string }[] };
    expect(me.identities.map((identity) => identity.provider)).toEqual(['github']);

    const again = (await (await new OAuthBrowser(app).signIn('github')).json()) as { created: boolean; user: { id: number } };
    expect(again).toMatchObject({ created: false, user: { id: body.user.id } });
  });

  test('a primary email GitHub has not verified makes no account', async () => {
    github.signInAs(githubAccount({ emails: [{ email: `unverified.${Date.now()}@example.com`, primary: true, verified: false }] }));
    const response = await new OAuthBrowser(app).signIn('github');
    expect(response.status).toBe(403);
    expect(((await response.json()) as { detail: string }).detail).toContain('no verified email');
  });

  test('a code exchanged with the wrong PKCE verifier is refused', async () => {
    github.signInAs(githubAccount());
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('github'));
    await app.app.services.db.oAuthSignIn.updateMany({ where: { provider: 'github' }, data: { codeVerifier: 'y'.repeat(43) } });
    const response = await browser.callback(callback);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain('github');
  });

  test('a replayed callback is refused', async () => {
    github.signInAs(githubAccount());
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('github'));
    const cookies = new Map(browser.appCookies);
    expect((await browser.callback(callback)).status).toBe(200);
    for (const [name, value] of cookies) browser.appCookies.set(name, value);
    expect((await browser.callback(callback)).status).toBe(400);
  });
});

describe('a tampered callback', () => {
  const tamper = async (change: (callback: URL) => void) => {
    github.signInAs(githubAccount());
    const users = await app.app.services.db.user.count();
    const browser = new OAuthBrowser(app);
    const callback = await browser.authorize(await browser.start('github'));
    change(callback);
    const response = await browser.callback(callback);
    expect(await app.app.services.db.user.count()).toBe(users);
    return response;
  };

  test('both a code and an error: refused, nothing made', async () => {
    const response = await tamper((callback) => callback.searchParams.append('error', 'access_denied'));
    expect(response.status).toBe(400);
  });

  test('a repeated state or code: refused, nothing made', async () => {
    expect((await tamper((callback) => callback.searchParams.append('state', 'forged'))).status).toBe(400);
    expect((await tamper((callback) => callback.searchParams.append('code', 'forged'))).status).toBe(400);
  });

  test('a huge parameter: refused, nothing made, no 500', async () => {
    expect((await tamper((callback) => callback.searchParams.set('state', 'x'.repeat(100_000)))).status).toBe(400);
    expect((await tamper((callback) => callback.searchParams.set('code', 'x'.repeat(100_000)))).status).toBe(400);
  });

  test('no state, or a state with no cookie: refused', async () => {
    expect((await tamper((callback) => callback.searchParams.delete('state'))).status).toBe(400);
    github.signInAs(githubAccount());
    const callback = await new OAuthBrowser(app).authorize(await new OAuthBrowser(app).start('github'));
    expect((await new OAuthBrowser(app).callback(callback)).status).toBe(400);
  });
});

describe('a provider that answers an enormous body', () => {
  for (const path of ['/login/oauth/access_token', '/api/user', '/api/user/emails']) {
    test(`${path}: read up to MAX_PROVIDER_ANSWER_BYTES, then the sign-in is refused with 503, nothing made`, async () => {
      github.signInAs(githubAccount());
      const users = await app.app.services.db.user.count();
      const browser = new OAuthBrowser(app);
      const callback = await browser.authorize(await browser.start('github'));
      github.answerHugeAt(path);
      try {
        const response = await browser.callback(callback);
        expect(response.status).toBe(503);
        expect(((await response.json()) as { detail: string }).detail).toBe(`github answered more than ${MAX_PROVIDER_ANSWER_BYTES} bytes: try again shortly`);
      } finally {
        github.answerHugeAt(null);
      }
      expect(await app.app.services.db.user.count()).toBe(users);
    });
  }
});

describe('OAUTH_START_RATE_LIMIT=2, OAUTH_PUBLIC_URL on https', () => {
  let limited: TestApp;
  beforeAll(async () => {
    limited = await createTestApp({
      GITHUB_CLIENT_ID: CLIENT.clientId,
      GITHUB_CLIENT_SECRET: CLIENT.clientSecret,
      GITHUB_URL: github.webUrl,
      GITHUB_API_URL: github.apiUrl,
      OAUTH_PUBLIC_URL: 'https://chat.example.com/coop',
      OAUTH_START_RATE_LIMIT: '2',
    });
  }, 30_000);
  afterAll(() => limited?.cleanup());

  test('the state cookie is Secure, and the callback registered and scoped is under the public URL, path included', async () => {
    const response = await limited.request('/api/auth/oauth/github/start');
    const location = new URL(response.headers.get('location')!);
    expect(location.searchParams.get('redirect_uri')).toBe('https://chat.example.com/coop/api/auth/oauth/github/callback');
    const cookie = response.headers.get('set-cookie')!;
    expect(cookie).toContain('; Secure');
    expect(cookie).toContain('Path=/coop/api/auth/oauth/github/callback');
  });

  test('a third sign-in started from one address within the minute is refused with 429, storing nothing', async () => {
    const server = limited.listen();
    try {
      const before = await limited.app.services.db.oAuthSignIn.count();
      const start = () => fetch(`http://127.0.0.1:${server.port}/api/auth/oauth/github/start`, { redirect: 'manual' });
      expect((await start()).status).toBe(302);
      expect((await start()).status).toBe(302);
      const refused = await start();
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBeTruthy();
      expect(await limited.app.services.db.oAuthSignIn.count()).toBe(before + 2);
    } finally {
      await server.stop(true);
    }
  });
});
