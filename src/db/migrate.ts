import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import type { MigrationList, SchemaEngine } from '@prisma/schema-engine-wasm';
import { redact } from '../config';

export type Engine = 'sqlite' | 'postgres';

const projectRoot = resolve(import.meta.dir, '../..');
export const engineDir = (engine: Engine) => join(projectRoot, 'prisma', engine);

/**
 * Prisma's schema engine as WebAssembly, driven through our own driver adapter.
 * The CLI's native engine is a separate download; this one ships in an npm package,
 * so migrations apply at start-up with no network.
 */
async function withSchemaEngine<T>(
  engine: Engine,
  adapterFactory: SqlMigrationAwareDriverAdapterFactory,
  run: (schemaEngine: SchemaEngine) => Promise<T>,
): Promise<T> {
  const wasmBindings = await (loadedBindings ??= loadBindings());
  // The engine never disposes the connections it opens; left open, a SQLite one keeps its lock.
  const opened: SqlDriverAdapter[] = [];
  const track = async (connection: Promise<SqlDriverAdapter>) => {
    opened.push(await connection);
    return opened.at(-1)!;
  };
  const trackingFactory: SqlMigrationAwareDriverAdapterFactory = {
    provider: adapterFactory.provider,
    adapterName: adapterFactory.adapterName,
    connect: () => track(adapterFactory.connect()),
    connectToShadowDb: () => track(adapterFactory.connectToShadowDb()),
  };
  const datamodels = await readDatamodels(engine);
  const schemaEngine = await wasmBindings.SchemaEngine.new({ datamodels }, () => {}, bindMigrationAwareSqlAdapterFactory(trackingFactory)).catch(
    (error: unknown) => {
      throw withPanicMessage(error);
    },
  );
  try {
    return await run(schemaEngine);
  } catch (error) {
    throw withPanicMessage(error);
  } finally {
    schemaEngine.free();
    await Promise.all(opened.map((connection) => connection.dispose()));
    // bun:sqlite really closes a file only when its statements are finalized, and the adapter leaves
    // those to the GC: collect now, or the next connection finds the file locked.
    if (adapterFactory.provider === 'sqlite') Bun.gc(true);
  }
}

let loadedBindings: Promise<typeof import('@prisma/schema-engine-wasm/schema_engine_bg')> | undefined;

/** What the engine said when it last panicked, kept for the failure the panic causes to report. */
let panicMessage: string | null = null;

/** The engine's failure, explained by its panic message when it panicked (the failure itself is a bare WebAssembly trap). */
function withPanicMessage(error: unknown): unknown {
  const message = panicMessage;
  panicMessage = null;
  return message === null ? error : new Error(`prisma schema engine panicked: ${redact(message)}`, { cause: error });
}

async function loadBindings() {
  // The engine reports panics through this global; without it a panic surfaces as an unrelated TypeError.
  (globalThis as { PRISMA_WASM_PANIC_REGISTRY?: unknown }).PRISMA_WASM_PANIC_REGISTRY = {
    set_message(message: string) {
      panicMessage = message;
    },
  };
  const bg = await import('@prisma/schema-engine-wasm/schema_engine_bg');
  const wasmPath = join(dirname(require.resolve('@prisma/schema-engine-wasm')), 'schema_engine_bg.wasm');
  const { instance } = await WebAssembly.instantiate(await readFile(wasmPath), {
    './schema_engine_bg.js': bg as unknown as WebAssembly.ModuleImports,
  });
  const exports = instance.exports as WebAssembly.Exports & { __wbindgen_start: () => void };
  bg.__wbg_set_wasm(exports);
  exports.__wbindgen_start();
  return bg;
}

export async function readDatamodels(engine: Engine): Promise<[string, string][]> {
  const dir = engineDir(engine);
  const files = (await readdir(dir)).filter((name) => name.endsWith('.prisma')).sort();
  return Promise.all(files.map(async (name): Promise<[string, string]> => [name, await readFile(join(dir, name), 'utf8')]));
}

export async function readMigrations(engine: Engine): Promise<MigrationList> {
  const baseDir = join(engineDir(engine), 'migrations');
  const entries = await readdir(baseDir, { withFileTypes: true });
  const lockPath = join(baseDir, 'migration_lock.toml');
  return {
    baseDir,
    lockfile: { path: lockPath, content: await readFile(lockPath, 'utf8').catch(() => null) },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      entries
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name)
        .sort()
        .map(async (path) => ({
          path,
          migrationFile: {
            path: 'migration.sql',
            content: await readFile(join(baseDir, path, 'migration.sql'), 'utf8').then(
              (ok) => ({ tag: 'ok' as const, value: ok }),
              (error: Error) => ({ tag: 'error' as const, value: error.message }),
            ),
          },
        })),
    ),
  };
}

const noFilters = { externalTables: [], externalEnums: [] };

/** Applies the committed migrations that the database has not seen yet; returns their names. */
export async function applyMigrations(engine: Engine, adapterFactory: SqlMigrationAwareDriverAdapterFactory): Promise<string[]> {
  const migrationsList = await readMigrations(engine);
  return withSchemaEngine(engine, adapterFactory, async (schemaEngine) => {
    const { appliedMigrationNames } = await schemaEngine.applyMigrations({ migrationsList, filters: noFilters });
    return appliedMigrationNames;
  });
}

/**
 * The SQL that creates the models' schema from nothing. Tests apply it beside the committed
 * migrations and compare the two databases, so a model change without its migration fails.
 */
export async function modelsSql(engine: Engine, adapterFactory: SqlMigrationAwareDriverAdapterFactory): Promise<string> {
  const files = (await readDatamodels(engine)).map(([path, content]) => ({ path, content }));
  return withSchemaEngine(engine, adapterFactory, async (schemaEngine) => {
    const { stdout } = await schemaEngine.diff({
      from: { tag: 'empty' },
      to: { tag: 'schemaDatamodel', files },
      script: true,
      exitCode: null,
      filters: noFilters,
    });
    return stdout ?? '';
  });
}
