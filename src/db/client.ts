import type { Database as SqliteConnection } from 'bun:sqlite';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { BunSqliteAdapter } from 'prisma-adapter-bun-sqlite';
import { PrismaBunSqlite } from 'prisma-adapter-bun-sqlite';
import type { Config } from '../config';
import { ConfigError, redact } from '../config';
import { Prisma, PrismaClient } from '../generated/sqlite/client';
import { applyMigrations } from './migrate';

/**
 * Both engines' generated clients expose the same model API (one models file); the services are
 * typed against the SQLite one.
 */
export type Database = PrismaClient;

export interface OpenOptions {
  /** Receives each SQL statement. */
  log?: (query: string) => void;
  /** Apply pending migrations first (default); `npm start` has applied them already, in a child process (src/migrate.ts). */
  migrate?: boolean;
}

/**
 * The configured engine's driver adapter and generated client; PostgreSQL's are loaded only when it is the one.
 * `timeoutMs` bounds PostgreSQL's connection attempts and each query's wait for an answer: a query that
 * times out fails and its connection is dropped from the pool, so a stalled server neither hangs requests
 * nor poisons the pool after it recovers. Migrations run without it: building an index may take long.
 */
async function engineOf(
  database: Omit<Config['database'], 'timeoutMs'>,
  { timeoutMs, opened }: { timeoutMs: number | undefined; opened?: (connection: SqliteConnection) => void },
) {
  if (database.engine === 'sqlite') return { adapter: sqliteAdapter(database.url, opened), Client: PrismaClient };
  const [{ PrismaPg }, { PrismaClient: PostgresClient }] = await Promise.all([import('@prisma/adapter-pg'), import('../generated/postgres/client')]);
  const adapter = new PrismaPg({ connectionString: database.url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  return { adapter, Client: PostgresClient as unknown as typeof PrismaClient };
}

/** Applies every committed migration the database has not seen yet; a failure is a configuration error that says the fix. */
export async function migrateDatabase(database: Omit<Config['database'], 'timeoutMs'>): Promise<void> {
  try {
    await applyMigrations(database.engine, (await engineOf(database, { timeoutMs: undefined })).adapter);
  } catch (error) {
    // The driver's own message may quote the URL too: the whole line is redacted.
    throw new ConfigError(
      redact(`Cannot open the database at ${database.url}: ${(error as Error).message.split('\n')[0]}. Check DATABASE_URL and that the server is reachable.`),
    );
  }
}

/** Opens the configured database, applying pending migrations first unless told they are applied. */
export async function openDatabase(database: Config['database'], options: OpenOptions = {}): Promise<Database> {
  if (options.migrate !== false) await migrateDatabase(database);
  let connection: SqliteConnection | null = null;
  const { adapter, Client } = await engineOf(database, { timeoutMs: database.timeoutMs, opened: (opened) => (connection = opened) });
  const client = new Client({ adapter, log: options.log ? [{ emit: 'event', level: 'query' }] : [] });
  if (options.log) {
    const log = options.log;
    client.$on('query' as never, (event: { query: string }) => log(event.query));
  }
  if (database.engine === 'sqlite') {
    await client.$connect();
    sqliteConnections.set(client, connection!);
  }
  return client;
}

const sqliteConnections = new WeakMap<Database, SqliteConnection>();

/**
 * The one SQLite connection a client's queries run on (opened by `openDatabase`, never reopened), for
 * the statement too hot for Prisma (see MessageWriter); null on PostgreSQL.
 */
export function sqliteConnectionOf(client: Database): SqliteConnection | null {
  return sqliteConnections.get(client) ?? null;
}

/**
 * Prisma's SQLite adapter, with each connection set up here rather than by the adapter: WAL, where a
 * commit is durable once in the log (`synchronous=NORMAL`), foreign keys on and a 5 s busy timeout
 * (the adapter's own). The adapter's WAL set-up prepares a statement that only the garbage collector
 * finalizes, and until then a closed connection lingers, holding the file: a closed migration
 * connection made the client's first one fail with "database is locked". Statements made with
 * `query` are finalized when their connection closes. `opened` hears of each connection made.
 */
function sqliteAdapter(url: string, opened?: (connection: SqliteConnection) => void): SqlMigrationAwareDriverAdapterFactory {
  const factory = new PrismaBunSqlite({ url, wal: false });
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect() {
      const adapter = (await factory.connect()) as BunSqliteAdapter;
      const connection = adapter.getDatabase();
      connection.run('PRAGMA journal_mode = WAL');
      connection.run('PRAGMA synchronous = NORMAL');
      opened?.(connection);
      return adapter;
    },
    connectToShadowDb: () => factory.connectToShadowDb(),
  };
}

/**
 * `ids` as a one-column table for `IN`, passed as one parameter (a JSON array): the statement reads the
 * same for 1 id or 500. Prisma's `in` and `Prisma.join` write a placeholder per id, so every batch size
 * is a statement of its own, prepared, compiled and cached anew: 500 lookups of 1, 2, … 500 users grew a
 * process by 58–66 MB, against 5 MB with one parameter (BENCHMARKS.md, tenth round).
 * @example db.$queryRaw`SELECT id FROM users WHERE id IN ${idsTable(db, [1, 2])}`
 */
export function idsTable(db: Database, ids: readonly number[]): Prisma.Sql {
  const json = JSON.stringify(ids);
  return sqliteConnectionOf(db)
    ? Prisma.sql`(SELECT value FROM json_each(${json}))`
    : // bigint, so an id past int4's range matches nothing instead of failing the whole batch.
      Prisma.sql`(SELECT value::bigint FROM json_array_elements_text(${json}::json))`;
}
