import { beforeAll, describe, expect, test } from 'bun:test';
import type { Instance } from './support/cluster';
import { connectChat, graphqlOn, ok, signUpOn, twoInstances } from './support/cluster';
import type { Frame } from './support/sockets';

/**
 * Reactions across two real processes on one PostgreSQL database and one Redis: a change made on
 * one instance reaches the participants' sockets on the other, and its answer and the history agree
 * everywhere. Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('reactions on two instances', () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('reactions');
    beforeAll(() => ({ a, b } = cluster));

    const isReaction = (action: string, emoji: string) => (frame: Frame) => frame.type === 'reaction' && frame.action === action && frame.emoji === emoji;

    test('a reaction added on A reaches the sockets on B, one taken back on B reaches A; both see the same reactions', async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', {
          method: 'POST',
          token: alice.token,
          json: { name: 'reactions across', is_group: true, participant_usernames: [bob.username] },
        }),
      );
      const message = await ok<{ id: number }>(a.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: 'hi' } }));
      const bobOnB = await connectChat(b, bob);
      const aliceOnA = await connectChat(a, alice);

      const added = await ok(
        a.request(`/api/chats/${chat.id}/messages/${message.id}/reactions`, { method: 'POST', token: alice.token, json: { emoji: '🎉' } }),
      );
      expect(added).toEqual([{ emoji: '🎉', count: 1, user_ids: [alice.id] }]);
      expect(await bobOnB.next(isReaction('added', '🎉'))).toEqual({
        type: 'reaction',
        chat_id: chat.id,
        message_id: message.id,
        emoji: '🎉',
        user_id: alice.id,
        username: alice.username,
        action: 'added',
        reactions: added,
      });

      // Over /ws on B, then over GraphQL on B: each reaches alice's socket on A.
      bobOnB.send({ type: 'react', chat_id: chat.id, message_id: message.id, emoji: '👍' });
      expect(await aliceOnA.next(isReaction('added', '👍'))).toMatchObject({ user_id: bob.id, username: bob.username });
      const removal = await graphqlOn(
        b,
        bob.token,
        'mutation ($chatId: ID!, $messageId: ID!) { removeReaction(chatId: $chatId, messageId: $messageId, emoji: "👍") { emoji count userIds } }',
        { chatId: String(chat.id), messageId: String(message.id) },
      );
      expect(removal.removeReaction).toEqual([{ emoji: '🎉', count: 1, userIds: [String(alice.id)] }]);
      expect(await aliceOnA.next(isReaction('removed', '👍'))).toMatchObject({ user_id: bob.id, reactions: added });

      for (const [instance, user] of [
        [a, alice],
        [b, bob],
      ] as const) {
        const history = await ok<{ id: number; reactions: unknown }[]>(instance.request(`/api/chats/${chat.id}/messages`, { token: user.token }));
        expect(history).toEqual([expect.objectContaining({ id: message.id, reactions: added })]);
      }
    });
  });
}
