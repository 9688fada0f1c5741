import { RateLimitedError } from './errors';

const WINDOW_MS = 60_000;
// Expired entries are otherwise dropped only when read; a spray of usernames must not grow memory.
const SWEEP_ABOVE_ENTRIES = 10_000;

/**
 * Counts failed logins per username and per client address in a fixed one-minute window.
 * Only failures count and a window always ends, so an attacker can delay a real user by
 * at most one window, never lock the account.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly maxFailuresPerMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  check(username: string, clientAddress: string | null): void {
    if (this.maxFailuresPerMinute === 0) return;
    for (const key of this.keys(username, clientAddress)) {
      const entry = this.current(key);
      if (entry && entry.count >= this.maxFailuresPerMinute) {
        throw new RateLimitedError('Too many failed login attempts, try again later', Math.ceil((entry.resetAt - this.now()) / 1000));
      }
    }
  }

  recordFailure(username: string, clientAddress: string | null): void {
    if (this.maxFailuresPerMinute === 0) return;
    if (this.failures.size > SWEEP_ABOVE_ENTRIES) this.sweepExpired();
    for (const key of this.keys(username, clientAddress)) {
      const entry = this.current(key) ?? { count: 0, resetAt: this.now() + WINDOW_MS };
      entry.count += 1;
      this.failures.set(key, entry);
    }
  }

  private sweepExpired(): void {
    for (const key of this.failures.keys()) this.current(key);
  }

  private keys(username: string, clientAddress: string | null): string[] {
    const keys = [`user:${username.trim().toLowerCase()}`];
    if (clientAddress) keys.push(`addr:${clientAddress}`);
    return keys;
  }

  private current(key: string) {
    const entry = this.failures.get(key);
    if (entry && entry.resetAt <= this.now()) {
      this.failures.delete(key);
      return undefined;
    }
    return entry;
  }
}
