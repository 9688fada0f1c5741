import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaBunSqlite } from 'prisma-adapter-bun-sqlite';
import { applyMigrations, modelsSql } from '../src/db/migrate';
import { VISIBLE_STATUSES } from '../src/services/room-feed';
import { attachSearchIndex, indexPass, searchIndexFile } from '../src/services/search/sqlite-search-file';
import { createTestDatabase } from './support/app';

const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MIGRATIONS = [
  '20261125000000_init',
  '20261206000000_survive',
  '20261207000000_read_positions',
  '20261208000000_reactions',
  '20261209000000_edit_delete',
  '20261210000000_search',
  '20261211000000_presence',
  '20261212000000_oauth',
  '20261213000000_webhooks',
  '20261214000000_attachments_profiles',
  '20261215000000_assistants',
  '20261216000000_partial_indexes',
  '20261217000000_deferred_search_index',
  '20261218000000_search_index_file',
  '20261219000000_streaming_index',
];

/**
 * What the migrations build that Prisma's models cannot describe, by name: what message search needs
 * (on SQLite, what its index in a file of its own follows: 20261218000000_search_index_file; on
 * PostgreSQL, its index: 20261210000000_search) and the partial indexes of pending asks and changed messages
 * (20261216000000_partial_indexes) and of streaming answers (20261219000000_streaming_index). The drift tests compare everything else exactly, and require these to
 * exist: a later migration that dropped them (say, by redefining `messages`) fails here.
 */
const RAW_ONLY = {
  sqlite: [
    'table search_source',
    'table search_changes',
    'trigger search_changes_update',
    'trigger search_changes_delete',
    'index messages_pending_ask_idx',
    'index messages_changed_idx',
    'index messages_streaming_idx',
  ],
  postgres: [
    'column messages.search_vector',
    'function search_fold',
    'index messages_search_vector_idx',
    'index messages_pending_ask_idx',
    'index messages_changed_idx',
    'index messages_streaming_idx',
  ],
};

const migrationSql = (engine: 'sqlite' | 'postgres', name: string) =>
  Bun.file(join(import.meta.dir, '..', 'prisma', engine, 'migrations', name, 'migration.sql')).text();

/** Rows written before search existed: a visible message and a streaming answer, both holding "lighthouse". */
const EXISTING_MESSAGES = `INSERT INTO users (username, username_key, email, hashed_password) VALUES ('old', 'old', 'old@example.com', 'x');
  INSERT INTO chats (name, owner_id) VALUES ('old', 1);
  INSERT INTO messages (chat_id, user_id, content, status) VALUES (1, 1, 'archived lighthouse notes', 'complete'), (1, NULL, 'lighthouse draft', 'streaming');`;

/** A schema as `name → definition`, where a name is `<kind> <object>` (as RAW_ONLY names them). */
type Schema = Map<string, string>;

/** `migrated` without the RAW_ONLY objects, which it must hold; compared whole with the models' schema. */
function withoutRawOnly(migrated: Schema, rawOnly: string[]): Schema {
  expect(rawOnly.filter((name) => !migrated.has(name))).toEqual([]);
  return new Map([...migrated].filter(([name]) => !rawOnly.includes(name)));
}

/**
 * Every table, index and trigger SQLite holds, each with the SQL that made it. Spacing is left out: SQLite
 * splices an `ALTER TABLE … ADD COLUMN` into the stored statement as it was typed.
 */
function sqliteSchema(path: string): Schema {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db
      .query<{ type: string; name: string; sql: string }, []>(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '\\_prisma%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%'",
      )
      .all();
    return new Map(rows.map((row) => [`${row.type} ${row.name}`, row.sql.replace(/\s+/g, ' ').replace(/ ?([(),]) ?/g, '$1')]));
  } finally {
    db.close();
  }
}

