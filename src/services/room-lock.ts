import type { Redis } from 'ioredis';
import type { Logger } from '../log';

/**
 * Mutual exclusion for a room's bot answers across every instance. With one process the
 * BotService's own per-room queue already serializes, so the local lock only runs the work.
 */
export interface RoomLock {
  /**
   * Runs `work` while holding `chatId`'s lock. Waiting for the lock gives up (rejecting with the
   * signal's reason) when `signal` aborts; `work` gets a signal that aborts if the lock is lost
   * before it is done, and must then stop: another instance may hold the room.
   */
  withLock<T>(chatId: number, work: (lost: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T>;
}

/** A local lock is never lost. */
const neverLost = new AbortController().signal;

export const localRoomLock: RoomLock = {
  async withLock(_chatId, work, signal) {
    signal.throwIfAborted();
    return work(neverLost);
  },
};

export interface RedisRoomLockTiming {
  /** How long the key lives unless renewed: a dead holder's room is free again after this. */
  ttlMs: number;
  /** How often the holder renews it. */
  renewEveryMs: number;
}

const DEFAULT_TIMING: RedisRoomLockTiming = { ttlMs: 15_000, renewEveryMs: 5_000 };
const RETRY_MIN_MS = 25;
const RETRY_MAX_MS = 250;

// Renew and release only a lock we still hold: the token proves it.
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** The error a lost lock's signal aborts with. */
export class RoomLockLost extends Error {
  override name = 'RoomLockLost';
}

/**
 * A Redis lock per room (SET NX PX with a token, renewed while held). Chosen over a PostgreSQL
 * advisory lock because an answer holds it for seconds to minutes: an advisory lock would pin a
 * pooled database connection that long, while this one costs a key and expires by itself
 * within the TTL when the instance holding it dies, so the room is never stuck.
 *
 * The holder counts the lock lost, and aborts its work, when a renewal finds the key gone or
 * someone else's, or when no renewal has succeeded for a TTL (Redis unreachable): from then on
 * another instance may have taken the room.
 */
export function redisRoomLock(redis: Redis, prefix: string, log: Logger, { ttlMs, renewEveryMs }: RedisRoomLockTiming = DEFAULT_TIMING): RoomLock {
  /** Takes the key, retrying with backoff until it is free; resolves with when the winning SET was sent. */
  async function acquire(key: string, token: string, signal: AbortSignal): Promise<number> {
    for (let wait = RETRY_MIN_MS; ; wait = Math.min(RETRY_MAX_MS, wait * 2)) {
      signal.throwIfAborted();
      const sentAt = Date.now();
      if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK') return sentAt;
      await pause(wait + Math.random() * wait, signal);
    }
  }

  /**
   * Renews the held key every `renewEveryMs`, one renewal at a time, and aborts `lost` once it
   * cannot be trusted: `stop` ends both timers.
   */
  function renewWhileHeld(key: string, token: string, acquiredAt: number) {
    const lost = new AbortController();
    let stopped = false;
    let renewal: Timer | undefined;
    let expiry: Timer | undefined;
    // The key lives `ttlMs` from the last SET or renewal Redis confirmed, counted from when it was sent.
    const expiresFrom = (sentAt: number) => {
      clearTimeout(expiry);
      expiry = setTimeout(() => lost.abort(new RoomLockLost(`${key} went unrenewed for ${ttlMs} ms`)), sentAt + ttlMs - Date.now());
    };
    const renew = async () => {
      const sentAt = Date.now();
      try {
        const renewed = await redis.eval(RENEW, 1, key, token, ttlMs);
        if (stopped || lost.signal.aborted) return;
        if (renewed === 0) return lost.abort(new RoomLockLost(`${key} is no longer ours`));
        expiresFrom(sentAt);
      } catch (error) {
        if (stopped || lost.signal.aborted) return;
        log.error({ err: error, key }, 'renewing a room lock failed');
      }
      renewal = setTimeout(() => void renew(), renewEveryMs);
    };
    expiresFrom(acquiredAt);
    renewal = setTimeout(() => void renew(), renewEveryMs);
    return {
      lost: lost.signal,
      stop() {
        stopped = true;
        clearTimeout(renewal);
        clearTimeout(expiry);
      },
    };
  }

  return {
    async withLock(chatId, work, signal) {
      const key = `${prefix}bot-lock:${chatId}`;
      const token = crypto.randomUUID();
      const held = renewWhileHeld(key, token, await acquire(key, token, signal));
      try {
        // Given up while the winning SET was on its way: let the lock go unused.
        signal.throwIfAborted();
        return await work(held.lost);
      } finally {
        held.stop();
        await redis.eval(RELEASE, 1, key, token).catch((error: unknown) => log.error({ err: error, key }, 'releasing a room lock failed'));
      }
    },
  };
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts; leaves no timer or listener behind. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
