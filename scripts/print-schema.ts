/**
 * Writes the GraphQL schema's SDL to schema.graphql at the repository root (`npm run schema:print`).
 * test/schema-sdl.test.ts fails when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from '../src/schema';

export const SCHEMA_FILE = resolve(import.meta.dir, '..', 'schema.graphql');

/** The SDL as committed: sorted, so field order in the code never churns the file. */
export function printSdl(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

if (import.meta.main) {
  writeFileSync(SCHEMA_FILE, printSdl());
  console.log(`wrote ${SCHEMA_FILE}`);
}
