import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import { type ChatClient, type Frame, servedTestApp, socketKit, type SocketKit, withDeadline } from './support/sockets';
import type { chatJson } from '../src/serializers';

/**
 * The later API's `/ws` side over real sockets: both
 * generations of clients in one room, delivery to every socket of every participant, the exact
 * shape of each push, what a user who is no longer in a chat can do, and typing coalescing.
 * Everything waits on frames; "nothing arrived" is shown by a later frame the same socket must get.
 */

let fake: FakeGemini;
let t: TestApp;
let server: Server<unknown>;
let kit: SocketKit;

beforeAll(async () => {
  fake = await startFakeGemini();
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url });
  server = t.listen();
  kit = socketKit(server, t.app.services);
});
afterEach(() => kit.closeAll());
afterAll(async () => {
  await kit.dispose();
  await server.stop(true);
  await t.app.services.bot.idle();
  await t.cleanup();
  await fake.stop();
});

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
let seq = 0;
const unique = (label: string) => `${label}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

/** A chat as REST answers it. */
type ChatJson = ReturnType<typeof chatJson>;

async function okJson<T = any>(response: Response | Promise<Response>): Promise<T> {
  const res = await response;
  const body = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${body}`);
  return JSON.parse(body) as T;
}

/** A group chat of `owner` with `members` added at creation (POST /api/chats with participant_usernames). */
function groupChat(app: TestApp, owner: TestUser, members: TestUser[], name: string | null = unique('room')): Promise<ChatJson> {
  return okJson<ChatJson>(
    app.request('/api/chats', { method: 'POST', token: owner.token, json: { name, is_group: true, participant_usernames: members.map((m) => m.username) } }),
  );
}

const post = (user: TestUser, chatId: number, content: string) =>
  okJson<{ id: number }>(t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }));
const invite = (user: TestUser, chatId: number, invitee: TestUser) =>
  okJson(t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: user.token, json: { username: invitee.username } }));
const removeParticipant = (user: TestUser, chatId: number, userId: number) =>
  okJson(t.request(`/api/chats/${chatId}/participants/${userId}`, { method: 'DELETE', token: user.token }));
const leaveChat = (user: TestUser, chatId: number) => okJson(t.request(`/api/chats/${chatId}/leave`, { method: 'POST', token: user.token }));
const deleteChat = (user: TestUser, chatId: number) => okJson(t.request(`/api/chats/${chatId}`, { method: 'DELETE', token: user.token }));
const markRead = (user: TestUser, chatId: number) => okJson(t.request(`/api/chats/${chatId}/mark-read`, { method: 'POST', token: user.token }));

/** A `/ws` socket of `user`, open, with its memberships loaded (its first frame is answered after that). */
async function connect(user: TestUser, socketKitToUse: SocketKit = kit): Promise<ChatClient> {
  const socket = socketKitToUse.chat(user.token);
  await socket.opened;
  await socket.sync();
  return socket;
}

/** What a seed client reads of a `message` frame: the flat fields only. */
const seedView = (frame: Frame) => ({
  chat_id: frame.chat_id,
  message_id: frame.message_id,
  username: frame.username,
  content: frame.content,
  is_bot: frame.is_bot,
  created_at: frame.created_at,
});
/** What a later client reads of a `message` or `bot_stream` frame: the nested `message` only. */
const laterView = (frame: Frame) => frame.message as Record<string, unknown> | undefined;

const isMessageIn = (chatId: number) => (frame: Frame) => frame.type === 'message' && frame.chat_id === chatId;
const copiesOf = (socket: ChatClient, messageId: number) =>
  socket.frames.filter((frame) => frame.type === 'message' && (frame.message as { id?: number } | undefined)?.id === messageId).length;
const hasNested = (messageId: number) => (frame: Frame) => frame.type === 'message' && (frame.message as { id?: number } | undefined)?.id === messageId;

