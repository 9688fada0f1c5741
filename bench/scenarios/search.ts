/**
 * Message search latency over a large history: M messages in R rooms, a searcher who is in some of
 * them, on SQLite and on PostgreSQL. Each query runs once through the server (GET
 * /api/messages/search, in one room and across the searcher's rooms) and once bare: the very SQL the
 * server's search engine builds (src/services/search/engines.ts), on bun:sqlite or Bun.SQL in this
 * process, so the ratio is what the server adds (HTTP, the token check, the membership lookups, the
 * cursor check, Prisma, snippets, JSON).
 *
 * The history is written straight into the database (raw SQL, big transactions), not through the
 * API: a million messages through REST would take hours. The index is built once after the rows
 * (SQLite: by moving the search progress on, as the server does; PostgreSQL: the GIN index dropped while
 * seeding, then recreated from its own definition), which is how a bulk load is done, and gives the same
 * index as row-by-row upkeep would.
 */
import { Database } from 'bun:sqlite';
import { randomUUID } from 'node:crypto';
import { redact } from '../../src/config';
import { migrateDatabase } from '../../src/db/client';
import type { Engine } from '../../src/db/migrate';
import type { SearchScope } from '../../src/services/search/engines';
import { searchEngines } from '../../src/services/search/engines';
import type { SearchQuery } from '../../src/services/search/search-query';
import { parseSearchQuery } from '../../src/services/search/search-query';
import { VISIBLE_STATUSES } from '../../src/services/room-feed';
import { attachSearchIndex, indexPass, searchIndexFile } from '../../src/services/search/sqlite-search-file';
import { mintToken } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { ServerProcess } from '../lib/proc';
import type { Summary } from '../lib/stats';
import { ratio, Samples } from '../lib/stats';
import { num, table } from '../lib/table';
import { BackendUnreachable, dropStatement, dropWhenInterrupted, POSTGRES_URL, REACH_TIMEOUT_MS } from './scale';

export interface SearchConfig {
  messages: number;
  rooms: number;
  /** How many of the rooms the searcher is in. */
  searcherRooms: number;
  /** Queries per scope and kind of query. */
  queries: number;
}

/** What each query looks for: typical searches, and the most common words (the worst case: they match a large share of all messages). */
type QueryKind = 'typical' | 'common';
type ScopeName = 'one room' | 'all rooms';

export interface SearchCase {
  kind: QueryKind;
  scope: ScopeName;
  server: Summary;
  bare: Summary;
  /** Hits per query, on average (at most the page size, 20). */
  meanHits: number;
  /** Server ÷ bare. */
  ratios: { p50: number | null; p99: number | null };
}

export interface SearchEngineResult {
  engine: Engine;
  messages: number;
  seedSeconds: number;
  indexSeconds: number;
  cases: SearchCase[];
}

export type SearchResult = Partial<Record<Engine, SearchEngineResult | { skipped: string }>>;

const PAGE = 20;
const AUTHORS = 100;
const AUTHORS_PER_ROOM = 4;
/** A share of messages are bot answers (no author). */
const BOT_SHARE = 0.05;
const VOCABULARY = 50_000;
/** Zipf's exponent for English word frequencies is close to 1. */
const ZIPF_EXPONENT = 1.07;
const WARM_UP_QUERIES = 20;

/** mulberry32: the same history and queries on every run. */
function prng(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Pronounceable made-up words, ranked: word r is drawn with probability ∝ 1/(r+1)^ZIPF_EXPONENT. */
class Vocabulary {
  readonly words: string[] = [];
  private readonly cumulative = new Float64Array(VOCABULARY);
  private readonly random = prng(0x5ea2c4);

  constructor() {
    const syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'shi', 'po', 'va', 'de', 'zu', 'bel', 'kor', 'an', 'es', 'im', 'ul', 'tra', 'gen', 'fo'];
    const seen = new Set<string>();
    while (this.words.length < VOCABULARY) {
      let word = '';
      for (let i = 1 + Math.floor(this.random() * 4); i > 0; i--) word += syllables[Math.floor(this.random() * syllables.length)];
      if (!seen.has(word)) {
        seen.add(word);
        this.words.push(word);
      }
    }
    let total = 0;
    for (let rank = 0; rank < VOCABULARY; rank++) this.cumulative[rank] = total += 1 / (rank + 1) ** ZIPF_EXPONENT;
  }

  word(): string {
    const target = this.random() * this.cumulative[VOCABULARY - 1]!;
    let low = 0;
    let high = VOCABULARY - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.cumulative[middle]! < target) low = middle + 1;
      else high = middle;
    }
    return this.words[low]!;
  }

  /** A message of 4 to 23 words. */
  message(): string {
    const length = 4 + Math.floor(this.random() * 20);
    const words = new Array<string>(length);
    for (let i = 0; i < length; i++) words[i] = this.word();
    return words.join(' ');
  }
}

