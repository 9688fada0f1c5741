import { beforeAll, describe, expect, test } from 'bun:test';
import type { ClusterUser, Instance } from './support/cluster';
import { connectChat, ok, signUpOn, twoInstances } from './support/cluster';
import type { ChatClient, Frame } from './support/sockets';

/**
 * The later API's `/ws` side across two real processes on one PostgreSQL database and one Redis:
 * a removal made on one instance holds on sockets connected to the other, and messages reach
 * unjoined sockets on the other instance once. Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe("the later API's /ws on two instances", () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('later');
    beforeAll(() => ({ a, b } = cluster));

    const post = (instance: Instance, user: ClusterUser, chatId: number, content: string) =>
      ok<{ id: number }>(instance.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }));

    const hasNested = (messageId: number) => (frame: Frame) => frame.type === 'message' && (frame.message as { id?: number } | undefined)?.id === messageId;
    const copiesOf = (socket: ChatClient, messageId: number) => socket.frames.filter(hasNested(messageId)).length;

    test('removed on A: the socket on B stops receiving the room and gets "Not authorized"; a message sent on B reaches an unjoined socket on A once', async () => {
      const [alice, bob, carol] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob'), signUpOn(a, 'carol')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', {
          method: 'POST',
          token: alice.token,
          json: { name: 'two instances', is_group: true, participant_usernames: [bob.username, carol.username] },
        }),
      );
      const aliceOnB = await connectChat(b, alice);
      const bobOnB = await connectChat(b, bob);
      const carolOnA = await connectChat(a, carol);
      await aliceOnB.join(chat.id);
      await bobOnB.join(chat.id);

      // Sent on B, reaching carol's socket on A, which never joined, once.
      aliceOnB.send({ type: 'message', chat_id: chat.id, content: 'sent on B' });
      const sent = await aliceOnB.next((f) => f.type === 'message' && f.content === 'sent on B');
      const marker = await post(b, alice, chat.id, 'marker on B');
      await carolOnA.next(hasNested(marker.id), 'the marker on A');
      expect(copiesOf(carolOnA, sent.message_id as number)).toBe(1);
      expect(copiesOf(carolOnA, marker.id)).toBe(1);
      await bobOnB.next(hasNested(marker.id), "the marker on bob's socket");

      // Removed on A: the socket on B hears it, and the room is over for it.
      await ok(a.request(`/api/chats/${chat.id}/participants/${bob.id}`, { method: 'DELETE', token: alice.token }));
      await bobOnB.next('removed_from_chat');
      bobOnB.send({ type: 'message', chat_id: chat.id, content: 'after removal' });
      expect(await bobOnB.nextError()).toEqual({ type: 'error', error: 'Not authorized' });
      expect(bobOnB.isClosed()).toBe(false);

      const after = await post(a, alice, chat.id, 'after the removal');
      // Both sockets on B take the room's messages from the same bridge: once alice's has it, bob's would have it before a later answer.
      await aliceOnB.next(hasNested(after.id), "the message after the removal on alice's socket on B");
      await carolOnA.next(hasNested(after.id), "the message after the removal on carol's socket on A");
      await bobOnB.sync();
      expect(copiesOf(bobOnB, after.id)).toBe(0);
      const history = await ok<{ content: string }[]>(a.request(`/api/chats/${chat.id}/messages`, { token: alice.token }));
      expect(history.map((m) => m.content)).toEqual(['sent on B', 'marker on B', 'after the removal']);
    });

    test("created on A: the creator's socket already open on B gets the chat's messages without joining", async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const aliceOnB = await connectChat(b, alice);
      const bobOnB = await connectChat(b, bob);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'created on A', is_group: true, participant_usernames: [bob.username] } }),
      );
      await bobOnB.next('chat_created');
      // Bob's socket took the chat in on hearing of it; Alice's heard `joined_chat` on the same topic before any message was sent.
      const message = await post(a, bob, chat.id, 'to the creator on B');
      await aliceOnB.next(hasNested(message.id), "the message on the creator's socket on B");
      await aliceOnB.sync();
      expect(copiesOf(aliceOnB, message.id)).toBe(1);
      expect(aliceOnB.frames.filter((frame) => frame.type === 'chat_created')).toEqual([]);
    });
  });
}
