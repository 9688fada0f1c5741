import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaBunSqlite } from 'prisma-adapter-bun-sqlite';
import { applyMigrations, modelsSql } from '../src/db/migrate';
import { createTestDatabase } from './support/app';

const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Every table, index and trigger SQLite holds, as the SQL that made it. Spacing is left out: SQLite
 * splices an `ALTER TABLE … ADD COLUMN` into the stored statement as it was typed.
 */
function sqliteSchema(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db
      .query<{ sql: string }, []>("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '\\_prisma%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%'")
      .all();
    return rows.map((row) => row.sql.replace(/\s+/g, ' ').replace(/ ?([(),]) ?/g, '$1')).sort();
  } finally {
    db.close();
  }
}

describe('SQLite migrations', () => {
  test('applied at start, recorded, and applied only once', async () => {
    const path = join(dir, 'once.db');
    const adapter = new PrismaBunSqlite({ url: `file:${path}` });
    expect(await applyMigrations('sqlite', adapter)).toEqual([
      '20261125000000_init',
      '20261206000000_survive',
      '20261207000000_read_positions',
      '20261211000000_presence',
    ]);
    expect(await applyMigrations('sqlite', adapter)).toEqual([]);
    const db = new Database(path, { readonly: true });
    expect(db.query('SELECT migration_name FROM _prisma_migrations').all()).toEqual([
      { migration_name: '20261125000000_init' },
      { migration_name: '20261206000000_survive' },
      { migration_name: '20261207000000_read_positions' },
      { migration_name: '20261211000000_presence' },
    ]);
    db.close();
  });

  test('`npm run migrate` (which `npm start` runs in a child process) applies them and exits; a bad URL exits 78 saying the fix', async () => {
    const path = join(dir, 'cli.db');
    const env = { PATH: process.env.PATH ?? '', DATABASE_URL: `file:${path}`, SECRET_KEY: 'k'.repeat(40) };
    const migrate = Bun.spawnSync([process.execPath, 'src/migrate.ts'], { env, stderr: 'pipe' });
    expect(migrate.exitCode).toBe(0);
    const db = new Database(path, { readonly: true });
    expect(db.query('SELECT count(*) AS applied FROM _prisma_migrations').get()).toEqual({ applied: 4 });
    db.close();

    const unreachable = Bun.spawnSync([process.execPath, 'src/migrate.ts'], {
      env: { ...env, DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none' },
      stderr: 'pipe',
    });
    expect(unreachable.exitCode).toBe(78);
    expect(unreachable.stderr.toString()).toContain('Check DATABASE_URL and that the server is reachable');
  });

  test('the committed migrations build exactly the schema of the models', async () => {
    const migrated = join(dir, 'migrated.db');
    await applyMigrations('sqlite', new PrismaBunSqlite({ url: `file:${migrated}` }));
    const fromModels = join(dir, 'models.db');
    const db = new Database(fromModels);
    db.exec(await modelsSql('sqlite', new PrismaBunSqlite({ url: ':memory:' })));
    db.close();
    expect(sqliteSchema(migrated)).toEqual(sqliteSchema(fromModels));
  });
});

// The PostgreSQL suite (TEST_DATABASE_URL, as .ci/run sets) checks the other engine's migrations.
if (process.env.TEST_DATABASE_URL) {
  describe('PostgreSQL migrations', () => {
    /** Columns, indexes and constraints of the public schema, in a comparable form. */
    async function postgresSchema(url: string): Promise<string[]> {
      const sql = new Bun.SQL(url);
      try {
        const columns = await sql`SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'`;
        const indexes = await sql`SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`;
        const constraints = await sql`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
          WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_prisma_migrations'`;
        return [...columns, ...indexes, ...constraints].map((row) => JSON.stringify(row)).sort();
      } finally {
        await sql.close();
      }
    }

    test('the committed migrations build exactly the schema of the models', async () => {
      const migrated = await createTestDatabase(dir);
      const fromModels = await createTestDatabase(dir);
      try {
        expect(await applyMigrations('postgres', new PrismaPg({ connectionString: migrated.url }))).toEqual([
          '20261125000000_init',
          '20261206000000_survive',
          '20261207000000_read_positions',
          '20261211000000_presence',
        ]);
        expect(await applyMigrations('postgres', new PrismaPg({ connectionString: migrated.url }))).toEqual([]);
        const script = await modelsSql('postgres', new PrismaPg({ connectionString: fromModels.url }));
        const sql = new Bun.SQL(fromModels.url);
        await sql.unsafe(script);
        await sql.close();
        expect(await postgresSchema(migrated.url)).toEqual(await postgresSchema(fromModels.url));
      } finally {
        await migrated.drop();
        await fromModels.drop();
      }
    });
  });
}