describe('SQLite migrations', () => {
  test('applied at start, recorded, and applied only once', async () => {
    const path = join(dir, 'once.db');
    const adapter = new PrismaBunSqlite({ url: `file:${path}` });
    expect(await applyMigrations('sqlite', adapter)).toEqual(MIGRATIONS);
    expect(await applyMigrations('sqlite', adapter)).toEqual([]);
    const db = new Database(path, { readonly: true });
    expect(db.query('SELECT migration_name FROM _prisma_migrations').all()).toEqual(MIGRATIONS.map((migration_name) => ({ migration_name })));
    db.close();
  });

  test('`npm run migrate` (which `npm start` runs in a child process) applies them and exits; a bad URL exits 78 saying the fix', async () => {
    const path = join(dir, 'cli.db');
    const env = { PATH: process.env.PATH ?? '', DATABASE_URL: `file:${path}`, SECRET_KEY: 'k'.repeat(40) };
    const migrate = Bun.spawnSync([process.execPath, 'src/migrate.ts'], { env, stderr: 'pipe' });
    expect(migrate.exitCode).toBe(0);
    const db = new Database(path, { readonly: true });
    expect(db.query('SELECT count(*) AS applied FROM _prisma_migrations').get()).toEqual({ applied: MIGRATIONS.length });
    db.close();

    const unreachable = Bun.spawnSync([process.execPath, 'src/migrate.ts'], {
      env: { ...env, DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none' },
      stderr: 'pipe',
    });
    expect(unreachable.exitCode).toBe(78);
    expect(unreachable.stderr.toString()).toContain('Check DATABASE_URL and that the server is reachable');
  });

  test('the committed migrations build exactly the schema of the models, and the declared raw-SQL objects', async () => {
    const migrated = join(dir, 'migrated.db');
    await applyMigrations('sqlite', new PrismaBunSqlite({ url: `file:${migrated}` }));
    const fromModels = join(dir, 'models.db');
    const db = new Database(fromModels);
    db.exec(await modelsSql('sqlite', new PrismaBunSqlite({ url: ':memory:' })));
    db.close();
    expect(withoutRawOnly(sqliteSchema(migrated), RAW_ONLY.sqlite)).toEqual(sqliteSchema(fromModels));
  });

  test('only streaming answers are indexed by status, and finding them after a restart reads that index, not every message', async () => {
    const path = join(dir, 'streaming.db');
    await applyMigrations('sqlite', new PrismaBunSqlite({ url: `file:${path}` }));
    const db = new Database(path);
    try {
      db.exec(EXISTING_MESSAGES);
      // Bound, as Prisma sends it: SQLite plans a partial index for the value bound.
      const plan = db.query<{ detail: string }, [string]>('EXPLAIN QUERY PLAN SELECT id FROM messages WHERE status = ?1').all('streaming');
      expect(plan.map((step) => step.detail)).toEqual(['SCAN messages USING COVERING INDEX messages_streaming_idx']);
      expect(db.query("SELECT id FROM messages INDEXED BY messages_streaming_idx WHERE status = 'streaming'").all()).toEqual([{ id: 2 }]);
    } finally {
      db.close();
    }
  });

  test('after the migrations, the search index takes in the visible messages a database held before search existed', async () => {
    const path = join(dir, 'existing.db');
    const db = new Database(path);
    try {
      const beforeSearch = MIGRATIONS.indexOf('20261210000000_search');
      for (const migration of MIGRATIONS.slice(0, beforeSearch)) db.exec(await migrationSql('sqlite', migration));
      db.exec(EXISTING_MESSAGES);
      for (const migration of MIGRATIONS.slice(beforeSearch)) db.exec(await migrationSql('sqlite', migration));
      attachSearchIndex(db, searchIndexFile(path));
      indexPass(db, VISIBLE_STATUSES);
      expect(db.query(`SELECT rowid AS id FROM messages_search WHERE messages_search MATCH 'lighthouse'`).all()).toEqual([{ id: 1 }]);
    } finally {
      db.close();
    }
  });
});

// The PostgreSQL suite (TEST_DATABASE_URL, as .ci/run sets) checks the other engine's migrations.
if (process.env.TEST_DATABASE_URL) {
  describe('PostgreSQL migrations', () => {
    /** Columns, indexes, constraints, functions and triggers of the public schema, in a comparable form. */
    async function postgresSchema(url: string): Promise<Schema> {
      const sql = new Bun.SQL(url);
      try {
        const columns = await sql`SELECT 'column ' || table_name || '.' || column_name AS name, data_type, is_nullable, column_default, generation_expression
          FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'`;
        const indexes =
          await sql`SELECT 'index ' || indexname AS name, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`;
        const constraints = await sql`SELECT 'constraint ' || conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
          WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_prisma_migrations'`;
        const functions =
          await sql`SELECT 'function ' || proname AS name, pg_get_functiondef(oid) AS def FROM pg_proc WHERE pronamespace = 'public'::regnamespace`;
        const triggers = await sql`SELECT 'trigger ' || tgname AS name, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal`;
        return new Map([...columns, ...indexes, ...constraints, ...functions, ...triggers].map((row: { name: string }) => [row.name, JSON.stringify(row)]));
      } finally {
        await sql.close();
      }
    }

    test('the committed migrations build exactly the schema of the models, and the declared raw-SQL objects', async () => {
      const migrated = await createTestDatabase(dir);
      const fromModels = await createTestDatabase(dir);
      try {
        expect(await applyMigrations('postgres', new PrismaPg({ connectionString: migrated.url }))).toEqual(MIGRATIONS);
        expect(await applyMigrations('postgres', new PrismaPg({ connectionString: migrated.url }))).toEqual([]);
        const script = await modelsSql('postgres', new PrismaPg({ connectionString: fromModels.url }));
        const sql = new Bun.SQL(fromModels.url);
        await sql.unsafe(script);
        await sql.close();
        expect(withoutRawOnly(await postgresSchema(migrated.url), RAW_ONLY.postgres)).toEqual(await postgresSchema(fromModels.url));
      } finally {
        await migrated.drop();
        await fromModels.drop();
      }
    });

    test('the search migration indexes the visible messages a database already holds', async () => {
      const existing = await createTestDatabase(dir);
      const sql = new Bun.SQL(existing.url);
      try {
        const beforeSearch = MIGRATIONS.indexOf('20261210000000_search');
        for (const migration of MIGRATIONS.slice(0, beforeSearch)) await sql.unsafe(await migrationSql('postgres', migration));
        await sql.unsafe(EXISTING_MESSAGES);
        for (const migration of MIGRATIONS.slice(beforeSearch)) await sql.unsafe(await migrationSql('postgres', migration));
        expect(await sql`SELECT id FROM messages WHERE search_vector @@ to_tsquery('simple', 'lighthouse')`).toEqual([{ id: 1 }]);
      } finally {
        await sql.close();
        await existing.drop();
      }
    });
  });
}
