import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { groupRoom, storeMessages } from './support/rooms';

/**
 * Listing chats with their participants and messages costs a fixed number of SQL statements,
 * whatever the number of chats: relations load in one batched query each, never one per chat.
 */
const QUERY = '{ chats { participants { username } messages(last: 20) { edges { node { content } } } } }';
const PARTICIPANTS_PER_CHAT = 3;
const MESSAGES_PER_CHAT = 4;
/** viewer, chats, participants, their users, messages: one statement each, never one per chat. */
const MAX_QUERIES = 5;

let queries: string[] = [];
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({}, { logQuery: (query) => queries.push(query) });
});
afterAll(() => t.cleanup());

/** A fresh owner with `count` chats, each with PARTICIPANTS_PER_CHAT members and MESSAGES_PER_CHAT messages. */
async function seed(count: number): Promise<TestUser> {
  const [owner, ...guests] = await Promise.all(Array.from({ length: PARTICIPANTS_PER_CHAT }, () => signUp(t)));
  for (let n = 0; n < count; n++) {
    const chat = await graphql(`mutation { createChat(name: "chat ${n}", isGroup: true) { id } }`, owner!.token);
    const chatId = chat.createChat.id;
    for (const guest of guests) {
      await graphql('mutation ($chatId: ID!, $username: String!) { inviteUser(chatId: $chatId, username: $username) { id } }', owner!.token, {
        chatId,
        username: guest.username,
      });
    }
    for (let i = 0; i < MESSAGES_PER_CHAT; i++) {
      const author = [owner!, ...guests][i % PARTICIPANTS_PER_CHAT]!;
      await graphql('mutation ($chatId: ID!, $content: String!) { sendMessage(chatId: $chatId, content: $content) { id } }', author.token, {
        chatId,
        content: `chat ${n} message ${i}`,
      });
    }
    // One guest has read everything, so read receipts have something to load.
    await graphql('mutation ($chatId: ID!) { markChatRead(chatId: $chatId) }', guests[0]!.token, { chatId });
  }
  return owner!;
}

async function graphql(query: string, token: string, variables: Record<string, unknown> = {}) {
  const response = await t.request('/graphql', { method: 'POST', json: { query, variables }, token });
  const body = (await response.json()) as { data?: any; errors?: unknown[] };
  expect(body.errors).toBeUndefined();
  return body.data;
}

/** Runs `query` as `owner` and returns the SQL it caused, plus the data to check it really loaded. */
async function measure(owner: TestUser, query = QUERY) {
  queries = [];
  const data = await graphql(query, owner.token);
  return { count: queries.length, statements: [...queries], chats: data.chats as any[] };
}

/** Asserts that `few` and `many` cost the same number of statements, at most `max`. */
function expectFixedCost(label: string, few: { count: number }, many: { count: number; statements: string[] }, max: number) {
  console.log(`N+1 check (${label}): ${few.count} SQL statements for 2 chats, ${many.count} for 10 chats`);
  if (many.count !== few.count || many.count > max) console.log(many.statements.join('\n'));
  expect(many.count).toBe(few.count);
  expect(many.count).toBeLessThanOrEqual(max);
}

test('chats with participants and messages cost the same SQL for 2 chats as for 10', async () => {
  const few = await measure(await seed(2));
  const many = await measure(await seed(10));

  // The data is really there, so the counts measure real loading.
  for (const [result, count] of [
    [few, 2],
    [many, 10],
  ] as const) {
    expect(result.chats).toHaveLength(count);
    for (const [n, chat] of result.chats.entries()) {
      expect(chat.participants).toHaveLength(PARTICIPANTS_PER_CHAT);
      expect(chat.messages.edges.map((edge: any) => edge.node.content)).toEqual(Array.from({ length: MESSAGES_PER_CHAT }, (_, i) => `chat ${n} message ${i}`));
    }
  }

  console.log(`N+1 check: ${few.count} SQL statements for 2 chats, ${many.count} for 10 chats`);
  if (many.count !== few.count || many.count > MAX_QUERIES) console.log(many.statements.join('\n'));
  expect(many.count).toBe(few.count);
  expect(many.count).toBeLessThanOrEqual(MAX_QUERIES);
});

