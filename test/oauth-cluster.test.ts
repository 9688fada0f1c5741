import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { createTestDatabase, RATE_LIMITS_OFF, testRedisEnv } from './support/app';
import type { Instance } from './support/cluster';
import { signUpOn, startInstance } from './support/cluster';
import { OAuthBrowser, PUBLIC_URL } from './support/oauth-browser';
import type { OidcIssuer } from './support/oidc-issuer';
import { startOidcIssuer } from './support/oidc-issuer';

/**
 * Sign-in across two real processes on one PostgreSQL database: a sign-in started on one instance
 * finishes on the other (a load balancer need not be sticky), exactly once, and a link token answered
 * by one is confirmed on the other. Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

const STARTUP_TIMEOUT_MS = 60_000;
const CLIENT = { clientId: 'gemini-coop', clientSecret: 'test-client-secret-0123456789' };

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('sign-in on two instances', () => {
    let database: { url: string; drop: () => Promise<void> };
    let issuer: OidcIssuer;
    let a: Instance;
    let b: Instance;
    let counter = 0;

    beforeAll(async () => {
      database = await createTestDatabase(tmpdir());
      issuer = await startOidcIssuer({ ...CLIENT, redirectUris: [`${PUBLIC_URL}/api/auth/oauth/google/callback`] });
      // Not production: the test issuer is plain http on loopback, which production refuses.
      const env = {
        DATABASE_URL: database.url,
        ...testRedisEnv(),
        SECRET_KEY: 'oauth-cluster-test-secret-key-0123456789abcdef',
        LOG_LEVEL: 'info',
        ...RATE_LIMITS_OFF,
        GOOGLE_ISSUER: issuer.issuer,
        GOOGLE_CLIENT_ID: CLIENT.clientId,
        GOOGLE_CLIENT_SECRET: CLIENT.clientSecret,
        OAUTH_PUBLIC_URL: PUBLIC_URL,
      };
      [a, b] = await Promise.all([startInstance('A', env), startInstance('B', env)]);
    }, STARTUP_TIMEOUT_MS);

    afterAll(async () => {
      await Promise.all([a?.kill(), b?.kill()]);
      await issuer?.close();
      await database?.drop();
    }, STARTUP_TIMEOUT_MS);

    test('started on A, finished on B; the token works on both; the same callback replayed on A is refused', async () => {
      issuer.signInAs({
        sub: `cluster-${++counter}`,
        email: `cluster${counter}.${Date.now()}@example.com`,
        email_verified: true,
        preferred_username: 'cluster_person',
      });
      const browser = new OAuthBrowser(a);
      const callback = await browser.authorize(await browser.start('google'));
      const cookies = new Map(browser.appCookies);
      browser.app = b;
      const response = await browser.callback(callback);
      expect(response.status).toBe(200);
      const { access_token, user } = (await response.json()) as { access_token: string; user: { id: number } };
      for (const instance of [a, b]) {
        expect(((await (await instance.request('/api/auth/me', { token: access_token })).json()) as { id: number }).id).toBe(user.id);
      }
      for (const [name, value] of cookies) browser.appCookies.set(name, value);
      browser.app = a;
      expect((await browser.callback(callback)).status).toBe(400);
    });

    test('a link token answered on A is confirmed on B', async () => {
      const owner = await signUpOn(a, 'linker');
      issuer.signInAs({ sub: `cluster-${++counter}`, email: `${owner.username}@example.com`, email_verified: true });
      const link = await new OAuthBrowser(a).signIn('google');
      expect(link.status).toBe(409);
      const { link_token } = (await link.json()) as { link_token: string };
      const confirmed = await b.request('/api/auth/oauth/link', { method: 'POST', token: owner.token, json: { link_token } });
      expect(confirmed.status).toBe(200);
      expect(await confirmed.json()).toMatchObject({ identities: [{ provider: 'google' }] });
      const again = (await (await new OAuthBrowser(b).signIn('google')).json()) as { user: { id: number } };
      expect(again.user.id).toBe(owner.id);
    });
  });
}