describe('one server for both generations of clients', () => {
  test('a seed client (flat fields) and a later client (nested message) in one room both see every message and the whole bot answer', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await groupChat(t, alice, [bob]);
    const seed = await connect(alice);
    const later = await connect(bob);
    await seed.join(chat.id);
    await later.join(chat.id);

    const answer = 'The answer, in three parts.';
    fake.reply({ kind: 'text', chunks: ['The answer, ', 'in three ', 'parts.'] });
    const contents = [unique('from-seed'), unique('from-rest'), '/bot tell me'];
    seed.send({ type: 'message', chat_id: chat.id, content: contents[0] });
    await seed.next((f) => f.type === 'message' && f.content === contents[0]);
    await post(bob, chat.id, contents[1]!);
    later.send({ type: 'message', chat_id: chat.id, content: contents[2] });

    const isCompletion = (f: Frame) => f.type === 'bot_stream' && f.chat_id === chat.id && f.is_complete === true;
    await seed.next(isCompletion, 'the seed client’s completion frame');
    await later.next(isCompletion, 'the later client’s completion frame');

    // The seed client, reading flat fields only.
    const seedMessages = seed.frames.filter((f) => f.type === 'message').map(seedView);
    expect(seedMessages.map((m) => m.content)).toEqual(contents);
    for (const message of seedMessages) {
      expect(message).toEqual({
        chat_id: chat.id,
        message_id: expect.any(Number),
        username: expect.any(String),
        content: expect.any(String),
        is_bot: false,
        created_at: expect.stringMatching(ISO_UTC),
      });
    }
    const seedBot = seed.frames.filter((f) => f.type === 'bot_stream');
    const deltas = seedBot.filter((f) => f.is_complete === false);
    expect(deltas.map((f) => f.chunk as string).join('')).toBe(answer);
    const completion = seedBot.at(-1)!;
    expect(completion).toMatchObject({ chat_id: chat.id, is_complete: true, full_response: answer });

    // The later client, reading the nested message only: the same messages, and each bot frame's
    // content is the whole text so far, the last one the whole answer.
    const laterMessages = later.frames.filter((f) => f.type === 'message').map(laterView);
    expect(laterMessages).toEqual(
      seedMessages.map((m, i) => ({
        id: m.message_id,
        chat_id: chat.id,
        user_id: [alice.id, bob.id, bob.id][i],
        username: [alice.username, bob.username, bob.username][i],
        content: m.content,
        is_bot: false,
        created_at: m.created_at,
        edited_at: null,
        reactions: [],
        attachments: [],
      })),
    );
    const laterBot = later.frames.filter((f) => f.type === 'bot_stream').map(laterView);
    expect(laterBot.length).toBeGreaterThan(1);
    expect(laterBot.at(-1)).toEqual({
      id: completion.message_id,
      chat_id: chat.id,
      user_id: null,
      username: 'gemini-ai',
      content: answer,
      is_bot: true,
      created_at: expect.stringMatching(ISO_UTC),
      edited_at: null,
      reactions: [],
      attachments: [],
    });
    for (const nested of laterBot) expect(answer.startsWith(nested!.content as string)).toBe(true);
    await t.app.services.bot.idle();
  });
});

describe('message delivery', () => {
  test('a message reaches every open socket of every participant, joined or not, once per socket; nobody else', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const carol = await signUp(t);
    const outsider = await signUp(t);
    const chat = await groupChat(t, alice, [bob, carol]);
    const aliceJoined = await connect(alice);
    const bobJoined = await connect(bob);
    const bobOther = await connect(bob);
    const carolUnjoined = await connect(carol);
    const stranger = await connect(outsider);
    await aliceJoined.join(chat.id);
    await bobJoined.join(chat.id);
    // Joining twice changes nothing.
    await bobJoined.join(chat.id);
    const participants = [aliceJoined, bobJoined, bobOther, carolUnjoined];

    aliceJoined.send({ type: 'message', chat_id: chat.id, content: unique('over-ws') });
    const first = await aliceJoined.next(isMessageIn(chat.id));
    const second = await post(carol, chat.id, unique('over-rest'));
    // A marker after both: once each socket has it, everything before it has arrived too.
    const marker = await post(bob, chat.id, unique('marker'));
    for (const socket of participants) await socket.next(hasNested(marker.id), 'the marker message');
    for (const socket of participants) {
      expect(copiesOf(socket, first.message_id as number)).toBe(1);
      expect(copiesOf(socket, second.id)).toBe(1);
      expect(copiesOf(socket, marker.id)).toBe(1);
    }
    await stranger.sync();
    expect(stranger.frames.filter((f) => f.type === 'message')).toEqual([]);
  });
});