/** Room r's authors are users 2 + (r·4 + k) mod AUTHORS; user 1 is the searcher, in every (rooms / searcherRooms)-th room. */
interface History {
  config: SearchConfig;
  searcherRooms: number[];
  /** Message n's room, author (null: the bot) and time: rooms take turns, a second apart. */
  row(n: number, vocabulary: Vocabulary): { chatId: number; userId: number | null; content: string; createdAt: string };
}

function history(config: SearchConfig): History {
  const every = Math.floor(config.rooms / config.searcherRooms);
  const random = prng(0xb0b);
  const start = Date.UTC(2026, 0, 1);
  return {
    config,
    searcherRooms: Array.from({ length: config.searcherRooms }, (_, i) => 1 + i * every),
    row(n, vocabulary) {
      const chatId = 1 + (n % config.rooms);
      const userId = random() < BOT_SHARE ? null : 2 + (((chatId - 1) * AUTHORS_PER_ROOM + Math.floor(random() * AUTHORS_PER_ROOM)) % AUTHORS);
      return { chatId, userId, content: vocabulary.message(), createdAt: new Date(start + n * 1000).toISOString().replace('Z', '+00:00') };
    },
  };
}

/** The rooms' participants: the searcher in theirs, each room's authors in it. */
function participants(h: History): [number, number][] {
  const pairs: [number, number][] = h.searcherRooms.map((chatId) => [chatId, 1]);
  for (let chatId = 1; chatId <= h.config.rooms; chatId++) {
    const authors = new Set(Array.from({ length: AUTHORS_PER_ROOM }, (_, k) => 2 + (((chatId - 1) * AUTHORS_PER_ROOM + k) % AUTHORS)));
    for (const userId of authors) pairs.push([chatId, userId]);
  }
  return pairs;
}

interface Probe {
  text: string;
  query: SearchQuery;
  kind: QueryKind;
  scope: ScopeName;
  chatId: number | null;
}

/**
 * The queries, the same on both engines: typical ones (a word of rank 50–5,000, two words of rank
 * 10–1,000, a 3-letter prefix of a word of rank 100–2,000, and two words next to each other taken from
 * a stored message, as a phrase), and the five most common words alone.
 */
function probes(h: History, vocabulary: Vocabulary, phrases: string[], kind: QueryKind, scope: ScopeName): Probe[] {
  const random = prng(kind === 'typical' ? 0x7e57 : 0xc0);
  const rank = (from: number, to: number) => vocabulary.words[from + Math.floor(random() * (to - from))]!;
  return Array.from({ length: h.config.queries }, (_, i) => {
    const text =
      kind === 'common'
        ? rank(0, 5)
        : [
            () => rank(50, 5_000),
            () => `${rank(10, 1_000)} ${rank(10, 1_000)}`,
            () => `${rank(100, 2_000).slice(0, 3)}*`,
            () => `"${phrases[i % phrases.length]}"`,
          ][i % 4]!();
    const query = parseSearchQuery(text);
    if (!('clauses' in query)) throw new Error(`the bench's query ${text} is refused: ${query.error}`);
    return { text, query, kind, scope, chatId: scope === 'one room' ? h.searcherRooms[i % h.searcherRooms.length]! : null };
  });
}

/** The first two words of stored messages in the searcher's rooms, to search for as phrases. */
const phrasesFrom = (contents: string[]) => contents.map((content) => content.split(' ').slice(0, 2).join(' '));

/** What an engine's bench needs from its database: seeding, the bare query, sample messages, the end. */
interface Seeded {
  engine: Engine;
  databaseUrl: string;
  seedSeconds: number;
  indexSeconds: number;
  bare: (sql: { text: string; sql: string; values: unknown[] }) => Promise<number>;
  sampleContents: (chatIds: number[], count: number) => Promise<string[]>;
  close: () => Promise<void>;
}

const BATCH = 10_000;

