import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { AI_CHAT_GREETING } from '../src/services/chat.service';
import type { UserEvent } from '../src/services/pubsub';
import { RECEIPT_WINDOW } from '../src/services/read-state.service';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import { captureLogs } from './support/logs';
import { withDeadline } from './support/sockets';
import { recordUserEvents, type UserEventRecorder } from './support/user-events';
import type { chatJson } from '../src/serializers';

/**
 * The original service's later REST API, in-process: every
 * route, shape, status and `detail`, and the user events each one publishes.
 */

let fake: FakeGemini;
let t: TestApp;
const errors = captureLogs('error');
beforeAll(async () => {
  fake = await startFakeGemini();
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url }, { log: errors.log });
});
afterAll(async () => {
  await t.cleanup();
  await fake.stop();
});

const recorders: UserEventRecorder[] = [];
afterEach(() => {
  for (const recorder of recorders.splice(0)) recorder.stop();
});

/** Starts recording the user events of each of `users`. */
async function record(...users: TestUser[]): Promise<UserEventRecorder[]> {
  const started = await Promise.all(users.map((user) => recordUserEvents(t.app.services.pubsub, user.id)));
  recorders.push(...started);
  return started;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const USER_KEYS = ['avatar_url', 'created_at', 'display_name', 'email', 'id', 'username'];
const CHAT_KEYS = ['created_at', 'id', 'is_group', 'name', 'owner_id'];
const keysOf = (value: object) => Object.keys(value).sort();

/** A chat as REST answers it. */
type ChatJson = ReturnType<typeof chatJson>;

async function expectDetail(response: Response, status: number, detail: string) {
  expect(await response.json()).toEqual({ detail });
  expect(response.status).toBe(status);
}

async function createChat(user: TestUser, body: Record<string, unknown> = { name: 'Room', is_group: true }): Promise<ChatJson> {
  const response = await t.request('/api/chats', { method: 'POST', token: user.token, json: body });
  expect(response.status).toBe(200);
  return (await response.json()) as ChatJson;
}

/** A group chat owned by `owner` with `members` in it. */
async function groupChat(owner: TestUser, members: TestUser[], name = 'Room'): Promise<ChatJson> {
  return createChat(owner, { name, is_group: true, participant_usernames: members.map((member) => member.username) });
}

async function post(user: TestUser, chatId: number, content: string): Promise<{ id: number; created_at: string }> {
  const response = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: number; created_at: string };
}

const listChats = async (user: TestUser) => (await (await t.request('/api/chats', { token: user.token })).json()) as Record<string, any>[];
const markRead = (user: TestUser, chatId: number | string) => t.request(`/api/chats/${chatId}/mark-read`, { method: 'POST', token: user.token });
const receipts = (user: TestUser, chatId: number | string) => t.request(`/api/chats/${chatId}/read-receipts`, { token: user.token });
const remove = (user: TestUser, chatId: number | string, userId: number | string) =>
  t.request(`/api/chats/${chatId}/participants/${userId}`, { method: 'DELETE', token: user.token });
const leave = (user: TestUser, chatId: number | string) => t.request(`/api/chats/${chatId}/leave`, { method: 'POST', token: user.token });
const deleteChat = (user: TestUser, chatId: number | string) => t.request(`/api/chats/${chatId}`, { method: 'DELETE', token: user.token });
const participantNames = async (user: TestUser, chatId: number) =>
  ((await (await t.request(`/api/chats/${chatId}/participants`, { token: user.token })).json()) as { username: string }[]).map((p) => p.username);
const summaryOf = (chat: ChatJson) => ({ id: chat.id, name: chat.name, ownerId: chat.owner_id, isGroup: chat.is_group, createdAt: new Date(chat.created_at) });