describe('push frames, exact shapes', () => {
  test('chat_created to each user added at creation', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const bobSocket = await connect(bob);
    const chat = await groupChat(t, alice, [bob], unique('created'));
    const frame = await bobSocket.next('chat_created');
    expect(frame).toEqual({
      type: 'chat_created',
      chat: { id: chat.id, name: chat.name, owner_id: alice.id, created_at: chat.created_at, is_group: true },
      notification: `You've been added to a new chat by ${alice.username}`,
    });
    expect(chat.created_at).toMatch(ISO_UTC);
    // The new membership is live on the socket that heard of it.
    const message = await post(alice, chat.id, unique('first'));
    await bobSocket.next(hasNested(message.id), 'the first message of the new chat');
  });

  test("the creator's sockets already open get the new chat's messages without joining, and no chat_created", async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const aliceSockets = [await connect(alice), await connect(alice)];
    const bobSocket = await connect(bob);
    const chat = await groupChat(t, alice, [bob], unique('mine'));
    await bobSocket.next('chat_created');
    // Sent from Bob's socket and from Alice's own, as the original delivered them: to every open socket of every participant.
    bobSocket.send({ type: 'message', chat_id: chat.id, content: unique('from bob') });
    const fromBob = await bobSocket.next('message');
    aliceSockets[0]!.send({ type: 'message', chat_id: chat.id, content: unique('from alice') });
    const fromAlice = await bobSocket.next('message');
    for (const socket of aliceSockets) {
      await socket.next(hasNested(fromBob.message_id as number), "Bob's message");
      await socket.next(hasNested(fromAlice.message_id as number), 'her own message');
      await socket.sync();
      expect(socket.frames.filter((frame) => frame.type === 'chat_created')).toEqual([]);
    }
  });

  test('chat_invite: the flat fields, the chat and the notification ("a chat" without a name)', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const bobSocket = await connect(bob);
    for (const name of [unique('invited'), null]) {
      const chat = await groupChat(t, alice, [], name);
      await invite(alice, chat.id, bob);
      const frame = await bobSocket.next('chat_invite');
      expect(frame).toEqual({
        type: 'chat_invite',
        chat_id: chat.id,
        chat_name: name,
        invited_by: alice.username,
        chat: { id: chat.id, name, owner_id: alice.id, created_at: chat.created_at, is_group: true },
        notification: `${alice.username} added you to ${name ?? 'a chat'}`,
      });
    }
  });

  test('a removal: removed_from_chat to the removed user, user_left {type, chat_id, user_id, username} to the others', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const carol = await signUp(t);
    const chat = await groupChat(t, alice, [bob, carol], unique('removal'));
    const [aliceSocket, bobSocket, carolSocket] = await Promise.all([connect(alice), connect(bob), connect(carol)]);
    await removeParticipant(alice, chat.id, carol.id);
    expect(await carolSocket.next('removed_from_chat')).toEqual({
      type: 'removed_from_chat',
      chat_id: chat.id,
      notification: `You were removed from ${chat.name} by ${alice.username}`,
    });
    const userLeft = { type: 'user_left', chat_id: chat.id, user_id: carol.id, username: carol.username };
    expect(await bobSocket.next('user_left')).toEqual(userLeft);
    expect(await aliceSocket.next('user_left')).toEqual(userLeft);

    const unnamed = await groupChat(t, alice, [bob], null);
    await removeParticipant(alice, unnamed.id, bob.id);
    expect(await bobSocket.next('removed_from_chat')).toMatchObject({ notification: `You were removed from a chat by ${alice.username}` });
  });

  test('a leave: user_left with a notification to the others', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const carol = await signUp(t);
    const [aliceSocket, carolSocket] = await Promise.all([connect(alice), connect(carol)]);
    for (const name of [unique('leave'), null]) {
      const chat = await groupChat(t, alice, [bob, carol], name);
      await leaveChat(bob, chat.id);
      const expected = {
        type: 'user_left',
        chat_id: chat.id,
        user_id: bob.id,
        username: bob.username,
        notification: `${bob.username} left ${name ?? 'the chat'}`,
      };
      expect(await aliceSocket.next((f) => f.type === 'user_left' && f.chat_id === chat.id)).toEqual(expected);
      expect(await carolSocket.next((f) => f.type === 'user_left' && f.chat_id === chat.id)).toEqual(expected);
    }
  });

  test('chat_deleted to the other participants, not the owner', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const [aliceSocket, bobSocket] = await Promise.all([connect(alice), connect(bob)]);
    for (const name of [unique('deleted'), null]) {
      const chat = await groupChat(t, alice, [bob], name);
      await deleteChat(alice, chat.id);
      expect(await bobSocket.next('chat_deleted')).toEqual({
        type: 'chat_deleted',
        chat_id: chat.id,
        notification: `${name ?? 'Chat'} was deleted by ${alice.username}`,
      });
    }
    // A later event on alice's own topic: had she been told of a deletion, it would have come first.
    const other = await groupChat(t, bob, [alice]);
    await aliceSocket.next('chat_created');
    expect(other.id).toBeGreaterThan(0);
    expect(aliceSocket.frames.filter((f) => f.type === 'chat_deleted')).toEqual([]);
  });

  test('read_receipts_updated to every participant after mark-read; none when mark-read changes nothing', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await groupChat(t, alice, [bob]);
    const [aliceSocket, bobSocket] = await Promise.all([connect(alice), connect(bob)]);
    const first = await post(bob, chat.id, unique('read-me'));
    await markRead(alice, chat.id);
    for (const socket of [aliceSocket, bobSocket]) {
      const frame = await socket.next('read_receipts_updated');
      expect(frame).toEqual({
        type: 'read_receipts_updated',
        chat_id: chat.id,
        read_receipts: { [String(first.id)]: [{ user_id: alice.id, username: alice.username, read_at: expect.stringMatching(ISO_UTC) }] },
      });
    }
    // Nothing new: no push. Then something new, read: one push, which would come after the other.
    await markRead(alice, chat.id);
    const second = await post(bob, chat.id, unique('read-me-too'));
    await markRead(alice, chat.id);
    for (const socket of [aliceSocket, bobSocket]) {
      const frame = await socket.next('read_receipts_updated');
      expect(Object.keys(frame.read_receipts as object).sort()).toEqual([String(first.id), String(second.id)].sort());
      expect(socket.frames.filter((f) => f.type === 'read_receipts_updated')).toHaveLength(2);
    }
  });
});

