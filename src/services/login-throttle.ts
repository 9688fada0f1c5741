import type { Attempt } from './rate-limit';
import { WindowCounter } from './rate-limit';

/**
 * Counts failed logins per username and per client address in a fixed one-minute window.
 * An attempt is counted before its password is checked and given back when it succeeds, so only
 * failures count, yet a hundred guesses sent at once are refused past the limit instead of all
 * being checked. A window always ends, so an attacker can delay a real user by at most one
 * window, never lock the account.
 */
export class LoginThrottle {
  private readonly attempts: WindowCounter;

  constructor(maxFailuresPerMinute: number, { now = Date.now, onRefused }: { now?: () => number; onRefused?: () => void } = {}) {
    this.attempts = new WindowCounter({
      limit: maxFailuresPerMinute,
      windowMs: 60_000,
      message: 'Too many failed login attempts, try again later',
      now,
      onRefused,
    });
  }

  /** Counts a login attempt, or throws RATE_LIMITED; the caller refunds it when the login succeeds. */
  reserve(username: string, clientAddress: string | null): Attempt {
    const keys = [`user:${username.trim().toLowerCase()}`];
    if (clientAddress) keys.push(`addr:${clientAddress}`);
    return this.attempts.reserve(keys);
  }

  /** Usernames and addresses counted right now (bounded). */
  get size(): number {
    return this.attempts.size;
  }
}
