import { describe, expect, test } from 'bun:test';
import { AI_CHAT_GREETING } from '../src/services/chat.service';
import { signUp, type TestUser } from './support/app';
import { servedTestApp } from './support/sockets';

/**
 * The later API through GraphQL: the same service calls as REST (test/later-api.test.ts), their
 * error codes, the chat list's activity fields, read receipts on messages, and the viewer's own
 * events over graphql-ws.
 */

const served = servedTestApp();

interface GraphQLError {
  message: string;
  extensions?: { code?: string };
}

async function gql(query: string, variables: Record<string, unknown>, user: TestUser) {
  const response = await served.t.request('/graphql', { method: 'POST', json: { query, variables }, token: user.token });
  return (await response.json()) as { data?: any; errors?: GraphQLError[] };
}

async function ok(query: string, variables: Record<string, unknown>, user: TestUser) {
  const body = await gql(query, variables, user);
  expect(body.errors).toBeUndefined();
  return body.data;
}

/** The one error of an operation that must fail, as `[code, message]`. */
async function fails(query: string, variables: Record<string, unknown>, user: TestUser): Promise<[string | undefined, string]> {
  const body = await gql(query, variables, user);
  expect(body.errors).toHaveLength(1);
  return [body.errors![0]!.extensions?.code, body.errors![0]!.message];
}

const CREATE = `mutation ($name: String, $isGroup: Boolean, $isAiChat: Boolean, $participantUsernames: [String!]) {
  createChat(name: $name, isGroup: $isGroup, isAiChat: $isAiChat, participantUsernames: $participantUsernames) {
    id name isGroup owner { username } participants { username }
  }
}`;
const SEND = 'mutation ($chatId: ID!, $content: String!) { sendMessage(chatId: $chatId, content: $content) { id createdAt } }';
const REMOVE = 'mutation ($chatId: ID!, $userId: ID!) { removeParticipant(chatId: $chatId, userId: $userId) }';
const LEAVE = 'mutation ($chatId: ID!) { leaveChat(chatId: $chatId) }';
const DELETE = 'mutation ($chatId: ID!) { deleteChat(chatId: $chatId) }';
const MARK_READ = 'mutation ($chatId: ID!) { markChatRead(chatId: $chatId) }';

async function createChat(owner: TestUser, variables: Record<string, unknown> = {}) {
  return (await ok(CREATE, { isGroup: true, ...variables }, owner)).createChat as { id: string; name: string | null; participants: { username: string }[] };
}
const send = async (user: TestUser, chatId: string, content: string) =>
  (await ok(SEND, { chatId, content }, user)).sendMessage as { id: string; createdAt: string };