const MESSAGE_ADDED = 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id content } }';

describe('a user no longer in a chat', () => {
  const cases: { how: string; end: (owner: TestUser, user: TestUser, chatId: number) => Promise<unknown>; notice: string; error: string }[] = [
    { how: 'removed', end: (owner, user, chatId) => removeParticipant(owner, chatId, user.id), notice: 'removed_from_chat', error: 'Not authorized' },
    { how: 'left', end: (_owner, user, chatId) => leaveChat(user, chatId), notice: '', error: 'Not authorized' },
    // The chat itself is gone: the same answer as for any chat that does not exist.
    { how: 'deleted', end: (owner, _user, chatId) => deleteChat(owner, chatId), notice: 'chat_deleted', error: 'Chat not found' },
  ];
  for (const { how, end, notice, error } of cases) {
    test(`${how}: message, join and typing get "${error}", the socket stays open, the room's messages stop, messageAdded completes`, async () => {
      const alice = await signUp(t);
      const bob = await signUp(t);
      const chat = await groupChat(t, alice, [bob]);
      const aliceSocket = await connect(alice);
      const bobJoined = await connect(bob);
      const bobUnjoined = await connect(bob);
      await aliceSocket.join(chat.id);
      await bobJoined.join(chat.id);
      const subscription = kit.graphql(bob.token).subscribe(MESSAGE_ADDED, { chatId: chat.id }, { field: 'messageAdded', ready: ['chat:message', chat.id] });
      await subscription.ready;
      const before = await post(alice, chat.id, unique('before'));
      for (const socket of [bobJoined, bobUnjoined]) await socket.next(hasNested(before.id), 'the message before');
      await subscription.next((m: { id: string }) => m.id === String(before.id), 'the message before, on graphql-ws');

      await end(alice, bob, chat.id);
      // The user event that ends the membership on the sockets: the leaver's own sockets get no frame
      // for it, so a frame answered after it stands in (the leave's HTTP answer came after the publish).
      if (notice) for (const socket of [bobJoined, bobUnjoined]) await socket.next(notice);
      expect(await withDeadline(subscription.done, () => 'messageAdded did not end')).toEqual({ kind: 'complete' });

      for (const socket of [bobJoined, bobUnjoined]) {
        for (const frame of [
          { type: 'message', chat_id: chat.id, content: unique('refused') },
          { type: 'join', chat_id: chat.id },
          { type: 'typing', chat_id: chat.id },
        ]) {
          socket.send(frame);
          expect(await socket.nextError()).toEqual({ type: 'error', error });
        }
        expect(socket.isClosed()).toBe(false);
      }

      if (how !== 'deleted') {
        aliceSocket.send({ type: 'message', chat_id: chat.id, content: unique('after') });
        const after = await aliceSocket.next((f) => f.type === 'message' && f.message_id !== before.id);
        // Published to the room's sockets at once: a frame answered later on bob's sockets comes after it.
        for (const socket of [bobJoined, bobUnjoined]) {
          await socket.sync();
          expect(copiesOf(socket, after.message_id as number)).toBe(0);
        }
      }
      const stored = await t.request(`/api/chats/${chat.id}/messages`, { token: alice.token });
      if (how === 'deleted') expect(stored.status).not.toBe(200);
      else expect(((await stored.json()) as { content: string }[]).some((m) => m.content.startsWith('refused'))).toBe(false);
    });
  }
});

