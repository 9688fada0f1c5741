import { beforeAll, describe, expect, test } from 'bun:test';
import { PRESENCE_LEASE_MS, PRESENCE_TICK_MS } from '../src/services/presence-redis';
import type { ClusterUser, Instance } from './support/cluster';
import { connectChat, eventually, graphqlOn, ok, signUpOn, twoInstances } from './support/cluster';
import type { Frame } from './support/sockets';

/**
 * Presence across two real processes on one PostgreSQL database and one Redis: a user's socket on
 * one instance makes them online as every instance sees it, a second socket on the other changes
 * nothing, and an instance killed with SIGKILL does not leave its users online: they go offline
 * within its lease (and the grace), announced once by the instance that is left. Runs only when
 * TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

const GRACE_MS = 50;

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('presence on two instances', () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('presence', { PRESENCE_GRACE_MS: String(GRACE_MS) });
    beforeAll(() => ({ a, b } = cluster));

    const presenceOf = (user: ClusterUser) => (frame: Frame) => frame.type === 'presence' && frame.user_id === user.id;
    const participant = async (instance: Instance, viewer: ClusterUser, chatId: number, user: ClusterUser) =>
      (
        await ok<{ id: number; online: boolean; last_seen_at: string | null }[]>(instance.request(`/api/chats/${chatId}/participants`, { token: viewer.token }))
      ).find((p) => p.id === user.id);

    test('online as seen from either instance; a killed instance leaves nobody online past its lease, and the change is pushed once', async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'presence', is_group: true, participant_usernames: [bob.username] } }),
      );
      const bobOnB = await connectChat(b, bob);

      // Alice's socket on A: B pushes it to bob and reports it.
      const aliceOnA = await connectChat(a, alice);
      expect(await bobOnB.next(presenceOf(alice))).toEqual({
        type: 'presence',
        user_id: alice.id,
        username: alice.username,
        status: 'online',
        last_seen_at: null,
      });
      expect(await participant(b, bob, chat.id, alice)).toMatchObject({ online: true, last_seen_at: null });
      const viaGraphql = await graphqlOn(b, bob.token, 'query ($id: ID!) { chat(id: $id) { participants { id online lastSeenAt } } }', { id: chat.id });
      expect(viaGraphql.chat.participants).toContainEqual({ id: String(alice.id), online: true, lastSeenAt: null });

      // A second socket on B, opened and closed, changes nothing: her socket on A still counts.
      const aliceOnB = await connectChat(b, alice);
      await aliceOnB.close();
      expect(await participant(b, bob, chat.id, alice)).toMatchObject({ online: true });

      // A dies without a word: alice's socket there is gone with it.
      const killedAt = Date.now();
      a.proc.kill(9);
      await a.exited;
      await aliceOnA.closed;
      const offline = await eventually(() => bobOnB.next(presenceOf(alice)), PRESENCE_LEASE_MS + PRESENCE_TICK_MS + GRACE_MS + 5_000);
      expect(offline).toMatchObject({ status: 'offline', user_id: alice.id });
      // Last seen at A's last lease renewal, before the kill; written before it was pushed.
      const lastSeenAt = offline.last_seen_at as string;
      expect(Date.parse(lastSeenAt)).toBeLessThanOrEqual(killedAt);
      expect(await participant(b, bob, chat.id, alice)).toMatchObject({ online: false, last_seen_at: lastSeenAt });

      // Back on B: online again, and every change so far reached bob exactly once.
      await connectChat(b, alice);
      expect(await bobOnB.next(presenceOf(alice))).toMatchObject({ status: 'online' });
      await bobOnB.sync();
      expect(bobOnB.frames.filter(presenceOf(alice)).map((frame) => frame.status)).toEqual(['online', 'offline', 'online']);
    }, 60_000);
  });
}
