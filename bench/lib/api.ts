import { Database } from 'bun:sqlite';
import { SignJWT } from 'jose';

export const PASSWORD = 'bench-password-123';

/** Runs `work` over `items` with at most `concurrency` in flight; results keep the input order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** A JSON request to the server; anything but 2xx throws with the server's `detail`. */
export async function api<T>(baseUrl: string, method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as T;
}

export interface BenchUser {
  id: number;
  username: string;
  token: string;
}

/** Registers then logs in once: the token is reused for every socket of this user. */
export async function registerAndLogin(baseUrl: string, username: string): Promise<BenchUser> {
  const user = await api<{ id: number }>(baseUrl, 'POST', '/api/auth/register', { username, email: `${username}@bench.test`, password: PASSWORD });
  const { access_token } = await api<{ access_token: string }>(baseUrl, 'POST', '/api/auth/login', { username, password: PASSWORD });
  return { id: user.id, username, token: access_token };
}

export async function createRoom(baseUrl: string, owner: BenchUser, name: string): Promise<number> {
  const chat = await api<{ id: number }>(baseUrl, 'POST', '/api/chats', { name, is_group: true }, owner.token);
  return chat.id;
}

export async function invite(baseUrl: string, owner: BenchUser, chatId: number, username: string): Promise<void> {
  await api(baseUrl, 'POST', `/api/chats/${chatId}/invite`, { username }, owner.token);
}

/**
 * R rooms of M members through the public API: registrations (two argon2id hashes each: register and
 * login) run `concurrency` at a time because they are CPU-bound on the server; member 0 owns the room.
 */
export async function setupRooms(baseUrl: string, rooms: number, members: number, concurrency = 8): Promise<{ chatId: number; members: BenchUser[] }[]> {
  const names = Array.from({ length: rooms * members }, (_, i) => `r${Math.floor(i / members)}m${i % members}`);
  const users = await pool(names, concurrency, (name) => registerAndLogin(baseUrl, name));
  return pool(
    Array.from({ length: rooms }, (_, r) => r),
    concurrency,
    async (r) => {
      const roomMembers = users.slice(r * members, (r + 1) * members);
      const owner = roomMembers[0]!;
      const chatId = await createRoom(baseUrl, owner, `bench room ${r}`);
      for (const member of roomMembers.slice(1)) await invite(baseUrl, owner, chatId, member.username);
      return { chatId, members: roomMembers };
    },
  );
}

/**
 * R rooms of M members as setupRooms makes them, in seconds instead of minutes: one user registers
 * through REST, the others are written straight into the server's SQLite file (see seedUsers), and
 * member 0 of each room creates it through REST before the others are added the same way.
 */
export async function seedRooms(
  baseUrl: string,
  dbPath: string,
  secretKey: string,
  rooms: number,
  members: number,
): Promise<{ chatId: number; members: BenchUser[] }[]> {
  const template = await registerAndLogin(baseUrl, 'template');
  const users = await seedUsers(dbPath, template, 'r', rooms * members, secretKey);
  return pool(
    Array.from({ length: rooms }, (_, r) => r),
    8,
    async (r) => {
      const roomMembers = users.slice(r * members, (r + 1) * members);
      const chatId = await createRoom(baseUrl, roomMembers[0]!, `bench room ${r}`);
      seedParticipants(
        dbPath,
        chatId,
        roomMembers.slice(1).map((member) => member.id),
      );
      return { chatId, members: roomMembers };
    },
  );
}

/**
 * Thousands of users cannot be registered through REST in reasonable time (argon2id costs ~20 ms of a
 * core per hash on this class of machine). For the bot and idle scenarios the bench therefore writes
 * users straight into the server's SQLite file — copying a REST-registered user's password hash and
 * timestamp format — and signs their tokens with the server's SECRET_KEY, exactly as the server would.
 * Every socket still goes through the server's normal token check (JWT verify + user lookup).
 */
export async function seedUsers(dbPath: string, template: BenchUser, prefix: string, count: number, secretKey: string): Promise<BenchUser[]> {
  const db = new Database(dbPath);
  try {
    db.exec('PRAGMA busy_timeout = 10000');
    const insert = db.prepare<{ id: number }, [string, string, number]>(
      `INSERT INTO users (username, username_key, email, hashed_password, created_at)
       SELECT ?1, lower(?1), ?2, hashed_password, created_at FROM users WHERE id = ?3 RETURNING id`,
    );
    const rows = db.transaction(() =>
      Array.from({ length: count }, (_, i) => {
        const username = `${prefix}${i}`;
        return { id: insert.get(username, `${username}@bench.test`, template.id)!.id, username };
      }),
    )();
    const key = new TextEncoder().encode(secretKey);
    return await Promise.all(rows.map(async (row) => ({ ...row, token: await mintToken(row.id, key) })));
  } finally {
    db.close();
  }
}

/** Adds users to a chat directly in SQLite (see seedUsers for why), copying the owner row's date format. */
export function seedParticipants(dbPath: string, chatId: number, userIds: number[]): void {
  const db = new Database(dbPath);
  try {
    db.exec('PRAGMA busy_timeout = 10000');
    const insert = db.prepare(
      `INSERT INTO chat_participants (chat_id, user_id, joined_at)
       SELECT ?1, ?2, joined_at FROM chat_participants WHERE chat_id = ?1 LIMIT 1`,
    );
    db.transaction(() => userIds.forEach((id) => insert.run(chatId, id)))();
  } finally {
    db.close();
  }
}

/** The token AuthService.issueToken would sign: HS256, sub = user id, 24 h expiry. */
export function mintToken(userId: number, key: Uint8Array): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(String(userId)).setIssuedAt().setExpirationTime('24h').sign(key);
}

/**
 * Runs `read` on a server's SQLite file and closes it again. Meant for after the server exited (or
 * beside it: WAL lets a reader in); throws when the file cannot be read.
 */
export function readDatabase<T>(dbPath: string, read: (db: Database) => T): T {
  const attempt = (options: { readonly: true } | { readwrite: true }) => {
    const db = new Database(dbPath, options);
    try {
      return read(db);
    } finally {
      db.close();
    }
  };
  try {
    return attempt({ readonly: true });
  } catch {
    // A read-only open can fail when the WAL's shared-memory file has to be created: retry writable.
    return attempt({ readwrite: true });
  }
}

/** `SELECT count(*) FROM messages` on a server's SQLite file once that server has exited; null if unreadable. */
export function countMessages(dbPath: string): number | null {
  try {
    return readDatabase(dbPath, (db) => db.query<{ n: number }, []>('SELECT count(*) AS n FROM messages').get()!.n);
  } catch {
    return null;
  }
}
