import { describe, expect, test } from 'bun:test';
import { CATCH_UP_LIMIT } from '../src/services/message.service';
import type { messageJson } from '../src/serializers';
import { signUp, type TestUser } from './support/app';
import { groupRoom, storeMessages } from './support/rooms';
import { type ChatClient, type Frame, servedTestApp } from './support/sockets';

/**
 * Edits and deletions over real sockets: `/ws` frames in and out (every participant's sockets,
 * joined or not, get the pushes; refusals are error frames on a socket that stays open), GraphQL's
 * `messageChanged` over graphql-ws, and catch-up by cursor bringing back the changes a client missed.
 * Everything waits on frames; "nothing arrived" is shown by a later frame the same socket must get.
 */

const served = servedTestApp();

type MessageJson = ReturnType<typeof messageJson>;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const CHANGE_TYPES = ['message', 'message_updated', 'message_deleted', 'history_gap'];

/** `count` fresh users. */
function users(count: 2): Promise<[TestUser, TestUser]>;
function users(count: 3): Promise<[TestUser, TestUser, TestUser]>;
function users(count: 4): Promise<[TestUser, TestUser, TestUser, TestUser]>;
function users(count: number): Promise<TestUser[]> {
  return Promise.all(Array.from({ length: count }, () => signUp(served.t)));
}

async function post(user: TestUser, chatId: number, content: string): Promise<MessageJson> {
  const response = await served.t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });
  expect(response.status).toBe(200);
  return (await response.json()) as MessageJson;
}

async function restEdit(user: TestUser, chatId: number, messageId: number, content: string): Promise<MessageJson> {
  const response = await served.t.request(`/api/chats/${chatId}/messages/${messageId}`, { method: 'PATCH', token: user.token, json: { content } });
  expect(response.status).toBe(200);
  return (await response.json()) as MessageJson;
}

async function restDelete(user: TestUser, chatId: number, messageId: number): Promise<void> {
  const response = await served.t.request(`/api/chats/${chatId}/messages/${messageId}`, { method: 'DELETE', token: user.token });
  expect(response.status).toBe(200);
}

/** A `/ws` socket of `user`, open, with its memberships loaded. */
async function connect(user: TestUser): Promise<ChatClient> {
  const socket = served.kit.chat(user.token);
  await socket.opened;
  await socket.sync();
  return socket;
}

const updatedFrame = (message: MessageJson) => ({
  type: 'message_updated',
  chat_id: message.chat_id,
  message_id: message.id,
  username: message.username,
  content: message.content,
  is_bot: message.is_bot,
  created_at: message.created_at,
  attachments: message.attachments,
  message,
});
const deletedFrame = (chatId: number, messageId: number) => ({ type: 'message_deleted', chat_id: chatId, message_id: messageId });
const isUpdateOf = (messageId: number) => (frame: Frame) => frame.type === 'message_updated' && frame.message_id === messageId;
const isDeletionOf = (messageId: number) => (frame: Frame) => frame.type === 'message_deleted' && frame.message_id === messageId;
/** A socket's message-related frames of one chat, in arrival order. */
const roomFrames = (socket: ChatClient, chatId: number) => socket.frames.filter((frame) => CHANGE_TYPES.includes(frame.type) && frame.chat_id === chatId);

