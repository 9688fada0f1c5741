import { afterAll, beforeAll, expect, spyOn, test } from 'bun:test';
import { publicUserSelect } from '../src/services/auth.service';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { groupRoom } from './support/rooms';

/**
 * What every socket's opening looks up (its user, its chats, who shares a chat with it) costs one
 * statement for all the sockets of one turn, never one per socket: a burst of reconnections after a
 * deploy is a few queries, not thousands. Counted on the service layer both protocols call.
 */
let queries: string[] = [];
let t: TestApp;
let owners: TestUser[];
let members: TestUser[];
let rooms: number[];
beforeAll(async () => {
  t = await createTestApp({}, { logQuery: (query) => queries.push(query) });
  owners = [await signUp(t), await signUp(t)];
  members = [await signUp(t), await signUp(t), await signUp(t)];
  rooms = [await groupRoom(t, owners[0]!, members.slice(0, 2), 'first'), await groupRoom(t, owners[1]!, members.slice(2), 'second')];
});
afterAll(() => t.cleanup());

/** The statements `run` caused that read `table` (a background job may run meanwhile on others). */
async function statementsOn(table: string, run: () => Promise<unknown>): Promise<number> {
  queries = [];
  await run();
  return queries.filter((query) => new RegExp(`\\b${table}\\b`).test(query)).length;
}

test('users never looked up before, looked up at once: one query, each id gets its own user', async () => {
  // As authentication does once a token's signature is checked (the checks end in turns of their own).
  let users: ({ id: number } | null)[] = [];
  const count = await statementsOn('users', async () => {
    users = await Promise.all(members.map((member) => t.app.services.auth.userById(member.id)));
  });
  expect(count).toBe(1);
  expect(users.map((user) => user?.id)).toEqual(members.map((member) => member.id));
  expect(await t.app.services.auth.userById(2_147_483_647)).toBeNull();
  // Past PostgreSQL's int4: no user, and no failure for the batch it shares (the other user forgotten, so it is in it).
  t.app.services.auth.forget(members[0]!.id);
  expect(await Promise.all([t.app.services.auth.userById(2 ** 40), t.app.services.auth.userById(members[0]!.id)])).toEqual([
    null,
    expect.objectContaining({ id: members[0]!.id }),
  ]);
});

test('checking tokens imports no key: the signing key was imported once, when the service was made', async () => {
  const imports = spyOn(crypto.subtle, 'importKey');
  try {
    await Promise.all([...owners, ...members].map((user) => t.app.services.auth.authenticate(user.token)));
    expect(imports).not.toHaveBeenCalled();
  } finally {
    imports.mockRestore();
  }
});

test("the chats of every user, asked at once: one query, each user's own chats", async () => {
  const everyone = [...owners, ...members];
  let chatIds: number[][] = [];
  const count = await statementsOn('chat_participants', async () => {
    chatIds = await Promise.all(everyone.map((user) => t.app.services.chats.chatIdsOf(user.id)));
  });
  expect(count).toBe(1);
  const [first, second] = rooms as [number, number];
  expect(chatIds).toEqual([[first], [second], [first], [first], [second]]);
});

test('who shares a chat with each user, asked at once: one query, each user left out of their own list', async () => {
  const everyone = [...owners, ...members];
  let sharers: number[][] = [];
  const count = await statementsOn('chat_participants', async () => {
    sharers = await Promise.all(everyone.map((user) => t.app.services.presence.sharersOf(user.id)));
  });
  expect(count).toBe(1);
  const [ana, ben] = owners.map((user) => user.id);
  const [cal, dan, eve] = members.map((user) => user.id);
  expect(sharers.map((ids) => ids.sort((a, b) => a - b))).toEqual([[cal!, dan!], [eve!], [ana!, dan!], [ana!, cal!], [ben!]]);
});

test('a batch of any size is the same statement: its ids travel as one parameter, so no new statement is prepared and kept per size', async () => {
  const everyone = [...owners, ...members];
  const { auth, chats, presence } = t.app.services;
  const loaders: [table: string, load: (userId: number) => Promise<unknown>][] = [
    // Forgotten first, so the cache does not answer.
    ['users', (userId) => (auth.forget(userId), auth.userById(userId))],
    ['chat_participants', (userId) => chats.chatIdsOf(userId)],
    ['chat_participants', (userId) => presence.sharersOf(userId)],
  ];
  for (const [table, load] of loaders) {
    const texts = new Set<string>();
    for (const size of [1, 2, 5]) {
      queries = [];
      await Promise.all(everyone.slice(0, size).map((user) => load(user.id)));
      for (const query of queries.filter((query) => new RegExp(`\\b${table}\\b`).test(query))) texts.add(query);
    }
    expect(texts.size).toBe(1);
  }
});

test('a user looked up by id has exactly the columns publicUserSelect reads, as Prisma reads them', async () => {
  const [cal] = members;
  const { auth, db } = t.app.services;
  await db.user.update({ where: { id: cal!.id }, data: { displayName: 'Cal', avatarKey: 'avatars/cal-1' } });
  auth.forget(cal!.id);
  expect(await auth.userById(cal!.id)).toEqual(await db.user.findUniqueOrThrow({ where: { id: cal!.id }, select: publicUserSelect }));
});
