import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { sharedSqliteFile } from '../src/config';
import type { PublicUser } from '../src/services/auth.service';
import { INDEXED_CHATS_LIMIT } from '../src/services/search/engines';
import { MAX_QUERY_LENGTH, MAX_QUERY_WORDS } from '../src/services/search/search-query';
import { searchIndexFile } from '../src/services/search/sqlite-search-file';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { captureLogs } from './support/logs';
import { groupRoom } from './support/rooms';

/**
 * Message search over REST and GraphQL, in-process, on the configured engine: SQLite by default,
 * PostgreSQL with TEST_DATABASE_URL. Each test writes its own words, so tests do not see each other's
 * messages. Rows a REST call cannot make (a streaming or failed bot answer, an edit, a deletion) are
 * written with Prisma, as the bot and the edit/delete paths write them: the index must follow any writer.
 */

let t: TestApp;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
/** alice, bob and carol */
let team: number;
/** bob and carol only */
let side: number;
const errors = captureLogs('error');

beforeAll(async () => {
  t = await createTestApp({ BOT_NAME: 'helper-bot' }, { log: errors.log });
  [alice, bob, carol] = [await signUp(t, 'alice'), await signUp(t, 'bob'), await signUp(t, 'carol')];
  team = await groupRoom(t, alice, [bob, carol], 'team');
  side = await groupRoom(t, bob, [carol], 'side');
  // Three registrations (argon2id) on a busy machine can outlast a hook's default time.
}, 60_000);
afterAll(async () => {
  await t.cleanup();
  expect(errors.lines()).toEqual([]);
});

interface Hit {
  chat_id: number;
  message_id: number;
  username: string | null;
  content: string;
  created_at: string;
  snippet: string;
}

const viewer = (user: TestUser): Promise<PublicUser> => t.app.services.auth.authenticate(user.token);

/** Sends messages one after the other (so ids follow the order given); returns their ids. */
async function send(author: TestUser, chatId: number, ...contents: string[]): Promise<number[]> {
  const user = await viewer(author);
  const ids: number[] = [];
  for (const content of contents) ids.push((await t.app.services.messages.send(user, chatId, { content })).id);
  return ids;
}

const searchUrl = (params: Record<string, string | number>) =>
  `/api/messages/search?${new URLSearchParams(Object.entries(params).map(([key, value]) => [key, String(value)]))}`;

const search = (user: TestUser, params: Record<string, string | number>) => t.request(searchUrl(params), { token: user.token });

async function hits(user: TestUser, q: string, params: Record<string, string | number> = {}): Promise<Hit[]> {
  const response = await search(user, { q, ...params });
  expect(response.status).toBe(200);
  return (await response.json()) as Hit[];
}

const ids = (found: Hit[]) => found.map((hit) => hit.message_id);

/** The messages in SQLite's index, read from its file (sqlite-search-file.ts). */
function sqliteIndexed(): number {
  const index = new Database(searchIndexFile(sharedSqliteFile(t.config.database)!), { readonly: true });
  try {
    return index.query<{ n: number }, []>('SELECT count(*) AS n FROM messages_search_docsize').get()!.n;
  } finally {
    index.close();
  }
}