async function seedSqlite(context: BenchContext, h: History, vocabulary: Vocabulary): Promise<Seeded> {
  const path = `${context.logDir('search-sqlite')}/search.db`;
  await migrateDatabase({ engine: 'sqlite', url: `file:${path}` });
  const db = new Database(path);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144');
  const started = performance.now();
  const seedUsers = db.prepare('INSERT INTO users (id, username, username_key, email, hashed_password) VALUES (?1, ?2, ?2, ?2 || ?3, ?4)');
  db.transaction(() => {
    for (let id = 1; id <= 1 + AUTHORS; id++) seedUsers.run(id, id === 1 ? 'searcher' : `author${id}`, '@bench.test', 'not a password hash');
    const chat = db.prepare("INSERT INTO chats (id, name, owner_id, is_group) VALUES (?, 'room ' || ?1, 2, 1)");
    for (let chatId = 1; chatId <= h.config.rooms; chatId++) chat.run(chatId);
    const participant = db.prepare('INSERT INTO chat_participants (chat_id, user_id) VALUES (?, ?)');
    for (const [chatId, userId] of participants(h)) participant.run(chatId, userId);
  })();
  const rowsPerStatement = 100;
  const insert = db.prepare(
    `INSERT INTO messages (chat_id, user_id, is_bot, content, created_at) VALUES ${Array.from({ length: rowsPerStatement }, () => '(?, ?, ?, ?, ?)').join(', ')}`,
  );
  for (let first = 0; first < h.config.messages; first += BATCH) {
    db.transaction(() => {
      for (let n = first; n < Math.min(first + BATCH, h.config.messages); n += rowsPerStatement) {
        const values: (string | number | null)[] = [];
        for (let i = n; i < n + rowsPerStatement; i++) {
          const row = h.row(i, vocabulary);
          values.push(row.chatId, row.userId, row.userId === null ? 1 : 0, row.content, row.createdAt);
        }
        insert.run(...values);
      }
    })();
    if ((first / BATCH) % 20 === 19) progress(`search, SQLite: ${num(first + BATCH, 0)} messages`);
  }
  const seedSeconds = (performance.now() - started) / 1000;
  const indexing = performance.now();
  // As the server's search worker takes messages into the index's own file (sqlite-search-file.ts).
  attachSearchIndex(db, searchIndexFile(path));
  indexPass(db, VISIBLE_STATUSES);
  const indexSeconds = (performance.now() - indexing) / 1000;
  db.close();
  // The bare queries get a connection like the server's worker: WAL, SQLite's default page cache, the index attached.
  const reader = new Database(path, { readonly: true });
  reader.run('ATTACH DATABASE ? AS search', [searchIndexFile(path)]);
  return {
    engine: 'sqlite',
    databaseUrl: `file:${path}`,
    seedSeconds,
    indexSeconds,
    bare: async ({ sql, values }) => Promise.resolve(reader.query(sql).all(...(values as string[])).length),
    sampleContents: async (chatIds, count) =>
      Promise.resolve(
        Array.from(
          { length: count },
          (_, i) =>
            reader
              .query<{ content: string }, [number, number]>('SELECT content FROM messages WHERE chat_id = ? ORDER BY id LIMIT 1 OFFSET ?')
              .get(chatIds[i % chatIds.length]!, i)!.content,
        ),
      ),
    close: async () => Promise.resolve(reader.close()),
  };
}

