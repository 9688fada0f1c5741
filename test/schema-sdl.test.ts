import { expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { printSdl, SCHEMA_FILE } from '../scripts/print-schema';

/** schema.graphql is the committed contract clients read; it must be what the code builds. */
test('schema.graphql matches the schema the code builds', () => {
  const printed = printSdl();
  const committed = existsSync(SCHEMA_FILE) ? readFileSync(SCHEMA_FILE, 'utf8') : '';
  if (committed !== printed) {
    const want = printed.split('\n');
    const have = committed.split('\n');
    const line = want.findIndex((text, index) => text !== have[index]);
    const at = line === -1 ? have.length : line;
    throw new Error(
      `schema.graphql is stale: the GraphQL schema changed. Run \`npm run schema:print\` and commit schema.graphql.\n` +
        `First difference at line ${at + 1}: expected ${JSON.stringify(want[at] ?? '<end of file>')}, found ${JSON.stringify(have[at] ?? '<end of file>')}.`,
    );
  }
  expect(committed).toBe(printed);
});
