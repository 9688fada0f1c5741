import type { BenchUser } from '../lib/api';
import { PASSWORD } from '../lib/api';
import type { SoakRun } from './soak-run';

/** A request that has not answered in this long counts as failed: no loop may hang on a stuck server. */
const REQUEST_TIMEOUT_MS = 30_000;

/** One request; its JSON body when it answered 2xx, else null with the failure counted by kind. */
async function call(run: SoakRun, label: string, url: string, init: RequestInit = {}): Promise<unknown> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await response.text();
    if (response.ok) return JSON.parse(text);
    run.tally.error(`${response.status >= 500 ? 'HTTP 5xx' : 'HTTP 4xx'}: ${response.status} ${label}`, text);
  } catch (error) {
    run.tally.error(`HTTP request failed: ${label}`, String(error));
  }
  return null;
}

/**
 * The REST side of the load: a login every `loginEverySeconds` (few, since each costs an argon2id
 * verification on the server), and a read of a room's newest 50 messages every `historyEverySeconds`.
 */
export function restLoad(
  run: SoakRun,
  baseUrl: string,
  rooms: { chatId: number; members: BenchUser[] }[],
  { loginEverySeconds, historyEverySeconds }: { loginEverySeconds: number; historyEverySeconds: number },
): Promise<void>[] {
  const users = rooms.flatMap((room) => room.members);
  const logins = async () => {
    for (let i = 0; run.running; i++) {
      await run.pause(loginEverySeconds * 1000);
      if (!run.running) break;
      const body = JSON.stringify({ username: users[i % users.length]!.username, password: PASSWORD });
      const answer = (await call(run, 'POST /api/auth/login', `${baseUrl}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      })) as { access_token?: unknown } | null;
      if (answer && typeof answer.access_token !== 'string') run.tally.error('login answered without a token', JSON.stringify(answer));
      else if (answer) run.tally.count('logins');
    }
  };
  const historyReads = async () => {
    for (let i = 0; run.running; i++) {
      await run.pause(historyEverySeconds * 1000);
      if (!run.running) break;
      const room = rooms[i % rooms.length]!;
      const headers = { authorization: `Bearer ${room.members[0]!.token}` };
      const page = await call(run, 'GET /api/chats/{id}/messages', `${baseUrl}/api/chats/${room.chatId}/messages?limit=50`, { headers });
      if (page && !Array.isArray(page)) run.tally.error('history answered something other than a list', JSON.stringify(page));
      else if (page) run.tally.count('historyReads');
    }
  };
  return [logins(), historyReads()];
}
