import type { Database } from '../db/client';
import type { PublicUser } from './auth.service';
import { publicUserSelect } from './auth.service';
import { parseInput, userSearchQuery } from './validation';

/** Shorter queries match too much of the user table to be worth answering. */
const MIN_QUERY_LENGTH = 2;

/** `text` as a LIKE pattern that matches it literally anywhere: `%`, `_` and the escape itself are escaped. */
const containing = (text: string) => `%${text.replace(/[\\%_]/g, (character) => `\\${character}`)}%`;

export class UserService {
  constructor(private readonly db: Database) {}

  /**
   * Users whose username or email contains `query`, ignoring case, the caller left out; none for a
   * query under two characters.
   * @example await users.search(me, { query: 'jan', limit: 10 })
   */
  async search(caller: PublicUser, input: unknown): Promise<PublicUser[]> {
    const { query, limit } = parseInput(userSearchQuery, input, 'query');
    if (query.length < MIN_QUERY_LENGTH) return [];
    // Both columns hold lower case (the username's key, the email as stored), so a lower-case pattern
    // ignores case the same way on both engines. Raw SQL for the ESCAPE clause: Prisma's `contains`
    // reads `%` and `_` as wildcards on SQLite.
    const pattern = containing(query.toLowerCase());
    const matches = await this.db.$queryRaw<{ id: number }[]>`
      SELECT id FROM users
      WHERE id <> ${caller.id} AND (username_key LIKE ${pattern} ESCAPE '\\' OR email LIKE ${pattern} ESCAPE '\\')
      ORDER BY username_key LIMIT ${limit}`;
    if (matches.length === 0) return [];
    return this.db.user.findMany({ where: { id: { in: matches.map((match) => match.id) } }, orderBy: { usernameKey: 'asc' }, select: publicUserSelect });
  }
}