async function seedPostgres(context: BenchContext, h: History, vocabulary: Vocabulary): Promise<Seeded> {
  const admin = new Bun.SQL(POSTGRES_URL, { max: 1, connectionTimeout: REACH_TIMEOUT_MS / 1000 });
  try {
    await admin`SELECT 1`;
  } catch (error) {
    await admin.close();
    throw new BackendUnreachable(`PostgreSQL at ${redact(POSTGRES_URL)} is unreachable (${(error as Error).message}); set BENCH_POSTGRES_URL`);
  }
  const database = `gemini_coop_search_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${database}`;
  await admin.unsafe(`CREATE DATABASE "${database}"`);
  const forgetInterrupt = dropWhenInterrupted(database);
  const sql = new Bun.SQL(url.toString(), { max: 1 });
  const close = async () => {
    await sql.close({ timeout: 1 });
    forgetInterrupt();
    await admin.unsafe(dropStatement(database)).catch((error: Error) => console.log(`  WARNING: ${database} was not dropped (${error.message})`));
    await admin.close({ timeout: 1 });
  };
  try {
    await migrateDatabase({ engine: 'postgres', url: url.toString() });
    const started = performance.now();
    const names = Array.from({ length: 1 + AUTHORS }, (_, i) => (i === 0 ? 'searcher' : `author${i + 1}`));
    await sql`INSERT INTO users (id, username, username_key, email, hashed_password)
      SELECT n, name, name, name || '@bench.test', 'not a password hash' FROM unnest(${sql.array(names, 'text')}::text[]) WITH ORDINALITY AS u(name, n)`;
    await sql`INSERT INTO chats (id, name, owner_id, is_group) SELECT g, 'room ' || g, 2, true FROM generate_series(1, ${h.config.rooms}::int) g`;
    const pairs = participants(h);
    await sql`INSERT INTO chat_participants (chat_id, user_id) SELECT * FROM unnest(${sql.array(
      pairs.map(([chatId]) => chatId),
      'int4',
    )}::int[], ${sql.array(
      pairs.map(([, userId]) => userId),
      'int4',
    )}::int[])`;
    for (const table of ['users', 'chats', 'chat_participants'])
      await sql.unsafe(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), (SELECT max(id) FROM ${table}))`);
    // Rows first, the index after, from its own definition.
    const [index] = await sql<{ indexdef: string }[]>`SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_search_vector_idx'`;
    await sql`DROP INDEX messages_search_vector_idx`;
    for (let first = 0; first < h.config.messages; first += BATCH) {
      const rows = Array.from({ length: Math.min(BATCH, h.config.messages - first) }, (_, i) => h.row(first + i, vocabulary));
      await sql`INSERT INTO messages (chat_id, user_id, is_bot, content, created_at)
        SELECT c, u, u IS NULL, t, a AT TIME ZONE 'UTC' FROM unnest(
          ${sql.array(
            rows.map((row) => row.chatId),
            'int4',
          )}::int[],
          ${sql.array(
            rows.map((row) => row.userId),
            'int4',
          )}::int[],
          ${sql.array(
            rows.map((row) => row.content),
            'text',
          )}::text[],
          ${sql.array(
            rows.map((row) => row.createdAt),
            'text',
          )}::timestamptz[]) AS r(c, u, t, a)`;
      if ((first / BATCH) % 20 === 19) progress(`search, PostgreSQL: ${num(first + BATCH, 0)} messages`);
    }
    const seedSeconds = (performance.now() - started) / 1000;
    const indexing = performance.now();
    await sql`SET maintenance_work_mem = '256MB'`;
    await sql.unsafe(index!.indexdef);
    await sql`VACUUM ANALYZE`;
    const indexSeconds = (performance.now() - indexing) / 1000;
    return {
      engine: 'postgres',
      databaseUrl: url.toString(),
      seedSeconds,
      indexSeconds,
      bare: async ({ text, values }) => (await sql.unsafe<unknown[]>(text, values)).length,
      sampleContents: async (chatIds, count) =>
        Promise.all(
          Array.from({ length: count }, async (_, i) => {
            const [row] = await sql<
              { content: string }[]
            >`SELECT content FROM messages WHERE chat_id = ${chatIds[i % chatIds.length]!} ORDER BY id LIMIT 1 OFFSET ${i}`;
            return row!.content;
          }),
        ),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** One query through the server; returns its hits. */
async function viaServer(server: ServerProcess, token: string, probe: Probe): Promise<number> {
  const params = new URLSearchParams({ q: probe.text, limit: String(PAGE) });
  if (probe.chatId !== null) params.set('chat_id', String(probe.chatId));
  const response = await fetch(`${server.url}/api/messages/search?${params}`, { headers: { authorization: `Bearer ${token}` } });
  const body = await response.text();
  if (!response.ok) throw new Error(`search ${probe.text} → ${response.status} ${body.slice(0, 200)}`);
  return (JSON.parse(body) as unknown[]).length;
}

async function measure(seeded: Seeded, server: ServerProcess, token: string, h: History, all: Probe[][]): Promise<SearchCase[]> {
  const engine = searchEngines[seeded.engine];
  const bare = (probe: Probe) => {
    const scope: SearchScope = { chatIds: probe.chatId === null ? h.searcherRooms : [probe.chatId] };
    // The server asks for one row more than a page, to know whether another page follows.
    return seeded.bare(engine.page({ query: probe.query, scope, limit: PAGE + 1, before: null }));
  };
  for (const probe of all.flat().slice(0, WARM_UP_QUERIES)) {
    await viaServer(server, token, probe);
    await bare(probe);
  }
  const cases: SearchCase[] = [];
  for (const probes of all) {
    const serverTimes = new Samples();
    const bareTimes = new Samples();
    let hits = 0;
    // Alternating, so that a busy moment of the machine weighs on both alike.
    for (const probe of probes) {
      let started = performance.now();
      hits += await viaServer(server, token, probe);
      serverTimes.push(performance.now() - started);
      started = performance.now();
      await bare(probe);
      bareTimes.push(performance.now() - started);
    }
    const [serverSummary, bareSummary] = [serverTimes.summary(), bareTimes.summary()];
    cases.push({
      kind: probes[0]!.kind,
      scope: probes[0]!.scope,
      server: serverSummary,
      bare: bareSummary,
      meanHits: hits / probes.length,
      ratios: { p50: ratio(serverSummary.p50, bareSummary.p50), p99: ratio(serverSummary.p99, bareSummary.p99) },
    });
  }
  return cases;
}

async function runEngine(context: BenchContext, config: SearchConfig, engine: Engine): Promise<SearchEngineResult> {
  const vocabulary = new Vocabulary();
  const h = history(config);
  progress(`search, ${engine}: seeding ${num(config.messages, 0)} messages in ${num(config.rooms, 0)} rooms`);
  const seeded = engine === 'sqlite' ? await seedSqlite(context, h, vocabulary) : await seedPostgres(context, h, vocabulary);
  let server: ServerProcess | null = null;
  try {
    server = (await context.startProject(`search-${engine}`, { DATABASE_URL: seeded.databaseUrl })).server;
    const token = await mintToken(1, new TextEncoder().encode(context.secretKey));
    const phrases = phrasesFrom(await seeded.sampleContents(h.searcherRooms, config.queries));
    const sets = (['typical', 'common'] as const).flatMap((kind) =>
      (['one room', 'all rooms'] as const).map((scope) => probes(h, vocabulary, phrases, kind, scope)),
    );
    progress(`search, ${engine}: ${num(sets.flat().length, 0)} queries through the server and bare`);
    const cases = await measure(seeded, server, token, h, sets);
    return { engine, messages: config.messages, seedSeconds: seeded.seedSeconds, indexSeconds: seeded.indexSeconds, cases };
  } finally {
    await server?.stop();
    await seeded.close();
  }
}

/** SQLite, then PostgreSQL (skipped with a note when it does not answer, unless `requirePostgres`). */
export async function runSearch(context: BenchContext, config: SearchConfig, requirePostgres: boolean): Promise<SearchResult> {
  const result: SearchResult = { sqlite: await runEngine(context, config, 'sqlite') };
  try {
    result.postgres = await runEngine(context, config, 'postgres');
  } catch (error) {
    if (!(error instanceof BackendUnreachable) || requirePostgres) throw error;
    result.postgres = { skipped: error.message };
  }
  return result;
}

const TARGETS: Record<ScopeName, number> = { 'one room': 20, 'all rooms': 100 };

/** The table: each engine × kind of query × scope, server and bare, and how to read it. */
export function searchReport(result: SearchResult, config: SearchConfig): string {
  const rows: (string | null)[][] = [];
  const notes: string[] = [];
  for (const engine of ['sqlite', 'postgres'] as const) {
    const run = result[engine];
    if (!run) continue;
    const name = engine === 'sqlite' ? 'SQLite' : 'PostgreSQL';
    if ('skipped' in run) {
      notes.push(`  ${name} SKIPPED: ${run.skipped}`);
      continue;
    }
    notes.push(`  ${name}: seeded in ${num(run.seedSeconds, 0)} s, index built in ${num(run.indexSeconds, 0)} s.`);
    for (const c of run.cases) {
      const target = c.kind === 'typical' ? ` (target < ${TARGETS[c.scope]})` : '';
      rows.push([
        `${name}, ${c.kind} queries, ${c.scope}${target}`,
        num(c.server.p50, 2),
        num(c.server.p99, 2),
        num(c.bare.p50, 2),
        num(c.bare.p99, 2),
        c.ratios.p50 === null ? '—' : `${num(c.ratios.p50, 2)}×`,
        num(c.meanHits, 1),
      ]);
    }
  }
  return [
    table(['', 'server p50 ms', 'server p99 ms', 'bare p50 ms', 'bare p99 ms', 'server/bare p50', 'hits/query'], rows),
    ...notes,
    `  ${num(config.queries, 0)} queries per row, one at a time, each through the server (GET /api/messages/search, limit ${PAGE}) and then bare`,
    '  (the SQL the server builds, run on bun:sqlite / Bun.SQL in the bench process). Typical: a word of rank 50–5,000, two words of',
    '  rank 10–1,000, a 3-letter prefix, a two-word phrase from a stored message; common: the 5 most frequent words alone (each in',
    `  a large share of all messages). ${num(config.searcherRooms, 0)} rooms for "all rooms". Words follow Zipf's law (s = ${ZIPF_EXPONENT}) over ${num(VOCABULARY, 0)} words.`,
  ].join('\n');
}