describe('queries and mutations', () => {
  test('searchUsers finds by username or email, ignoring case, without the caller', async () => {
    const tag = crypto.randomUUID().slice(0, 6);
    const [caller, found] = await Promise.all([signUp(served.t, `gq_caller_${tag}`), signUp(served.t, `gq_Found_${tag}`)]);
    const data = await ok('query ($query: String!) { searchUsers(query: $query) { id username } }', { query: `GQ_FOUND_${tag}` }, caller);
    expect(data.searchUsers).toEqual([{ id: String(found.id), username: found.username }]);
    expect((await ok('{ searchUsers(query: "g") { id } }', {}, caller)).searchUsers).toEqual([]);
    expect((await fails('{ searchUsers(query: "gq", limit: 0) { id } }', {}, caller))[0]).toBe('BAD_USER_INPUT');
  });

  test('createChat with participantUsernames and isAiChat: "AI Chat", the named users, the greeting under the bot name', async () => {
    const [owner, jane] = await Promise.all([signUp(served.t), signUp(served.t)]);
    const chat = await createChat(owner, { isAiChat: true, isGroup: false, participantUsernames: [jane.username, 'nobody-at-all'] });
    expect(chat).toMatchObject({ name: 'AI Chat', isGroup: false, owner: { username: owner.username } });
    expect(chat.participants.map((participant) => participant.username)).toEqual([owner.username, jane.username]);
    const data = await ok('query ($id: ID!) { chat(id: $id) { messages { edges { node { content isBot username user { id } } } } } }', { id: chat.id }, jane);
    expect(data.chat.messages.edges.map((edge: any) => edge.node)).toEqual([{ content: AI_CHAT_GREETING, isBot: true, username: 'gemini-ai', user: null }]);
  });

  test('Chat.unreadCount, lastMessage and lastMessageTime; markChatRead clears the count', async () => {
    const [alice, bob] = await Promise.all([signUp(served.t), signUp(served.t)]);
    const chat = await createChat(alice, { participantUsernames: [bob.username] });
    const ACTIVITY = 'query ($id: ID!) { chat(id: $id) { unreadCount lastMessageTime lastMessage { id content username } } }';
    expect((await ok(ACTIVITY, { id: chat.id }, bob)).chat).toEqual({ unreadCount: 0, lastMessageTime: null, lastMessage: null });
    await send(alice, chat.id, 'one');
    const last = await send(alice, chat.id, 'two');
    expect((await ok(ACTIVITY, { id: chat.id }, bob)).chat).toEqual({
      unreadCount: 2,
      lastMessageTime: last.createdAt,
      lastMessage: { id: last.id, content: 'two', username: alice.username },
    });
    expect((await ok(ACTIVITY, { id: chat.id }, alice)).chat.unreadCount).toBe(0);
    expect((await ok(MARK_READ, { chatId: chat.id }, bob)).markChatRead).toBe(true);
    expect((await ok(ACTIVITY, { id: chat.id }, bob)).chat.unreadCount).toBe(0);
    const list = await ok('{ chats { id unreadCount lastMessage { content } } }', {}, bob);
    expect(list.chats).toEqual([{ id: chat.id, unreadCount: 0, lastMessage: { content: 'two' } }]);
  });

  test('Message.readBy: who has read each message, oldest read first, its author left out', async () => {
    const [alice, bob, carol] = await Promise.all([signUp(served.t), signUp(served.t), signUp(served.t)]);
    const chat = await createChat(alice, { participantUsernames: [bob.username, carol.username] });
    await send(alice, chat.id, 'first');
    await ok(MARK_READ, { chatId: chat.id }, carol);
    await send(bob, chat.id, 'second');
    await ok(MARK_READ, { chatId: chat.id }, bob);
    const data = await ok(
      'query ($id: ID!) { chat(id: $id) { messages { edges { node { content readBy { userId username readAt } } } } } }',
      { id: chat.id },
      alice,
    );
    const readBy = Object.fromEntries(data.chat.messages.edges.map((edge: any) => [edge.node.content, edge.node.readBy.map((reader: any) => reader.username)]));
    expect(readBy).toEqual({ first: [carol.username, bob.username], second: [] });
    expect(data.chat.messages.edges[0].node.readBy[0]).toEqual({ userId: String(carol.id), username: carol.username, readAt: expect.any(String) });
  });

  test('removeParticipant, leaveChat and deleteChat answer true and carry the REST errors as codes', async () => {
    const [owner, bob, carol, stranger] = await Promise.all([signUp(served.t), signUp(served.t), signUp(served.t), signUp(served.t)]);
    const chat = await createChat(owner, { participantUsernames: [bob.username, carol.username] });

    expect(await fails(REMOVE, { chatId: chat.id, userId: owner.id }, bob)).toEqual(['FORBIDDEN', 'Only chat admin can remove participants']);
    expect(await fails(REMOVE, { chatId: chat.id, userId: owner.id }, owner)).toEqual(['BAD_REQUEST', 'Cannot remove yourself. Use leave endpoint instead']);
    expect(await fails(REMOVE, { chatId: chat.id, userId: stranger.id }, owner)).toEqual(['NOT_FOUND', 'User is not a participant']);
    expect(await fails(REMOVE, { chatId: '999999', userId: bob.id }, owner)).toEqual(['NOT_FOUND', 'Chat not found']);
    expect((await ok(REMOVE, { chatId: chat.id, userId: bob.id }, owner)).removeParticipant).toBe(true);
    expect((await fails('query ($id: ID!) { chat(id: $id) { id } }', { id: chat.id }, bob))[0]).toBe('FORBIDDEN');

    expect(await fails(LEAVE, { chatId: chat.id }, owner)).toEqual(['BAD_REQUEST', 'Chat owner cannot leave. Delete the chat instead']);
    expect(await fails(LEAVE, { chatId: chat.id }, stranger)).toEqual(['NOT_FOUND', 'Not a participant']);
    expect((await ok(LEAVE, { chatId: chat.id }, carol)).leaveChat).toBe(true);

    expect(await fails(MARK_READ, { chatId: chat.id }, stranger)).toEqual(['FORBIDDEN', 'Not authorized']);
    expect(await fails(DELETE, { chatId: chat.id }, stranger)).toEqual(['FORBIDDEN', 'Only chat admin can delete chat']);
    expect((await ok(DELETE, { chatId: chat.id }, owner)).deleteChat).toBe(true);
    expect(await fails(DELETE, { chatId: chat.id }, owner)).toEqual(['NOT_FOUND', 'Chat not found']);
  });
});