describe('/ws', () => {
  test('an edit frame reaches every socket of every participant, joined or not, the sender included, in the `message` frame’s fields', async () => {
    const [alice, bob, carol, outsider] = await users(4);
    const chatId = await groupRoom(served.t, alice, [bob, carol], 'ws edit');
    const ownRoom = await groupRoom(served.t, outsider, [], 'elsewhere');
    const [aliceSocket, bobSocket, carolSocket, outsiderSocket] = await Promise.all([connect(alice), connect(bob), connect(carol), connect(outsider)]);
    await aliceSocket.join(chatId);
    await bobSocket.join(chatId);
    const original = await post(alice, chatId, 'first version');

    aliceSocket.send({ type: 'edit', chat_id: chatId, message_id: original.id, content: 'second version' });
    const frames = await Promise.all([aliceSocket, bobSocket, carolSocket].map((socket) => socket.next(isUpdateOf(original.id))));
    const [stored] = (await (await served.t.request(`/api/chats/${chatId}/messages`, { token: bob.token })).json()) as MessageJson[];
    expect(stored).toEqual({ ...original, content: 'second version', edited_at: expect.stringMatching(ISO_UTC) });
    for (const frame of frames) expect(frame).toEqual(updatedFrame(stored!));

    aliceSocket.send({ type: 'delete', chat_id: chatId, message_id: original.id });
    for (const socket of [aliceSocket, bobSocket, carolSocket]) expect(await socket.next(isDeletionOf(original.id))).toEqual(deletedFrame(chatId, original.id));

    // Nothing of the room reached the outsider: a later message of their own room comes first.
    const marker = await post(outsider, ownRoom, 'marker');
    await outsiderSocket.next((frame) => frame.type === 'message' && frame.message_id === marker.id);
    expect(outsiderSocket.frames.filter((frame) => frame.chat_id === chatId)).toEqual([]);
  });

  test('edits and deletions made over REST are pushed the same way, in the order they were made', async () => {
    const [alice, bob] = await users(2);
    const chatId = await groupRoom(served.t, alice, [bob], 'rest pushes');
    const bobSocket = await connect(bob);
    const message = await post(alice, chatId, 'one');
    const edited = await restEdit(alice, chatId, message.id, 'two');
    const again = await restEdit(alice, chatId, message.id, 'three');
    await restDelete(alice, chatId, message.id);
    await bobSocket.next(isDeletionOf(message.id));
    expect(roomFrames(bobSocket, chatId).map((frame) => [frame.type, frame.content])).toEqual([
      ['message', 'one'],
      ['message_updated', 'two'],
      ['message_updated', 'three'],
      ['message_deleted', undefined],
    ]);
    expect(roomFrames(bobSocket, chatId)[1]).toEqual(updatedFrame(edited));
    expect(roomFrames(bobSocket, chatId)[2]).toEqual(updatedFrame(again));
  });

  test('every refusal is an error frame, and the socket carries on', async () => {
    const [alice, bob, outsider] = await users(3);
    const chatId = await groupRoom(served.t, alice, [bob], 'ws refusals');
    const alices = await post(alice, chatId, "alice's");
    const bobs = await post(bob, chatId, "bob's");
    const socket = await connect(bob);
    const refusals: [Record<string, unknown>, string][] = [
      [{ type: 'edit', chat_id: chatId, message_id: alices.id, content: 'x' }, 'Only its author can edit a message'],
      [{ type: 'delete', chat_id: chatId, message_id: alices.id }, "Only its author or the chat's owner can delete a message"],
      [{ type: 'edit', chat_id: chatId, message_id: bobs.id, content: ' ' }, 'content: Message content must not be empty'],
      [{ type: 'edit', chat_id: chatId, message_id: bobs.id }, 'content: Field required'],
      [{ type: 'delete', chat_id: chatId }, 'message_id: Field required'],
      [{ type: 'delete', chat_id: chatId, message_id: 'first' }, 'message_id: Input should be a valid integer, unable to parse string as an integer'],
      [{ type: 'edit', chat_id: chatId, message_id: 2_000_000_000, content: 'x' }, 'Message not found'],
      [{ type: 'delete', chat_id: 2_000_000_000, message_id: bobs.id }, 'Chat not found'],
    ];
    for (const [frame, error] of refusals) {
      socket.send(frame);
      expect(await socket.nextError()).toEqual({ type: 'error', error });
    }
    const outsiderSocket = await connect(outsider);
    outsiderSocket.send({ type: 'delete', chat_id: chatId, message_id: bobs.id });
    expect(await outsiderSocket.nextError()).toEqual({ type: 'error', error: 'Not authorized' });

    socket.send({ type: 'delete', chat_id: chatId, message_id: bobs.id });
    await socket.next(isDeletionOf(bobs.id));
    socket.send({ type: 'delete', chat_id: chatId, message_id: bobs.id });
    expect(await socket.nextError()).toEqual({ type: 'error', error: 'Message not found' });
    expect(socket.isClosed()).toBe(false);
    expect(roomFrames(socket, chatId).filter((frame) => frame.type !== 'message')).toEqual([deletedFrame(chatId, bobs.id)]);
  });
});

