import type { Redis } from 'ioredis';

/**
 * Mutual exclusion for a room's bot answers across every instance. With one process the
 * BotService's own per-room queue already serializes, so the local lock only runs the work.
 */
export interface RoomLock {
  /** Runs `work` while holding `chatId`'s lock, waiting for it as long as it takes. */
  withLock<T>(chatId: number, work: () => Promise<T>): Promise<T>;
}

export const localRoomLock: RoomLock = { withLock: (_chatId, work) => work() };

const TTL_MS = 15_000;
const RENEW_EVERY_MS = 5_000;
const RETRY_MIN_MS = 25;
const RETRY_MAX_MS = 250;

// Renew and release only a lock we still hold: the token proves it.
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * A Redis lock per room (SET NX PX with a token, renewed while held). Chosen over a PostgreSQL
 * advisory lock because an answer holds it for seconds to minutes: an advisory lock would pin a
 * pooled database connection that long, while this one costs a key and expires by itself
 * within TTL_MS when the instance holding it dies, so the room is never stuck.
 */
export function redisRoomLock(redis: Redis, prefix: string): RoomLock {
  return {
    async withLock(chatId, work) {
      const key = `${prefix}bot-lock:${chatId}`;
      const token = crypto.randomUUID();
      let wait = RETRY_MIN_MS;
      while ((await redis.set(key, token, 'PX', TTL_MS, 'NX')) !== 'OK') {
        await Bun.sleep(wait + Math.random() * wait);
        wait = Math.min(RETRY_MAX_MS, wait * 2);
      }
      const renewal = setInterval(() => {
        redis.eval(RENEW, 1, key, token, TTL_MS).catch((error: unknown) => console.error(`renewing ${key} failed`, error));
      }, RENEW_EVERY_MS);
      try {
        return await work();
      } finally {
        clearInterval(renewal);
        await redis.eval(RELEASE, 1, key, token).catch((error: unknown) => console.error(`releasing ${key} failed`, error));
      }
    },
  };
}