describe('GET /api/users/search', () => {
  let caller: TestUser;
  let janet: TestUser;
  let jan: TestUser;
  beforeAll(async () => {
    const tag = crypto.randomUUID().slice(0, 6);
    caller = await signUp(t, `searcher_${tag}`);
    janet = await signUp(t, `JaNet_${tag}`);
    jan = await signUp(t, `jan_${tag}`);
  });
  const search = (params: string, user = caller) => t.request(`/api/users/search?${params}`, { token: user.token });

  test('users whose username contains the query, ignoring case, as [{id, username, email, created_at}]', async () => {
    const response = await search(`query=${janet.username.slice(0, 5).toUpperCase()}`);
    expect(response.status).toBe(200);
    const found = (await response.json()) as Record<string, unknown>[];
    expect(found.map((user) => user.id)).toEqual([janet.id]);
    expect(keysOf(found[0]!)).toEqual(USER_KEYS);
    expect(found[0]).toMatchObject({ username: janet.username, email: `${janet.username.toLowerCase()}@example.com` });
    expect(found[0]!.created_at).toMatch(ISO_UTC);
  });

  test('emails match too', async () => {
    const tag = janet.username.split('_')[1]!;
    const found = (await (await search(`query=_${tag}@EXAMPLE`)).json()) as { id: number }[];
    expect(found.map((user) => user.id).sort()).toEqual([janet.id, jan.id].sort());
  });

  test('the caller is left out', async () => {
    const found = (await (await search(`query=${caller.username}`)).json()) as unknown[];
    expect(found).toEqual([]);
    const byOther = (await (await search(`query=${caller.username}`, jan)).json()) as { id: number }[];
    expect(byOther.map((user) => user.id)).toEqual([caller.id]);
  });

  test('a query under 2 characters answers [] ', async () => {
    for (const query of ['', 'j']) {
      const response = await search(`query=${query}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual([]);
    }
  });

  test('_ and % are plain characters, not wildcards', async () => {
    expect(await (await search('query=%25%25')).json()).toEqual([]);
    expect(await (await search(`query=${encodeURIComponent('a_c_d_e_f_g_h')}`)).json()).toEqual([]);
  });

  test('limit caps the answer (10 by default)', async () => {
    const tag = crypto.randomUUID().slice(0, 6);
    await Promise.all(Array.from({ length: 12 }, (_, i) => signUp(t, `many${i}_${tag}`)));
    expect(((await (await search(`query=_${tag}`)).json()) as unknown[]).length).toBe(10);
    expect(((await (await search(`query=_${tag}&limit=3`)).json()) as unknown[]).length).toBe(3);
  });

  test('without query it is 422 located in the query', async () => {
    const response = await search('limit=5');
    expect(response.status).toBe(422);
    expect(((await response.json()) as { detail: unknown[] }).detail).toContainEqual({ type: 'missing', loc: ['query', 'query'], msg: 'Field required' });
  });

  test('requires authentication', async () => {
    await expectDetail(await t.request('/api/users/search?query=abc'), 401, 'Not authenticated');
  });
});

describe('POST /api/chats with participant_usernames and is_ai_chat', () => {
  test('adds the named users (any case, unknown and repeated names skipped); each added user gets chat_created', async () => {
    const [owner, jane, kim, outsider] = await Promise.all([signUp(t), signUp(t), signUp(t), signUp(t)]);
    const [ownerEvents, janeEvents, kimEvents, outsiderEvents] = await record(owner, jane, kim, outsider);
    const chat = await createChat(owner, {
      name: 'Trip',
      is_group: true,
      participant_usernames: [jane.username.toUpperCase(), 'nobody-by-this-name', kim.username, jane.username, owner.username],
    });
    expect(keysOf(chat)).toEqual(CHAT_KEYS);
    expect(await participantNames(owner, chat.id)).toEqual([owner.username, jane.username, kim.username]);
    for (const events of [janeEvents!, kimEvents!]) {
      expect(await events.settled()).toEqual([{ type: 'chat_created', chat: summaryOf(chat), addedBy: owner.username }]);
    }
    // The owner's own sessions take the chat in, without a notice of their own doing.
    expect(await ownerEvents!.settled()).toEqual([{ type: 'joined_chat', chat: summaryOf(chat) }]);
    expect(await outsiderEvents!.settled()).toEqual([]);
  });

  test('an AI chat without a name is "AI Chat" and opens with the bot greeting (is_bot, no author, the bot\'s name)', async () => {
    const owner = await signUp(t);
    const chat = await createChat(owner, { is_ai_chat: true });
    expect(chat).toMatchObject({ name: 'AI Chat', is_group: false, owner_id: owner.id });
    const history = await (await t.request(`/api/chats/${chat.id}/messages`, { token: owner.token })).json();
    expect(history).toEqual([
      {
        id: expect.any(Number),
        chat_id: chat.id,
        user_id: null,
        username: 'gemini-ai',
        content: AI_CHAT_GREETING,
        is_bot: true,
        created_at: expect.stringMatching(ISO_UTC),
        edited_at: null,
        reactions: [],
        attachments: [],
      },
    ]);
    expect(AI_CHAT_GREETING).toBe("Hello! I'm your AI assistant. How can I help you today?");
    const named = await createChat(owner, { name: 'My assistant', is_ai_chat: true });
    expect(named.name).toBe('My assistant');
  });

  test('a chat that is not an AI chat has no greeting', async () => {
    const owner = await signUp(t);
    const chat = await createChat(owner, { name: 'Quiet', is_ai_chat: false });
    expect(await (await t.request(`/api/chats/${chat.id}/messages`, { token: owner.token })).json()).toEqual([]);
  });

  test('participant_usernames of the wrong type is 422', async () => {
    const owner = await signUp(t);
    for (const participant_usernames of ['jane', [1], { jane: true }]) {
      const response = await t.request('/api/chats', { method: 'POST', token: owner.token, json: { participant_usernames } });
      expect(response.status).toBe(422);
    }
    const wrongFlag = await t.request('/api/chats', { method: 'POST', token: owner.token, json: { is_ai_chat: 'yes' } });
    expect(((await wrongFlag.json()) as { detail: { loc: unknown[] }[] }).detail.map((issue) => issue.loc)).toContainEqual(['body', 'is_ai_chat']);
  });
});

describe('GET /api/chats: unread_count, last_message, last_message_time, latest activity first', () => {
  test('each chat as before plus its unread count and last message', async () => {
    const [alice, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await groupChat(alice, [bob]);
    await post(alice, chat.id, 'first');
    const last = await post(bob, chat.id, 'second');
    const [item] = await listChats(alice);
    expect(item).toEqual({ ...chat, unread_count: 1, last_message: 'second', last_message_time: last.created_at });
    expect((await listChats(bob))[0]).toMatchObject({ unread_count: 1, last_message: 'second' });
  });

  test('a chat without messages has last_message and last_message_time null', async () => {
    const alice = await signUp(t);
    const chat = await createChat(alice);
    expect(await listChats(alice)).toEqual([{ ...chat, unread_count: 0, last_message: null, last_message_time: null }]);
  });

  test('ordered by the last message, else creation, newest first', async () => {
    const alice = await signUp(t);
    const older = await createChat(alice, { name: 'older' });
    const newer = await createChat(alice, { name: 'newer' });
    const empty = await createChat(alice, { name: 'empty, newest' });
    expect((await listChats(alice)).map((chat) => chat.id)).toEqual([empty.id, newer.id, older.id]);
    await post(alice, older.id, 'older wakes up');
    expect((await listChats(alice)).map((chat) => chat.id)).toEqual([older.id, empty.id, newer.id]);
    await post(alice, newer.id, 'newer answers');
    expect((await listChats(alice)).map((chat) => chat.id)).toEqual([newer.id, older.id, empty.id]);
  });

  test("unread counts others' messages (bot answers included) after the reader's position, never the reader's own", async () => {
    const [alice, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await createChat(alice, { is_ai_chat: true, participant_usernames: [bob.username] });
    // The greeting is the bot's: unread for both.
    expect((await listChats(alice))[0]!.unread_count).toBe(1);
    await post(alice, chat.id, 'mine');
    await post(bob, chat.id, 'from bob 1');
    await post(bob, chat.id, 'from bob 2');
    expect((await listChats(alice))[0]!.unread_count).toBe(3);
    expect((await listChats(bob))[0]!.unread_count).toBe(2);
    expect((await markRead(alice, chat.id)).status).toBe(200);
    expect((await listChats(alice))[0]!.unread_count).toBe(0);
    await post(bob, chat.id, 'from bob 3');
    expect((await listChats(alice))[0]!.unread_count).toBe(1);
  });

  test('someone invited later starts with nothing unread', async () => {
    const [alice, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await createChat(alice);
    await post(alice, chat.id, 'before bob');
    await post(alice, chat.id, 'still before bob');
    await t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: alice.token, json: { username: bob.username } });
    expect((await listChats(bob))[0]).toMatchObject({ id: chat.id, unread_count: 0, last_message: 'still before bob' });
    await post(alice, chat.id, 'after bob joined');
    expect((await listChats(bob))[0]!.unread_count).toBe(1);
  });
});

describe('DELETE /api/chats/{id}/participants/{user_id}', () => {
  test('the owner removes someone: removed_from_chat to them, user_left to everyone still in; the removal holds at once', async () => {
    const [owner, bob, carol] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
    const chat = await groupChat(owner, [bob, carol], 'Team');
    // Bob's membership is cached by his own message; the removal must still hold on his next one.
    await post(bob, chat.id, 'still here');
    const [ownerEvents, bobEvents, carolEvents] = await record(owner, bob, carol);

    const response = await remove(owner, chat.id, bob.id);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ message: 'Participant removed successfully' });

    expect(await bobEvents!.settled()).toEqual([{ type: 'removed_from_chat', chatId: chat.id, chatName: 'Team', removedBy: owner.username }]);
    const userLeft: UserEvent = { type: 'user_left', chatId: chat.id, chatName: 'Team', userId: bob.id, username: bob.username, how: 'removed' };
    expect(await ownerEvents!.settled()).toEqual([userLeft]);
    expect(await carolEvents!.settled()).toEqual([userLeft]);
    expect(await participantNames(owner, chat.id)).toEqual([owner.username, carol.username]);
    const refused = await t.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: bob.token, json: { content: 'am I still in?' } });
    await expectDetail(refused, 403, 'Not authorized');
    expect((await listChats(bob)).map((item) => item.id)).not.toContain(chat.id);
  });

  test('errors: 404 Chat not found, 403 for anyone but the owner, 400 for yourself, 404 for a non-participant', async () => {
    const [owner, bob, stranger] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
    const chat = await groupChat(owner, [bob]);
    const [bobEvents] = await record(bob);
    await expectDetail(await remove(owner, 999_999, bob.id), 404, 'Chat not found');
    await expectDetail(await remove(bob, chat.id, owner.id), 403, 'Only chat admin can remove participants');
    await expectDetail(await remove(stranger, chat.id, bob.id), 403, 'Only chat admin can remove participants');
    await expectDetail(await remove(owner, chat.id, owner.id), 400, 'Cannot remove yourself. Use leave endpoint instead');
    await expectDetail(await remove(owner, chat.id, stranger.id), 404, 'User is not a participant');
    await expectDetail(await remove(owner, chat.id, 999_999), 404, 'User is not a participant');
    expect((await remove(owner, chat.id, 'abc')).status).toBe(422);
    expect(await participantNames(owner, chat.id)).toEqual([owner.username, bob.username]);
    expect(await bobEvents!.settled()).toEqual([]);
  });

  test('removing someone twice at once removes them once', async () => {
    const [owner, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await groupChat(owner, [bob]);
    const statuses = (await Promise.all([remove(owner, chat.id, bob.id), remove(owner, chat.id, bob.id)])).map((response) => response.status).sort();
    expect(statuses).toEqual([200, 404]);
  });
});

describe('POST /api/chats/{id}/leave', () => {
  test('a participant leaves: user_left with a notification-worthy name to the others, left_chat to the leaver', async () => {
    const [owner, bob, carol] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
    const chat = await groupChat(owner, [bob, carol], 'Book club');
    await post(bob, chat.id, 'bye soon');
    const [ownerEvents, bobEvents, carolEvents] = await record(owner, bob, carol);

    const response = await leave(bob, chat.id);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ message: 'Left chat successfully' });

    const userLeft: UserEvent = { type: 'user_left', chatId: chat.id, chatName: 'Book club', userId: bob.id, username: bob.username, how: 'left' };
    expect(await ownerEvents!.settled()).toEqual([userLeft]);
    expect(await carolEvents!.settled()).toEqual([userLeft]);
    expect(await bobEvents!.settled()).toEqual([{ type: 'left_chat', chatId: chat.id }]);
    await expectDetail(await t.request(`/api/chats/${chat.id}/messages`, { token: bob.token }), 403, 'Not authorized');
  });

  test('errors: 404 Chat not found, 400 for the owner, 404 Not a participant', async () => {
    const [owner, stranger] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await createChat(owner);
    await expectDetail(await leave(owner, 999_999), 404, 'Chat not found');
    await expectDetail(await leave(owner, chat.id), 400, 'Chat owner cannot leave. Delete the chat instead');
    await expectDetail(await leave(stranger, chat.id), 404, 'Not a participant');
    expect(await participantNames(owner, chat.id)).toEqual([owner.username]);
  });
});

describe('DELETE /api/chats/{id}', () => {
  test('the owner deletes the chat: chat_deleted to every other participant, left_chat to the owner; messages and participants go with it', async () => {
    const [owner, bob, carol] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
    const chat = await groupChat(owner, [bob, carol], 'Doomed');
    await post(owner, chat.id, 'one');
    await post(bob, chat.id, 'two');
    await markRead(carol, chat.id);
    const [ownerEvents, bobEvents, carolEvents] = await record(owner, bob, carol);

    const response = await deleteChat(owner, chat.id);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ message: 'Chat deleted successfully' });

    const deleted: UserEvent = { type: 'chat_deleted', chatId: chat.id, chatName: 'Doomed', deletedBy: owner.username };
    expect(await bobEvents!.settled()).toEqual([deleted]);
    expect(await carolEvents!.settled()).toEqual([deleted]);
    expect(await ownerEvents!.settled()).toEqual([{ type: 'left_chat', chatId: chat.id }]);

    const { db } = t.app.services;
    expect(await db.chat.count({ where: { id: chat.id } })).toBe(0);
    expect(await db.message.count({ where: { chatId: chat.id } })).toBe(0);
    expect(await db.chatParticipant.count({ where: { chatId: chat.id } })).toBe(0);
    for (const user of [owner, bob]) {
      await expectDetail(await t.request(`/api/chats/${chat.id}`, { token: user.token }), 404, 'Chat not found');
      expect((await listChats(user)).map((item) => item.id)).not.toContain(chat.id);
    }
  });

  test('errors: 404 Chat not found, 403 for anyone but the owner', async () => {
    const [owner, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await groupChat(owner, [bob]);
    const [bobEvents] = await record(bob);
    await expectDetail(await deleteChat(owner, 999_999), 404, 'Chat not found');
    await expectDetail(await deleteChat(bob, chat.id), 403, 'Only chat admin can delete chat');
    expect((await t.request(`/api/chats/${chat.id}`, { token: bob.token })).status).toBe(200);
    expect(await bobEvents!.settled()).toEqual([]);
  });

  test('a bot answer running in the chat is stopped, and nothing fails behind it', async () => {
    const owner = await signUp(t);
    const chat = await createChat(owner);
    const errorsBefore = errors.lines().length;
    fake.reply({ kind: 'hang-after', chunks: ['Thinking about it'] });
    const request = fake.nextRequest();
    const firstDelta = new Promise<void>((resolve) => {
      const listening = t.app.services.pubsub.on('chat:bot', chat.id, (event) => {
        if (event.isComplete || event.chunk === '') return;
        listening.stop();
        resolve();
      });
    });
    await post(owner, chat.id, '/bot think hard');
    await withDeadline(firstDelta, () => 'the answer never started streaming');
    expect((await deleteChat(owner, chat.id)).status).toBe(200);
    const answer = await request;
    await withDeadline(answer.closed, () => 'the Gemini call was never stopped');
    expect(answer.aborted).toBe(true);
    await t.app.services.bot.idle();
    expect(await t.app.services.db.message.count({ where: { chatId: chat.id } })).toBe(0);
    expect(errors.lines().slice(errorsBefore)).toEqual([]);
  });
});

describe('POST /api/chats/{id}/mark-read and GET /api/chats/{id}/read-receipts', () => {
  test('mark-read answers {success, message} and pushes read_receipts_updated to every participant; again, unchanged, pushes nothing', async () => {
    const [alice, bob, carol] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
    const chat = await groupChat(alice, [bob, carol]);
    const hello = await post(alice, chat.id, 'hello');
    const [aliceEvents, bobEvents, carolEvents] = await record(alice, bob, carol);

    const response = await markRead(bob, chat.id);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ success: true, message: 'Chat marked as read' });
    const pushed: UserEvent = {
      type: 'read_receipts_updated',
      chatId: chat.id,
      receipts: { [hello.id]: [{ userId: bob.id, username: bob.username, readAt: expect.any(Date) }] },
    };
    for (const events of [aliceEvents!, bobEvents!, carolEvents!]) expect(await events.settled()).toEqual([pushed]);

    // The client calls mark-read on every incoming message: when nothing moved, nobody hears of it.
    expect((await markRead(bob, chat.id)).status).toBe(200);
    for (const events of [aliceEvents!, bobEvents!, carolEvents!]) expect(await events.settled()).toHaveLength(1);
  });

  test('a new participant marking read for the first time moves their position even with nothing new', async () => {
    const [alice, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await createChat(alice);
    const hello = await post(alice, chat.id, 'hello');
    await t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: alice.token, json: { username: bob.username } });
    expect(await (await receipts(alice, chat.id)).json()).toEqual({ [hello.id]: [] });
    const [aliceEvents] = await record(alice);
    await markRead(bob, chat.id);
    expect((await aliceEvents!.settled()).map((event) => event.type)).toEqual(['read_receipts_updated']);
    expect(await (await receipts(alice, chat.id)).json()).toEqual({
      [hello.id]: [{ user_id: bob.id, username: bob.username, read_at: expect.stringMatching(ISO_UTC) }],
    });
  });

  test('a chat with no messages has nothing to mark: no push', async () => {
    const [alice, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await groupChat(alice, [bob]);
    const [aliceEvents] = await record(alice);
    expect((await markRead(bob, chat.id)).status).toBe(200);
    expect(await aliceEvents!.settled()).toEqual([]);
  });

  test('read-receipts: {"<message_id>": [{user_id, username, read_at}]}, oldest read first, authors left out', async () => {
    const [alice, bob, carol] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
    const chat = await groupChat(alice, [bob, carol]);
    const first = await post(alice, chat.id, 'first');
    await markRead(carol, chat.id);
    const second = await post(bob, chat.id, 'second');
    await markRead(alice, chat.id);
    await markRead(bob, chat.id);

    const response = await receipts(bob, chat.id);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, { user_id: number; username: string; read_at: string }[]>;
    expect(Object.keys(body)).toEqual([String(first.id), String(second.id)]);
    // `first`: read by carol, then by bob; alice wrote it.
    expect(body[first.id]!.map((reader) => reader.username)).toEqual([carol.username, bob.username]);
    // `second`: bob wrote it, carol marked read before it came, alice read it.
    expect(body[second.id]).toEqual([{ user_id: alice.id, username: alice.username, read_at: expect.stringMatching(ISO_UTC) }]);
    for (const readers of Object.values(body)) {
      for (const reader of readers) expect(keysOf(reader)).toEqual(['read_at', 'user_id', 'username']);
      const times = readers.map((reader) => Date.parse(reader.read_at));
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
  });

  test(`the map covers the chat's newest ${RECEIPT_WINDOW} messages only`, async () => {
    const [alice, bob] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await groupChat(alice, [bob]);
    const sent: number[] = [];
    for (let i = 0; i < RECEIPT_WINDOW + 5; i++) sent.push((await post(alice, chat.id, `message ${i}`)).id);
    await markRead(bob, chat.id);
    const body = (await (await receipts(alice, chat.id)).json()) as Record<string, unknown[]>;
    expect(Object.keys(body).map(Number)).toEqual(sent.slice(-RECEIPT_WINDOW));
    for (const readers of Object.values(body)) expect(readers).toHaveLength(1);
  });

  test('403 "Not authorized" for a non-participant and for a chat that does not exist; nothing moves or is pushed', async () => {
    const [alice, stranger] = await Promise.all([signUp(t), signUp(t)]);
    const chat = await createChat(alice);
    await post(alice, chat.id, 'private');
    const [aliceEvents] = await record(alice);
    await expectDetail(await markRead(stranger, chat.id), 403, 'Not authorized');
    await expectDetail(await receipts(stranger, chat.id), 403, 'Not authorized');
    await expectDetail(await markRead(stranger, 999_999), 403, 'Not authorized');
    await expectDetail(await receipts(stranger, 999_999), 403, 'Not authorized');
    expect(await aliceEvents!.settled()).toEqual([]);
  });

  test('both require authentication', async () => {
    const alice = await signUp(t);
    const chat = await createChat(alice);
    await expectDetail(await t.request(`/api/chats/${chat.id}/mark-read`, { method: 'POST' }), 401, 'Not authenticated');
    await expectDetail(await t.request(`/api/chats/${chat.id}/read-receipts`), 401, 'Not authenticated');
  });
});

describe('history', () => {
  test("bot messages carry the bot's name as username, people their own", async () => {
    const alice = await signUp(t);
    const chat = await createChat(alice, { is_ai_chat: true });
    await post(alice, chat.id, 'hi bot');
    const history = (await (await t.request(`/api/chats/${chat.id}/messages`, { token: alice.token })).json()) as { username: string; is_bot: boolean }[];
    expect(history.map((message) => [message.username, message.is_bot])).toEqual([
      ['gemini-ai', true],
      [alice.username, false],
    ]);
  });

  test('BOT_NAME renames the bot', async () => {
    const named = await createTestApp({ BOT_NAME: 'helper-bot' });
    try {
      const alice = await signUp(named);
      const chat = (await (await named.request('/api/chats', { method: 'POST', token: alice.token, json: { is_ai_chat: true } })).json()) as ChatJson;
      const [greeting] = (await (await named.request(`/api/chats/${chat.id}/messages`, { token: alice.token })).json()) as { username: string }[];
      expect(greeting!.username).toBe('helper-bot');
    } finally {
      await named.cleanup();
    }
  });
});