describe('GraphQL messageChanged', () => {
  const MESSAGE_CHANGED = `subscription ($chatId: ID!, $after: ID) {
    messageChanged(chatId: $chatId, after: $after) {
      __typename
      ... on MessageUpdatedEvent { message { id content editedAt username readBy { username } } }
      ... on MessageDeletedEvent { chatId messageId }
    }
  }`;

  test('a participant hears of each edit (the message as it is now, read receipts and all) and each deletion', async () => {
    const [alice, bob] = await users(2);
    const chatId = await groupRoom(served.t, alice, [bob], 'graphql changes');
    const message = await post(alice, chatId, 'draft');
    await served.t.request(`/api/chats/${chatId}/mark-read`, { method: 'POST', token: bob.token });
    const subscription = served.kit.graphql(bob.token).subscribe(MESSAGE_CHANGED, { chatId }, { field: 'messageChanged', ready: ['chat:change', chatId] });
    await subscription.ready;
    const edited = await restEdit(alice, chatId, message.id, 'final');
    // The edit's event reads the read receipts from the database: a deletion committed before that read
    // would make it NOT_FOUND (reload), as a message deleted since is. Here the edit is read first.
    await subscription.next((event) => event.__typename === 'MessageUpdatedEvent');
    await restDelete(alice, chatId, message.id);
    await subscription.next((event) => event.__typename === 'MessageDeletedEvent');
    expect(subscription.events).toEqual([
      {
        __typename: 'MessageUpdatedEvent',
        message: { id: String(message.id), content: 'final', editedAt: edited.edited_at, username: alice.username, readBy: [{ username: bob.username }] },
      },
      { __typename: 'MessageDeletedEvent', chatId: String(chatId), messageId: String(message.id) },
    ]);
    expect(subscription.errors).toEqual([]);
  });

  test('a non-member is FORBIDDEN; a participant removed from the chat stops hearing of it', async () => {
    const [alice, bob, outsider] = await users(3);
    const chatId = await groupRoom(served.t, alice, [bob], 'graphql membership');
    const refused = served.kit.graphql(outsider.token).subscribe(MESSAGE_CHANGED, { chatId }, { field: 'messageChanged' });
    await refused.done;
    expect(refused.errors.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);

    const subscription = served.kit.graphql(bob.token).subscribe(MESSAGE_CHANGED, { chatId }, { field: 'messageChanged', ready: ['chat:change', chatId] });
    await subscription.ready;
    const response = await served.t.request(`/api/chats/${chatId}/participants/${bob.id}`, { method: 'DELETE', token: alice.token });
    expect(response.status).toBe(200);
    expect(await subscription.done).toEqual({ kind: 'complete' });
    expect(subscription.events).toEqual([]);
  });
});

