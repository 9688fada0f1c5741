import type { Database } from '../db/client';
import type { PublicUser } from './auth.service';
import { publicUserSelect } from './auth.service';
import { parseInput, userSearchQuery } from './validation';

/** Shorter queries match too much of the user table to be worth answering. */
const MIN_QUERY_LENGTH = 2;

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
    // Both columns hold lower case (the username's key, the email as stored), so a lower-case
    // `contains` ignores case the same way on SQLite and PostgreSQL.
    const needle = query.toLowerCase();
    return this.db.user.findMany({
      where: { id: { not: caller.id }, OR: [{ usernameKey: { contains: needle } }, { email: { contains: needle } }] },
      orderBy: { usernameKey: 'asc' },
      take: limit,
      select: publicUserSelect,
    });
  }
}
