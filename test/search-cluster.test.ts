import { beforeAll, describe, expect, test } from 'bun:test';
import type { ClusterUser, Instance } from './support/cluster';
import { graphqlOn, ok, signUpOn, twoInstances } from './support/cluster';

/**
 * Message search across two real processes on one PostgreSQL database and one Redis: whichever
 * instance a message is sent, edited or deleted on, every instance's search agrees at once, and a
 * removal made on one instance hides the chat's messages from searches on the other. Runs only when
 * TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

interface Hit {
  chat_id: number;
  message_id: number;
  content: string;
}

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('message search on two instances', () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('search');
    beforeAll(() => ({ a, b } = cluster));

    const search = (instance: Instance, user: ClusterUser, q: string) =>
      ok<Hit[]>(instance.request(`/api/messages/search?q=${encodeURIComponent(q)}`, { token: user.token }));

    test('a message sent on A is found on B; edited on B, found by its new words on A; deleted on A, gone on B', async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'search across', is_group: true, participant_usernames: [bob.username] } }),
      );
      const message = await ok<{ id: number }>(
        a.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: 'the quarterly aardvark report' } }),
      );

      expect(await search(b, bob, 'aardvark')).toMatchObject([{ chat_id: chat.id, message_id: message.id, content: 'the quarterly aardvark report' }]);

      await ok(
        b.request(`/api/chats/${chat.id}/messages/${message.id}`, { method: 'PATCH', token: alice.token, json: { content: 'the yearly pangolin report' } }),
      );
      expect(await search(a, alice, 'aardvark')).toEqual([]);
      const found = await graphqlOn<{ searchMessages: { edges: { node: { messageId: string; content: string } }[] } }>(
        a,
        bob.token,
        'query ($q: String!) { searchMessages(query: $q) { edges { node { messageId content } } } }',
        { q: 'pangolin' },
      );
      expect(found.searchMessages.edges.map((edge) => edge.node)).toEqual([{ messageId: String(message.id), content: 'the yearly pangolin report' }]);

      await ok(a.request(`/api/chats/${chat.id}/messages/${message.id}`, { method: 'DELETE', token: alice.token }));
      expect(await search(b, bob, 'pangolin')).toEqual([]);
    });

    test('someone removed from a chat on A no longer finds its messages on B', async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', {
          method: 'POST',
          token: alice.token,
          json: { name: 'search removal', is_group: true, participant_usernames: [bob.username] },
        }),
      );
      await ok(b.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: bob.token, json: { content: 'a wombat sighting' } }));
      expect(await search(b, bob, 'wombat')).toHaveLength(1);

      await ok(a.request(`/api/chats/${chat.id}/participants/${bob.id}`, { method: 'DELETE', token: alice.token }));
      expect(await search(b, bob, 'wombat')).toEqual([]);
      expect(await search(b, alice, 'wombat')).toHaveLength(1);
    });
  });
}