describe('catch-up by cursor', () => {
  /**
   * A room where bob had everything up to `seen`, then, while he had no socket: an old message
   * edited, another deleted, two new ones of which one was edited and one deleted.
   */
  async function roomWithMissedChanges(label: string) {
    const [alice, bob] = await users(2);
    const chatId = await groupRoom(served.t, alice, [bob], label);
    const edited = await post(alice, chatId, 'old, to be edited');
    const deleted = await post(alice, chatId, 'old, to be deleted');
    const seen = await post(alice, chatId, 'the last one bob saw');
    const editedNow = await restEdit(alice, chatId, edited.id, 'old, edited while bob was away');
    await restDelete(alice, chatId, deleted.id);
    const fresh = await post(alice, chatId, 'new, to be edited');
    const freshNow = await restEdit(alice, chatId, fresh.id, 'new, edited while bob was away');
    const freshGone = await post(alice, chatId, 'new, deleted while bob was away');
    await restDelete(alice, chatId, freshGone.id);
    return { alice, bob, chatId, seen, edited, editedNow, deleted, fresh, freshNow, freshGone };
  }

  test('/ws join with after: the missed messages as they are now, then the missed edits and deletions, then live changes, none dropped', async () => {
    const room = await roomWithMissedChanges('ws catch-up');
    const socket = await connect(room.bob);
    socket.send({ type: 'join', chat_id: room.chatId, after: room.seen.id });
    await socket.next(isDeletionOf(room.deleted.id));
    expect(roomFrames(socket, room.chatId)).toEqual([
      { ...updatedFrame(room.freshNow), type: 'message' },
      updatedFrame(room.editedNow),
      deletedFrame(room.chatId, room.deleted.id),
    ]);

    // Live edits of a message the replay carried, and of an older one: both arrive.
    await socket.sync();
    const freshLater = await restEdit(room.alice, room.chatId, room.fresh.id, 'new, edited once more');
    const editedLater = await restEdit(room.alice, room.chatId, room.edited.id, 'old, edited once more');
    await socket.next((frame) => isUpdateOf(room.edited.id)(frame) && frame.content === editedLater.content);
    expect(roomFrames(socket, room.chatId).slice(3)).toEqual([updatedFrame(freshLater), updatedFrame(editedLater)]);
  });

  test('/ws: a change made while the socket switches to its catch-up stream is replayed, also of a message it had live', async () => {
    const [alice, bob] = await users(2);
    const chatId = await groupRoom(served.t, alice, [bob], 'switching');
    const seen = await post(alice, chatId, 'the last one bob saw');
    const socket = await connect(bob);
    const live = await post(alice, chatId, 'reached the socket live');
    await socket.next((frame) => frame.type === 'message' && frame.message_id === live.id);
    const { messages } = served.t.app.services;
    const catchUp = messages.catchUp;
    // Edited when the socket has left the room's topic and its catch-up stream does not listen yet.
    let edited: MessageJson | undefined;
    messages.catchUp = async (...args) => {
      edited = await restEdit(alice, chatId, live.id, 'edited as the socket switched');
      return catchUp.apply(messages, args);
    };
    try {
      socket.send({ type: 'join', chat_id: chatId, after: seen.id });
      await socket.next(isUpdateOf(live.id));
    } finally {
      messages.catchUp = catchUp;
    }
    expect(roomFrames(socket, chatId)).toEqual([{ ...updatedFrame(live), type: 'message' }, updatedFrame(edited!)]);
  });

  test('GraphQL messageChanged(after): every change made since that message existed, then live ones', async () => {
    const room = await roomWithMissedChanges('graphql catch-up');
    const subscription = served.kit
      .graphql(room.bob.token)
      .subscribe(
        'subscription ($chatId: ID!, $after: ID) { messageChanged(chatId: $chatId, after: $after) { ... on MessageUpdatedEvent { message { id content } } ... on MessageDeletedEvent { messageId } } }',
        { chatId: room.chatId, after: room.seen.id },
        { field: 'messageChanged', ready: ['chat:change', room.chatId] },
      );
    await subscription.ready;
    const live = await restEdit(room.alice, room.chatId, room.edited.id, 'edited live');
    await subscription.next((event) => event.message?.content === live.content);
    expect(subscription.events).toEqual([
      { message: { id: String(room.edited.id), content: room.editedNow.content } },
      { messageId: String(room.deleted.id) },
      // Newer than the cursor too: a client resuming messageAdded beside it may have read them before they changed.
      { message: { id: String(room.fresh.id), content: room.freshNow.content } },
      { messageId: String(room.freshGone.id) },
      { message: { id: String(room.edited.id), content: 'edited live' } },
    ]);
  });

  test('/ws: more than CATCH_UP_LIMIT missed changes start with a history_gap naming the messages to reload, then the newest of them', async () => {
    const [alice, bob] = await users(2);
    const chatId = await groupRoom(served.t, alice, [bob], 'change gap');
    const ids = await storeMessages(served.t, alice, chatId, CATCH_UP_LIMIT + 2);
    const seen = ids.at(-1)!;
    // Every one edited while `seen` was the newest message, as so many edits would have marked them.
    await served.t.app.services.db
      .$executeRaw`UPDATE messages SET content = 'edited', edited_at = ${new Date()}, change_mark = ${seen} WHERE chat_id = ${chatId}`;
    const socket = await connect(bob);
    socket.send({ type: 'join', chat_id: chatId, after: seen });
    await socket.next(isUpdateOf(seen));
    const frames = roomFrames(socket, chatId);
    expect(frames[0]).toEqual({ type: 'history_gap', chat_id: chatId, after: 0, before: seen + 1 });
    expect(frames.slice(1).map((frame) => [frame.type, frame.message_id, frame.content])).toEqual(ids.slice(2).map((id) => ['message_updated', id, 'edited']));
    const live = await post(alice, chatId, 'after the gap');
    await socket.next((frame) => frame.type === 'message' && frame.message_id === live.id);
  });
});
