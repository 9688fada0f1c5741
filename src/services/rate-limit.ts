import { RateLimitedError } from './errors';
import { LruCache } from './lru-cache';

/** One clock for every bucket: a socket has a bucket, and a bound function each would cost every socket one more object. */
const monotonicNow = () => performance.now();

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
    private readonly now: () => number = monotonicNow,
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
    private readonly options: { ratePerSecond: number; burst: number; message: string; maxKeys?: number; now?: () => number; onRefused?: () => void },
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
    if (!bucket.take()) {
      this.options.onRefused?.();
      throw new RateLimitedError(message, bucket.secondsUntilNext());
    }
  }

  /** Keys holding a bucket right now (at most `maxKeys`). */
  get size(): number {
    return this.buckets.size;
  }
}

// A bucket is a few dozen bytes: 100,000 of them is a few MB, and more active keys than that in
// one refill period means the limit is the least of the server's problems.
const DEFAULT_MAX_KEYS = 100_000;

/** An attempt counted by `WindowCounter.reserve`; `refund` gives it back (at most once). */
export interface Attempt {
  refund: () => void;
}

const UNCOUNTED: Attempt = { refund: () => {} };

/**
 * Attempts per key in fixed windows of `windowMs`, each starting with its key's first attempt.
 * `reserve` counts an attempt before the work it guards, so attempts sent all at once cannot all
 * start before the first is counted; over `limit` it throws RATE_LIMITED with the seconds left.
 * A limit of 0 counts nothing. Memory stays bounded: a window is kept no longer than it lasts, and
 * past `maxKeys` the least recently used go first.
 */
export class WindowCounter {
  private readonly windows: LruCache<string, { count: number; resetAt: number }>;

  constructor(private readonly options: { limit: number; windowMs: number; message: string; maxKeys?: number; now?: () => number; onRefused?: () => void }) {
    const { windowMs, maxKeys = DEFAULT_MAX_KEYS, now = Date.now } = options;
    this.windows = new LruCache(maxKeys, windowMs, now);
  }

  /** Counts one attempt under every key, or none when one of them is already at the limit. */
  reserve(keys: string[]): Attempt {
    const { limit, windowMs, message, now = Date.now } = this.options;
    if (limit === 0) return UNCOUNTED;
    const open = keys.map((key) => this.windows.get(key));
    for (const window of open) {
      if (window && window.count >= limit) {
        this.options.onRefused?.();
        throw new RateLimitedError(message, Math.ceil((window.resetAt - now()) / 1000));
      }
    }
    const counted = keys.map((key, index) => {
      const existing = open[index];
      if (existing) return existing;
      // Set once, when the window starts: the cache forgets it exactly when it ends.
      const started = { count: 0, resetAt: now() + windowMs };
      this.windows.set(key, started);
      return started;
    });
    for (const window of counted) window.count += 1;
    let refunded = false;
    return {
      refund: () => {
        if (refunded) return;
        refunded = true;
        // A window that has ended since is forgotten: giving back to it changes nothing.
        for (const window of counted) window.count -= 1;
      },
    };
  }

  /** Keys with a window right now (at most `maxKeys`). */
  get size(): number {
    return this.windows.size;
  }
}