describe('viewerEvents over graphql-ws', () => {
  const VIEWER_EVENTS = `subscription { viewerEvents {
    __typename
    ... on ChatCreatedEvent { addedBy chat { id name participants { username } } }
    ... on ChatInviteEvent { invitedBy chat { id name } }
    ... on RemovedFromChatEvent { chatId chatName removedBy }
    ... on LeftChatEvent { chatId }
    ... on ChatDeletedEvent { chatId chatName deletedBy }
    ... on UserLeftEvent { chatId chatName userId username how }
    ... on ReadReceiptsUpdatedEvent { chatId receipts { messageId readBy { userId username readAt } } }
  } }`;

  const subscribe = async (user: TestUser) => {
    const subscription = served.kit.graphql(user.token).subscribe<any>(VIEWER_EVENTS, {}, { field: 'viewerEvents', ready: ['user:event', user.id] });
    await subscription.ready;
    return subscription;
  };

  test('each kind of user event arrives as its own type', async () => {
    const [owner, bob, carol] = await Promise.all([signUp(served.t), signUp(served.t), signUp(served.t)]);
    const [ownerEvents, bobEvents, carolEvents] = await Promise.all([subscribe(owner), subscribe(bob), subscribe(carol)]);

    const chat = await createChat(owner, { name: 'Events', participantUsernames: [bob.username] });
    expect(await bobEvents.next((event) => event.__typename === 'ChatCreatedEvent')).toEqual({
      __typename: 'ChatCreatedEvent',
      addedBy: owner.username,
      chat: { id: chat.id, name: 'Events', participants: [{ username: owner.username }, { username: bob.username }] },
    });

    await ok(
      'mutation ($chatId: ID!, $username: String!) { inviteUser(chatId: $chatId, username: $username) { id } }',
      { chatId: chat.id, username: carol.username },
      bob,
    );
    expect(await carolEvents.next((event) => event.__typename === 'ChatInviteEvent')).toEqual({
      __typename: 'ChatInviteEvent',
      invitedBy: bob.username,
      chat: { id: chat.id, name: 'Events' },
    });

    const message = await send(owner, chat.id, 'read me');
    await ok(MARK_READ, { chatId: chat.id }, bob);
    expect(await ownerEvents.next((event) => event.__typename === 'ReadReceiptsUpdatedEvent')).toEqual({
      __typename: 'ReadReceiptsUpdatedEvent',
      chatId: chat.id,
      receipts: [{ messageId: message.id, readBy: [{ userId: String(bob.id), username: bob.username, readAt: expect.any(String) }] }],
    });

    await ok(LEAVE, { chatId: chat.id }, carol);
    expect(await carolEvents.next((event) => event.__typename === 'LeftChatEvent')).toEqual({ __typename: 'LeftChatEvent', chatId: chat.id });
    expect(await bobEvents.next((event) => event.__typename === 'UserLeftEvent')).toEqual({
      __typename: 'UserLeftEvent',
      chatId: chat.id,
      chatName: 'Events',
      userId: String(carol.id),
      username: carol.username,
      how: 'LEFT',
    });

    await ok(REMOVE, { chatId: chat.id, userId: bob.id }, owner);
    expect(await bobEvents.next((event) => event.__typename === 'RemovedFromChatEvent')).toEqual({
      __typename: 'RemovedFromChatEvent',
      chatId: chat.id,
      chatName: 'Events',
      removedBy: owner.username,
    });
    expect(await ownerEvents.next((event) => event.__typename === 'UserLeftEvent' && event.how === 'REMOVED')).toMatchObject({ userId: String(bob.id) });

    const doomed = await createChat(owner, { name: 'Doomed', participantUsernames: [carol.username] });
    await ok(DELETE, { chatId: doomed.id }, owner);
    expect(await carolEvents.next((event) => event.__typename === 'ChatDeletedEvent')).toEqual({
      __typename: 'ChatDeletedEvent',
      chatId: doomed.id,
      chatName: 'Doomed',
      deletedBy: owner.username,
    });
    expect(await ownerEvents.next((event) => event.__typename === 'LeftChatEvent' && event.chatId === doomed.id)).toBeDefined();
    expect([...ownerEvents.errors, ...bobEvents.errors, ...carolEvents.errors]).toEqual([]);
  });

  test('requires a valid token', async () => {
    const subscription = served.kit.graphql('not-a-token').subscribe(VIEWER_EVENTS, {}, { field: 'viewerEvents' });
    expect((await subscription.done).kind).toBe('error');
  });
});