test('GET /api/chats with unread counts and last messages costs the same SQL for 2 chats as for 10', async () => {
  const measureRest = async (owner: TestUser) => {
    queries = [];
    const response = await t.request('/api/chats', { token: owner.token });
    expect(response.status).toBe(200);
    return { count: queries.length, statements: [...queries], chats: (await response.json()) as any[] };
  };
  const few = await measureRest(await seed(2));
  const many = await measureRest(await seed(10));
  for (const [result, count] of [
    [few, 2],
    [many, 10],
  ] as const) {
    // Newest activity first; the owner wrote messages 0 and 3, so the guests' 1 and 2 are unread.
    expect(result.chats.map((chat) => chat.name)).toEqual(Array.from({ length: count }, (_, n) => `chat ${count - 1 - n}`));
    for (const chat of result.chats) expect(chat).toMatchObject({ unread_count: 2, last_message: `${chat.name} message ${MESSAGES_PER_CHAT - 1}` });
  }
  // The chats; their unread counts and last message ids in one statement; the last messages and their authors.
  expectFixedCost('REST chat list', few, many, 4);
});

test('GraphQL chats with unreadCount, lastMessage and read receipts cost the same SQL for 2 chats as for 10', async () => {
  const query = `{ chats { name unreadCount lastMessageTime lastMessage { content }
    messages(last: 20) { edges { node { content readBy { username readAt } } } } } }`;
  const few = await measure(await seed(2), query);
  const many = await measure(await seed(10), query);
  for (const result of [few, many]) {
    for (const chat of result.chats) {
      expect(chat).toMatchObject({ unreadCount: 2, lastMessage: { content: `${chat.name} message ${MESSAGES_PER_CHAT - 1}` } });
      const readers = chat.messages.edges.map((edge: any) => edge.node.readBy.length);
      // The guest who marked the chat read has read every message but their own (message 1).
      expect(readers).toEqual([1, 0, 1, 1]);
    }
  }
  // chats, messages, their chat's read positions and readers' names, unread counts, last messages and their authors.
  expectFixedCost('GraphQL chat list with activity and receipts', few, many, 8);
});

/** Message i of a chat gets the first i of these. */
const REACTIONS = ['👍', '🎉', '❤️'];

/** Reacts to the messages of each of `owner`'s chats as REACTIONS says, through the service: cheaper than a request each. */
async function addReactions(owner: TestUser): Promise<void> {
  const user = await t.app.services.auth.authenticate(owner.token);
  const { chats } = await graphql('{ chats { id messages { edges { node { id } } } } }', owner.token);
  for (const chat of chats) {
    for (const [i, edge] of chat.messages.edges.entries()) {
      for (const emoji of REACTIONS.slice(0, i)) await t.app.services.reactions.add(user, chat.id, edge.node.id, { emoji });
    }
  }
}

test('GraphQL messages with their reactions cost the same SQL for 2 chats as for 10', async () => {
  const query = '{ chats { messages(last: 20) { edges { node { content reactions { emoji count } } } } } }';
  const [fewOwner, manyOwner] = [await seed(2), await seed(10)];
  await addReactions(fewOwner);
  await addReactions(manyOwner);
  const few = await measure(fewOwner, query);
  const many = await measure(manyOwner, query);
  const expected = Array.from({ length: MESSAGES_PER_CHAT }, (_, i) => REACTIONS.slice(0, i).map((emoji) => ({ emoji, count: 1 })));
  for (const result of [few, many]) {
    for (const chat of result.chats) expect(chat.messages.edges.map((edge: any) => edge.node.reactions)).toEqual(expected);
  }
  // chats, messages, their reactions (the viewer is cached by then).
  expectFixedCost('GraphQL messages with reactions', few, many, 3);
});

test('a REST history page with reactions costs the same SQL for 2 messages as for 40', async () => {
  const owner = await signUp(t);
  const chatId = await groupRoom(t, owner, [], 'history with reactions');
  const user = await t.app.services.auth.authenticate(owner.token);
  const ids = await storeMessages(t, owner, chatId, 40);
  for (const [i, id] of ids.entries()) {
    for (const emoji of REACTIONS.slice(0, i % 4)) await t.app.services.reactions.add(user, chatId, id, { emoji });
  }
  const measureHistory = async (limit: number) => {
    queries = [];
    const response = await t.request(`/api/chats/${chatId}/messages?limit=${limit}`, { token: owner.token });
    expect(response.status).toBe(200);
    return { count: queries.length, statements: [...queries], messages: (await response.json()) as { reactions: unknown[] }[] };
  };
  const few = await measureHistory(2);
  const many = await measureHistory(40);
  expect(few.messages).toHaveLength(2);
  expect(many.messages).toHaveLength(40);
  expect(many.messages.filter((message) => message.reactions.length > 0)).toHaveLength(30);
  // The messages, their authors, their reactions, their attachments (the caller and the membership are cached by then).
  expectFixedCost('REST history with reactions (pages of 2 and 40 messages)', few, many, 4);
});