/** The messages PostgreSQL has a search vector for. */
async function postgresIndexed(): Promise<number> {
  const [row] = await t.app.services.db.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE search_vector IS NOT NULL`;
  return row!.n;
}

async function graphql(user: TestUser | null, query: string, variables: Record<string, unknown> = {}) {
  const response = await t.request('/graphql', { method: 'POST', json: { query, variables }, ...(user ? { token: user.token } : {}) });
  return (await response.json()) as {
    data?: {
      searchMessages: { edges: { cursor: string; node: Record<string, unknown> }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
    } | null;
    errors?: { message: string; extensions: { code: string } }[];
  };
}

const SEARCH = `query Search($query: String!, $chatId: ID, $first: Int, $after: String) {
  searchMessages(query: $query, chatId: $chatId, first: $first, after: $after) {
    edges { cursor node { chatId messageId username content createdAt snippet } }
    pageInfo { hasNextPage endCursor }
  }
}`;

describe('matching', () => {
  test('every word must match, in any order, ignoring case', async () => {
    const [draft, final] = await send(alice, team, 'Quarterly REPORT draft', 'report for the quarterly review, final', 'quarterly numbers only');
    expect(ids(await hits(bob, 'quarterly report')).sort()).toEqual([draft!, final!]);
    expect(ids(await hits(bob, 'QUARTERLY Report draft'))).toEqual([draft!]);
    expect(await hits(bob, 'quarterly report missing')).toEqual([]);
  });

  test('"quoted words" must follow each other, in order; punctuation between them does not matter', async () => {
    const [ordered, hyphen] = await send(alice, team, 'the annual budget meeting', 'an annual-budget line', 'budget annual, reversed');
    expect(ids(await hits(bob, '"annual budget"')).sort()).toEqual([ordered!, hyphen!]);
    expect(ids(await hits(bob, 'annual-budget')).sort()).toEqual([ordered!, hyphen!]);
    expect(ids(await hits(bob, '"annual budget meeting"'))).toEqual([ordered!]);
  });

  test('prefix*: words that start so, also as the end of a phrase', async () => {
    const [deploying, deployment] = await send(alice, team, 'deploying the zanzibar fix', 'zanzibar deployment done', 'zanzibar deplo');
    expect(ids(await hits(bob, 'zanzibar deploy*')).sort()).toEqual([deploying!, deployment!]);
    expect(ids(await hits(bob, '"zanzibar deploym"*'))).toEqual([deployment!]);
    expect(await hits(bob, 'zanzib')).toEqual([]);
  });

  test('best matches first (the word more often, in a shorter message), then newest', async () => {
    const [long, firstShort, twice, secondShort] = await send(
      alice,
      team,
      'kumquat with a long list of other words in this message about the weekend plans',
      'kumquat smoothie',
      'kumquat kumquat',
      'kumquat smoothie',
    );
    expect(ids(await hits(bob, 'kumquat'))).toEqual([twice!, secondShort!, firstShort!, long!]);
  });

  test('bot answers are found, under the bot name', async () => {
    const answer = await t.app.services.db.message.create({
      data: { chatId: team, isBot: true, content: 'The capital of Mongolia is Ulaanbaatar', replyToId: null },
    });
    const [hit] = await hits(bob, 'ulaanbaatar');
    expect(hit).toMatchObject({ message_id: answer.id, username: 'helper-bot', chat_id: team });
  });
});

describe('what is searchable', () => {
  test('never a streaming or failed answer; an answer is found once it completes', async () => {
    const streaming = await t.app.services.db.message.create({ data: { chatId: team, isBot: true, content: 'papaya facts so far', status: 'streaming' } });
    await t.app.services.db.message.create({ data: { chatId: team, isBot: true, content: 'papaya answer that failed', status: 'failed' } });
    expect(await hits(bob, 'papaya')).toEqual([]);
    await t.app.services.db.message.update({ where: { id: streaming.id }, data: { content: 'papaya facts, complete', status: 'complete' } });
    expect(ids(await hits(bob, 'papaya'))).toEqual([streaming.id]);
    // A stopped answer is shown in history, so it is found too.
    const stopped = await t.app.services.db.message.create({ data: { chatId: team, isBot: true, content: 'papaya half', status: 'stopped' } });
    expect(ids(await hits(bob, 'papaya')).sort()).toEqual([streaming.id, stopped.id].sort());
  });

  test('an edit is found by its new words only, at once', async () => {
    const [edited] = await send(alice, team, 'meet at the old harbour');
    expect(ids(await hits(bob, 'harbour'))).toEqual([edited!]);
    await t.app.services.db.message.update({ where: { id: edited! }, data: { content: 'meet at the new lighthouse' } });
    expect(await hits(bob, 'harbour')).toEqual([]);
    const [hit] = await hits(bob, 'lighthouse');
    expect(hit).toMatchObject({ message_id: edited!, content: 'meet at the new lighthouse', snippet: 'meet at the new <mark>lighthouse</mark>' });
  });

  test('a deleted message leaves the search, whether it is marked deleted or its row is removed', async () => {
    const [marked, removed, kept] = await send(alice, team, 'walrus one', 'walrus two', 'walrus three');
    await t.app.services.db.message.update({ where: { id: marked! }, data: { status: 'deleted', content: '' } });
    await t.app.services.db.message.delete({ where: { id: removed! } });
    expect(ids(await hits(bob, 'walrus'))).toEqual([kept!]);
  });

  test('the index holds exactly the visible messages, a deleted chat taking its messages out', async () => {
    const doomed = await groupRoom(t, carol, [bob], 'doomed');
    await send(carol, doomed, 'ephemeral words here', 'more ephemeral words');
    await t.app.services.chats.delete(await viewer(carol), doomed);
    await t.app.services.searchIndex.catchUp();
    const indexed = t.config.database.engine === 'sqlite' ? sqliteIndexed() : await postgresIndexed();
    const visible = await t.app.services.db.message.count({ where: { status: { in: ['complete', 'stopped'] } } });
    expect(indexed).toBe(visible);
  });
});

describe('whose messages', () => {
  test("only the caller's chats; chat_id narrows to one of them", async () => {
    const [inTeam] = await send(bob, team, 'flamingo in the team room');
    const [inSide] = await send(bob, side, 'flamingo in the side room');
    expect(ids(await hits(alice, 'flamingo'))).toEqual([inTeam!]);
    expect(ids(await hits(carol, 'flamingo')).sort()).toEqual([inTeam!, inSide!]);
    expect(ids(await hits(carol, 'flamingo', { chat_id: side }))).toEqual([inSide!]);
  });

  test('a chat the caller is not in is 403, one that does not exist 404, as everywhere', async () => {
    const forbidden = await search(alice, { q: 'flamingo', chat_id: side });
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toEqual({ detail: 'Not authorized' });
    const missing = await search(alice, { q: 'flamingo', chat_id: 999_999 });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ detail: 'Chat not found' });
  });

  test('someone removed from a chat no longer finds its messages', async () => {
    const dave = await signUp(t);
    const room = await groupRoom(t, alice, [dave], 'leaving');
    await send(alice, room, 'pelican sighting');
    expect(await hits(dave, 'pelican')).toHaveLength(1);
    await t.app.services.chats.removeParticipant(await viewer(alice), room, dave.id);
    expect(await hits(dave, 'pelican')).toEqual([]);
    expect((await search(dave, { q: 'pelican', chat_id: room })).status).toBe(403);
  });

  test(`someone in more than ${INDEXED_CHATS_LIMIT} chats finds the messages of all of them and of no other`, async () => {
    const busy = await signUp(t);
    const user = await viewer(busy);
    const rooms: number[] = [];
    for (let i = 0; i <= INDEXED_CHATS_LIMIT; i++) rooms.push((await t.app.services.chats.create(user, { name: `busy ${i}`, is_group: true })).id);
    const [first] = await send(busy, rooms[0]!, 'armadillo first');
    const [last] = await send(busy, rooms.at(-1)!, 'armadillo last');
    await send(alice, team, 'armadillo elsewhere');
    expect(ids(await hits(busy, 'armadillo')).sort()).toEqual([first!, last!]);
    const page = await hits(busy, 'armadillo', { limit: 1 });
    expect(ids(await hits(busy, 'armadillo', { limit: 1, before: page[0]!.message_id }))).toEqual(ids(await hits(busy, 'armadillo')).slice(1));
  });

  test('without a token: 401', async () => {
    const response = await t.request(searchUrl({ q: 'anything' }));
    expect(response.status).toBe(401);
  });
});

describe('results', () => {
  test('carry the fields of the contract, the content as sent and a snippet that is escaped HTML with <mark>', async () => {
    const content = 'Order <b>Oolong</b> tea & "biscuits" for 4';
    const [id] = await send(alice, team, content);
    const [hit] = await hits(bob, 'oolong biscuits');
    expect(Object.keys(hit!).sort()).toEqual(['chat_id', 'content', 'created_at', 'message_id', 'snippet', 'username']);
    expect(hit).toMatchObject({ chat_id: team, message_id: id!, username: 'alice', content });
    expect(hit!.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(hit!.snippet).toBe('Order &lt;b&gt;<mark>Oolong</mark>&lt;/b&gt; tea &amp; &quot;<mark>biscuits</mark>&quot; for 4');
  });

  test('a long message shows the text around the first match', async () => {
    const filler = Array.from({ length: 40 }, (_, i) => `filler${i}`).join(' ');
    await send(alice, team, `${filler} the wombat appears ${filler}`);
    const [hit] = await hits(bob, 'wombat');
    expect(hit!.snippet).toMatch(/^…filler\d+ .* the <mark>wombat<\/mark> appears .*…$/);
  });

  test('pages: `before` = the last hit of a page gives the next, until none is left', async () => {
    const sent = await send(alice, team, ...Array.from({ length: 7 }, (_, i) => `narwhal ${'narwhal '.repeat(i % 3)}number ${i}`));
    const all = await hits(bob, 'narwhal', { limit: 100 });
    expect(ids(all).sort()).toEqual(sent.sort());
    const paged: Hit[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await hits(bob, 'narwhal', { limit: 3, ...(before === undefined ? {} : { before }) });
      paged.push(...page);
      if (page.length < 3) break;
      before = page.at(-1)!.message_id;
    }
    expect(ids(paged)).toEqual(ids(all));
  });

  test('a `before` that is no longer a hit cannot place the page: 422, search again', async () => {
    const [gone] = await send(alice, team, 'octopus soon edited');
    await send(alice, team, 'octopus stays');
    await t.app.services.db.message.update({ where: { id: gone! }, data: { content: 'squid now' } });
    const response = await search(bob, { q: 'octopus', before: gone! });
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({
      detail: [
        { type: 'value_error', loc: ['query', 'before'], msg: `Message ${gone} is not a result of this search (it changed, or was deleted): search again` },
      ],
    });
  });
});

describe('text in any language', () => {
  test('Cyrillic and Greek ignore case; Latin accents are folded both ways', async () => {
    const [russian, greek, french, plain] = await send(alice, team, 'ПРИВЕТ из Москвы', 'ΚΑΛΗΜΕΡΑ κόσμε', 'Crème brûlée au café', 'cafe creme');
    expect(ids(await hits(bob, 'привет москвы'))).toEqual([russian!]);
    expect(ids(await hits(bob, 'καλημερα'))).toEqual([greek!]);
    expect(ids(await hits(bob, 'creme brulee')).sort()).toEqual([french!]);
    expect(ids(await hits(bob, 'café')).sort()).toEqual([french!, plain!].sort());
    expect((await hits(bob, 'brulee'))[0]!.snippet).toBe('Crème <mark>brûlée</mark> au café');
  });

  test('Arabic and Hebrew words; emoji are not words', async () => {
    const [arabic, hebrew] = await send(alice, team, 'مرحبا بالعالم 🙂', 'שלום עולם 👍');
    expect(ids(await hits(bob, 'بالعالم'))).toEqual([arabic!]);
    expect(ids(await hits(bob, 'עולם'))).toEqual([hebrew!]);
  });

  test('CJK: a run of characters between spaces or punctuation is one word, found whole or by its start', async () => {
    const [japanese] = await send(alice, team, '東京は日本の首都です。大阪にも行きます');
    expect(ids(await hits(bob, '大阪にも行きます'))).toEqual([japanese!]);
    expect(ids(await hits(bob, '東京*'))).toEqual([japanese!]);
    expect((await hits(bob, '東京*'))[0]!.snippet).toBe('<mark>東京は日本の首都です</mark>。大阪にも行きます');
    // Neither engine segments CJK text into words: a word inside a run is not found.
    expect(await hits(bob, '日本')).toEqual([]);
  });
});

describe('bad queries: 422 with the reason, never a 500', () => {
  const cases: [string, Record<string, string | number>, string][] = [
    ['no q', {}, 'Field required'],
    ['empty', { q: '' }, 'The search has no words to look for'],
    ['blank', { q: '   ' }, 'The search has no words to look for'],
    ['only punctuation', { q: '?!… -- ()' }, 'The search has no words to look for'],
    ['an unclosed quote', { q: '"fish and' }, 'The search has an unclosed quote: close it, or leave quotes out'],
    ['an operator', { q: 'tea OR coffee' }, 'The search has no operators such as OR: every word must match. Put "OR" in quotes to search for the word'],
    ['NEAR', { q: 'NEAR(tea coffee)' }, 'The search has no operators such as NEAR: every word must match. Put "NEAR" in quotes to search for the word'],
    ['an exclusion', { q: 'tea -coffee' }, 'The search cannot exclude words ("-word"): leave the minus out'],
    ['a short prefix', { q: 't*' }, 'A prefix search needs at least 2 characters before "*": "t*" has fewer'],
    ['too long', { q: 'x'.repeat(MAX_QUERY_LENGTH + 1) }, `String should have at most ${MAX_QUERY_LENGTH} characters`],
    [
      'too many words',
      { q: Array.from({ length: MAX_QUERY_WORDS + 1 }, (_, i) => `w${i}`).join(' ') },
      `The search has ${MAX_QUERY_WORDS + 1} words: at most ${MAX_QUERY_WORDS}`,
    ],
    ['a NUL', { q: 'tea\u0000' }, 'String should not contain NUL characters'],
    ['limit 0', { q: 'tea', limit: 0 }, 'Input should be greater than or equal to 1'],
    ['limit 101', { q: 'tea', limit: 101 }, 'Input should be less than or equal to 100'],
    ['a bad chat_id', { q: 'tea', chat_id: 'abc' }, 'Input should be a valid integer, unable to parse string as an integer'],
    ['a bad before', { q: 'tea', before: '-1' }, 'Input should be greater than or equal to 1'],
  ];
  for (const [name, params, msg] of cases) {
    test(name, async () => {
      const response = await search(bob, params);
      expect(response.status).toBe(422);
      const { detail } = (await response.json()) as { detail: { msg: string; loc: string[] }[] };
      expect(detail.map((issue) => issue.msg)).toContain(msg);
      expect(detail[0]!.loc[0]).toBe('query');
    });
  }
});

describe('GraphQL searchMessages', () => {
  test('a connection of hits with the same fields in camelCase; `after` = an edge cursor pages on', async () => {
    const sent = await send(alice, team, 'heron one', 'heron two', 'heron three');
    const first = await graphql(bob, SEARCH, { query: 'heron', first: 2 });
    expect(first.errors).toBeUndefined();
    const { edges, pageInfo } = first.data!.searchMessages;
    expect(edges.map((edge) => Number(edge.node.messageId))).toEqual([sent[2]!, sent[1]!]);
    expect(edges[0]).toEqual({
      cursor: String(sent[2]),
      node: {
        chatId: String(team),
        messageId: String(sent[2]),
        username: 'alice',
        content: 'heron three',
        createdAt: expect.any(String),
        snippet: '<mark>heron</mark> three',
      },
    });
    expect(pageInfo).toEqual({ hasNextPage: true, endCursor: String(sent[1]) });
    const next = await graphql(bob, SEARCH, { query: 'heron', first: 2, after: pageInfo.endCursor });
    expect(next.data!.searchMessages.edges.map((edge) => Number(edge.node.messageId))).toEqual([sent[0]!]);
    expect(next.data!.searchMessages.pageInfo.hasNextPage).toBe(false);
    const oneChat = await graphql(carol, SEARCH, { query: 'heron', chatId: String(side) });
    expect(oneChat.data!.searchMessages.edges).toEqual([]);
  });

  test('errors carry extensions.code', async () => {
    const code = async (user: TestUser | null, variables: Record<string, unknown>) => (await graphql(user, SEARCH, variables)).errors?.[0]?.extensions.code;
    expect(await code(null, { query: 'heron' })).toBe('UNAUTHENTICATED');
    expect(await code(alice, { query: 'heron', chatId: String(side) })).toBe('FORBIDDEN');
    expect(await code(alice, { query: 'heron', chatId: '999999' })).toBe('NOT_FOUND');
    const bad = await graphql(alice, SEARCH, { query: 'heron AND egret' });
    expect(bad.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(bad.errors?.[0]?.message).toContain('no operators such as AND');
    expect(await code(alice, { query: 'heron', first: 0 })).toBe('BAD_USER_INPUT');
    expect(await code(alice, { query: 'heron\ud800' })).toBe('BAD_USER_INPUT');
  });
});

test('random queries: 200 or 422 on REST, data or BAD_USER_INPUT on GraphQL, never a server error', async () => {
  const alphabet = [
    ...'ab Zé09"*-+()&|!^:<>{}~\'\\.,;/@#%\t',
    ' AND ',
    ' OR ',
    'NOT ',
    'NEAR(',
    'content:',
    ':*',
    '<->',
    'Я',
    '東京',
    '🙂',
    '\u0301',
    '\u0000',
    '\u200b',
  ];
  let state = Number(process.env.FUZZ_SEED ?? 0x5eed_5ea2) >>> 0;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const statuses = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const q = Array.from({ length: next() % 30 }, () => alphabet[next() % alphabet.length]).join('');
    const response = await search(bob, { q });
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    expect([200, 422]).toContain(response.status);
    const body = (await response.json()) as unknown;
    if (response.status === 200) expect(Array.isArray(body)).toBe(true);
    const answer = await graphql(bob, SEARCH, { query: q });
    if (answer.errors) expect(answer.errors.map((error) => error.extensions.code)).toEqual(['BAD_USER_INPUT']);
    else expect(Array.isArray(answer.data!.searchMessages.edges)).toBe(true);
  }
  expect(statuses.get(200)).toBeGreaterThan(30);
  expect(statuses.get(422)).toBeGreaterThan(30);
});
