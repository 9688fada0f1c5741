import { RateLimitedError } from './errors';
import { LruCache } from './lru-cache';

/**
 * A token bucket: `ratePerSecond` steady, up to `burst` at once. A rate of 0 means no limit,
 * which is how the settings turn a limit off (e.g. for benchmarks).
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Takes one token if there is one; false means the caller is over the limit. */
  take(): boolean {
    if (this.ratePerSecond === 0) return true;
    const now = this.now();
    // A wall clock set back must not take tokens away.
    const elapsedMs = Math.max(0, now - this.updatedAt);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs / 1000) * this.ratePerSecond);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Seconds until the next token, for a `Retry-After`. */
  secondsUntilNext(): number {
    return this.ratePerSecond === 0 ? 0 : Math.ceil(Math.max(0, 1 - this.tokens) / this.ratePerSecond);
  }
}

/**
 * A token bucket per key (a user id), for limits that hold per user whichever transport and
 * socket the requests come through. Over the limit, `take` throws RATE_LIMITED with `message` and
 * the seconds until the next token.
 *
 * Memory stays bounded: a bucket left alone until it is full again is no different from a new
 * one, so it expires then; and past `maxKeys` the least recently used bucket goes first.
 * @example new KeyedRateLimiter({ ratePerSecond: 5, burst: 20, message: 'Too many messages' }).take(user.id)
 */
export class KeyedRateLimiter<K> {
  private readonly buckets: LruCache<K, TokenBucket>;

  constructor(
    private readonly options: { ratePerSecond: number; burst: number; message: string; maxKeys?: number; now?: () => number },
  ) {
    const { ratePerSecond, burst, maxKeys = DEFAULT_MAX_KEYS, now = Date.now } = options;
    const refillMs = ratePerSecond === 0 ? 0 : Math.ceil((burst / ratePerSecond) * 1000);
    this.buckets = new LruCache(maxKeys, refillMs, now);
  }

  take(key: K): void {
    const { ratePerSecond, burst, message, now = Date.now } = this.options;
    if (ratePerSecond === 0) return;
    const bucket = this.buckets.get(key) ?? new TokenBucket(ratePerSecond, burst, now);
    // Set again on every use: the bucket expires a full refill after its last use, not its first.
    this.buckets.set(key, bucket);
    if (!bucket.take()) throw new RateLimitedError(message, bucket.secondsUntilNext());
  }

  /** Keys holding a bucket right now (at most `maxKeys`). */
  get size(): number {
    return this.buckets.size;
  }
}

// A bucket is a few dozen bytes: 100,000 of them is a few MB, and more active keys than that in
// one refill period means the limit is the least of the server's problems.
const DEFAULT_MAX_KEYS = 100_000;
