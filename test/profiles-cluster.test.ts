import { beforeAll, describe, expect, test } from 'bun:test';
import type { Instance } from './support/cluster';
import { connectChat, ok, signUpOn, twoInstances } from './support/cluster';
import { media } from './support/media';

/**
 * Each instance caches the user behind a token for a minute. A profile change made on one instance
 * drops that cache on every other one through the pub/sub: the other serves the new display name and
 * avatar as soon as it has pushed the change (`user_updated`), not when its cached entry expires.
 * Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('profile changes on two instances', () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('profiles');
    beforeAll(() => ({ a, b } = cluster));

    test('a display name, bio or avatar changed on A is what B serves right after it pushed the change', async () => {
      const alice = await signUpOn(a, 'alice');
      const me = () => ok<{ display_name: string | null; avatar_url: string | null }>(b.request('/api/auth/me', { token: alice.token }));
      // B caches Alice as she is now.
      expect(await me()).toMatchObject({ display_name: null, avatar_url: null });
      const socket = await connectChat(b, alice);

      await ok(a.request('/api/auth/me', { method: 'PATCH', token: alice.token, json: { display_name: 'Alice A.', bio: 'Designs things' } }));
      await socket.next('user_updated');
      expect(await me()).toMatchObject({ display_name: 'Alice A.' });

      const profile = await ok<{ avatar_url: string }>(
        a.request('/api/auth/me/avatar', { method: 'PUT', token: alice.token, headers: { 'content-type': 'image/png' }, body: media.png() }),
      );
      await socket.next('user_updated');
      expect(await me()).toMatchObject({ avatar_url: profile.avatar_url });

      await ok(a.request('/api/auth/me/avatar', { method: 'DELETE', token: alice.token }));
      await socket.next('user_updated');
      expect(await me()).toMatchObject({ display_name: 'Alice A.', avatar_url: null });
    }, 30_000);
  });
}
