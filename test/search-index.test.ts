import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { SqliteSearchIndex } from '../src/services/search/search-index';
import { searchIndexFile } from '../src/services/search/sqlite-search-file';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { quietLog } from './support/logs';
import { groupRoom, storeMessages } from './support/rooms';

/**
 * SQLite's search index takes new messages in bulk, after they are stored, into a file of its own
 * (SqliteSearchIndex, sqlite-search-file.ts): whatever engine the suite runs on, this file runs on a
 * SQLite file of its own, and reads the index's file directly to see what it holds.
 */
const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-search-index-'));
const file = join(dir, 'search.db');
/** Long enough that only a search (or `settled` after a short one) takes messages in. */
const NEVER = '3600000';

let t: TestApp;
let owner: TestUser;
let chatId: number;
beforeAll(async () => {
  t = await createTestApp({ DATABASE_URL: `file:${file}`, SEARCH_INDEX_DELAY_MS: NEVER });
  owner = await signUp(t);
  chatId = await groupRoom(t, owner, [], 'search index');
});
afterAll(async () => {
  await t.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** What the index holds, read on a connection of its own: its documents, and the newest message id it has passed. */
function indexState(): { documents: number; indexedUpTo: number } {
  if (!existsSync(searchIndexFile(file))) return { documents: 0, indexedUpTo: 0 };
  const db = new Database(searchIndexFile(file), { readonly: true });
  try {
    const { documents } = db.query('SELECT count(*) AS documents FROM messages_search_docsize').get() as { documents: number };
    const { indexedUpTo } = db.query('SELECT indexed_up_to AS indexedUpTo FROM search_progress').get() as { indexedUpTo: number };
    return { documents, indexedUpTo };
  } finally {
    db.close();
  }
}

/** The ids of the owner's messages that match `q`. */
async function found(q: string): Promise<number[]> {
  const response = await t.request(`/api/messages/search?q=${encodeURIComponent(q)}`, { token: owner.token });
  expect(response.status).toBe(200);
  return ((await response.json()) as { message_id: number }[]).map((hit) => hit.message_id).sort((a, b) => a - b);
}

async function edit(messageId: number, content: string): Promise<void> {
  const user = await t.app.services.auth.authenticate(owner.token);
  await t.app.services.messageChanges.edit(user, chatId, messageId, { content });
}

test('messages stored are not indexed with their commits; a search takes in every one stored before it', async () => {
  const before = indexState();
  const first = await storeMessages(t, owner, chatId, 3, (i) => `lantern first ${i}`);
  const second = await storeMessages(t, owner, chatId, 2, (i) => `lantern second ${i}`);
  // Two commits, and the index has not changed.
  expect(indexState()).toEqual(before);
  expect(await found('lantern')).toEqual([...first, ...second]);
  expect(indexState()).toEqual({ documents: before.documents + 5, indexedUpTo: second.at(-1)! });
});

test('an edit or a deletion before a message is indexed leaves the index right, as does one after', async () => {
  const [edited, deleted, kept] = await storeMessages(t, owner, chatId, 3, (i) => ['harbour before', 'harbour gone', 'harbour kept'][i]!);
  await edit(edited!, 'quay during');
  const user = await t.app.services.auth.authenticate(owner.token);
  await t.app.services.messageChanges.delete(user, chatId, deleted!);
  expect(await found('harbour')).toEqual([kept!]);
  expect(await found('quay')).toEqual([edited!]);
  // Indexed by now: a later edit is taken in as a change.
  await edit(edited!, 'pier after');
  expect(await found('quay')).toEqual([]);
  expect(await found('pier')).toEqual([edited!]);
  const db = new Database(searchIndexFile(file));
  try {
    // FTS5's own check of its structure: throws on a corrupt index.
    db.run(`INSERT INTO messages_search (messages_search) VALUES ('integrity-check')`);
  } finally {
    db.close();
  }
});

test('what the process had not indexed when it stopped is taken in with the next message after the next start, without a search', async () => {
  const unindexed = await storeMessages(t, owner, chatId, 2, (i) => `beacon ${i}`);
  expect(indexState().indexedUpTo).toBeLessThan(unindexed[0]!);
  await t.cleanup();
  // The same file, served again with the default delay.
  const again = await createTestApp({ DATABASE_URL: `file:${file}` });
  try {
    const [next] = await storeMessages(again, owner, chatId, 1, () => 'beacon next');
    await again.app.services.searchIndex.settled();
    expect(indexState().indexedUpTo).toBe(next!);
  } finally {
    await again.cleanup();
  }
  t = await createTestApp({ DATABASE_URL: `file:${file}`, SEARCH_INDEX_DELAY_MS: NEVER });
});

test('the changes the index has taken in are deleted from the database but the last; those it has not are kept', async () => {
  const changes = async () => (await t.app.services.db.$queryRaw<{ seq: bigint }[]>`SELECT seq FROM search_changes ORDER BY seq`).map((row) => Number(row.seq));
  const [id] = await storeMessages(t, owner, chatId, 1, () => 'osprey');
  await t.app.services.searchIndex.catchUp();
  const before = await changes();
  await edit(id!, 'osprey once');
  await edit(id!, 'osprey twice');
  const made = (await changes()).slice(before.length);
  expect(made).toHaveLength(2);
  expect(await found('twice')).toEqual([id!]);
  expect(await changes()).toEqual([made[1]!]);
});

test('a damaged index file is rebuilt from the messages by the next search', async () => {
  const [id] = await storeMessages(t, owner, chatId, 1, () => 'cormorant');
  expect(await found('cormorant')).toEqual([id!]);
  await t.cleanup();
  await Bun.write(searchIndexFile(file), 'not a database '.repeat(1_000));
  t = await createTestApp({ DATABASE_URL: `file:${file}`, SEARCH_INDEX_DELAY_MS: NEVER });
  expect(await found('cormorant')).toEqual([id!]);
});

test('a burst of searches shares the pass that takes messages in: at most the one under way and one more', async () => {
  let passes = 0;
  const started = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const index = new SqliteSearchIndex(
    t.app.services.db,
    async () => {
      passes++;
      started.resolve();
      await release.promise;
      return 0;
    },
    quietLog(),
    Number(NEVER),
  );
  const first = Array.from({ length: 50 }, () => index.catchUp());
  await started.promise;
  const meanwhile = Array.from({ length: 50 }, () => index.catchUp());
  release.resolve();
  await Promise.all([...first, ...meanwhile]);
  expect(passes).toBe(2);
});

test("the chats a search is scoped to are checked on the messages too, not only on the index's word for them", async () => {
  const elsewhere = await groupRoom(t, owner, [], 'elsewhere');
  const [other] = await storeMessages(t, owner, elsewhere, 1, () => 'albatross far');
  await t.app.services.searchIndex.catchUp();
  // An index out of step with the messages (written apart from them), claiming the message is in this chat.
  const index = new Database(searchIndexFile(file));
  try {
    index.run(`INSERT INTO messages_search (rowid, content, chat_id) VALUES (?, 'albatross forged', ?)`, [other!, chatId]);
  } finally {
    index.close();
  }
  const response = await t.request(`/api/messages/search?q=albatross&chat_id=${chatId}`, { token: owner.token });
  expect(await response.json()).toEqual([]);
});

test('closing waits for a run under way, so it never meets a closed database', async () => {
  const closing = await createTestApp({ DATABASE_URL: `file:${file}`, SEARCH_INDEX_DELAY_MS: NEVER });
  try {
    await storeMessages(closing, owner, chatId, 3, (i) => `closing ${i}`);
    let finished = false;
    void closing.app.services.searchIndex.catchUp().then(() => (finished = true));
    await closing.app.services.searchIndex.close();
    expect(finished).toBe(true);
  } finally {
    await closing.cleanup();
  }
});