describe('a removal between a membership check and the act on it', () => {
  /**
   * A chat of alice's with bob in it, bob's `/ws` socket (its `removed_from_chat` tells that the removal
   * reached this instance), and bob's next membership check of the chat held once it has passed:
   * `removeWhileHeld(act)` starts `act`, removes bob while its check is held, then lets it go on.
   */
  async function heldCheck() {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await groupChat(t, alice, [bob]);
    const bobSocket = await connect(bob);
    const { chats } = t.app.services;
    const check = chats.requireParticipant.bind(chats);
    const passed = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    let held = false;
    chats.requireParticipant = async (userId, chatId) => {
      const answer = await check(userId, chatId);
      if (chatId === chat.id && !held) {
        held = true;
        passed.resolve();
        await release.promise;
      }
      return answer;
    };
    const removeWhileHeld = async (act: () => void) => {
      try {
        act();
        await passed.promise;
        await removeParticipant(alice, chat.id, bob.id);
        await bobSocket.next('removed_from_chat');
      } finally {
        release.resolve();
        chats.requireParticipant = check;
      }
    };
    return { alice, bob, chat, bobSocket, removeWhileHeld };
  }

  test('a /ws join that read "a participant" before the removal is refused, and the room\'s messages stop', async () => {
    const { alice, chat, bobSocket, removeWhileHeld } = await heldCheck();
    await removeWhileHeld(() => bobSocket.send({ type: 'join', chat_id: chat.id }));
    expect(await bobSocket.nextError()).toEqual({ type: 'error', error: 'Not authorized' });
    const after = await post(alice, chat.id, unique('after the removal'));
    // Published to the room's sockets at once: a frame answered later on bob's socket comes after it.
    await bobSocket.sync();
    expect(copiesOf(bobSocket, after.id)).toBe(0);
  });

  test('a messageAdded subscription whose check passed before the removal ends as it starts, with nothing delivered', async () => {
    const { bob, chat, removeWhileHeld } = await heldCheck();
    let subscription!: ReturnType<ReturnType<SocketKit['graphql']>['subscribe']>;
    await removeWhileHeld(() => (subscription = kit.graphql(bob.token).subscribe(MESSAGE_ADDED, { chatId: chat.id }, { field: 'messageAdded' })));
    expect(await withDeadline(subscription.done, () => 'messageAdded did not end')).toEqual({ kind: 'complete' });
    expect(subscription.events).toEqual([]);
  });
});

describe('typing coalescing', () => {
  const limited = servedTestApp({ WS_RATE_LIMIT: '5' });

  test('a burst of 50 typing frames is one typing notice to the others and leaves the rate budget for a message', async () => {
    const alice = await signUp(limited.t);
    const bob = await signUp(limited.t);
    const chat = await groupChat(limited.t, alice, [bob]);
    const aliceSocket = limited.kit.chat(alice.token);
    const bobSocket = limited.kit.chat(bob.token);
    await Promise.all([aliceSocket.opened, bobSocket.opened]);
    // One frame each before the burst (a join): 4 of the 5 left.
    await aliceSocket.join(chat.id);
    await bobSocket.join(chat.id);

    for (let i = 0; i < 50; i++) aliceSocket.send({ type: 'typing', chat_id: chat.id });
    const content = unique('after-typing');
    aliceSocket.send({ type: 'message', chat_id: chat.id, content });
    const echo = await aliceSocket.next((f) => f.type === 'error' || (f.type === 'message' && f.content === content), 'the message after the burst');
    expect(echo).toMatchObject({ type: 'message', content });
    // The message reached bob; a typing notice of the burst would have been published before it.
    await bobSocket.next((f) => f.type === 'message' && f.content === content, 'the message on the other socket');
    expect(bobSocket.frames.filter((f) => f.type === 'typing')).toEqual([{ type: 'typing', chat_id: chat.id, username: alice.username }]);
    expect(aliceSocket.frames.filter((f) => f.type === 'error' && f.error !== 'Chat not found')).toEqual([]);
    expect(aliceSocket.frames.filter((f) => f.type === 'typing')).toEqual([]);
  });
});
