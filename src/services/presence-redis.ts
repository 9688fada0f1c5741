import type { Redis } from 'ioredis';
import type { Logger } from '../log';
import type { PresenceChange, PresenceHost, PresenceStore, PresentUser } from './presence-store';

/**
 * How long an instance's sockets count without it renewing its lease: the users of an instance that
 * died go offline this long after its last renewal (their grace is over by then).
 */
export const PRESENCE_LEASE_MS = 10_000;
/** How often each instance renews its lease and sweeps (dead instances, graces whose timer is gone). */
export const PRESENCE_TICK_MS = 2_000;
/** At most this many users per sweep, so one script never holds Redis for long; the next tick goes on. */
const SWEEP_LIMIT = 1_000;
/**
 * The shared keys live this long after the last tick of any instance: a deployment gone for a day (or
 * a test run's prefix) leaves nothing behind, while a cluster restarted within it still settles the
 * graces its last instance left.
 */
const KEYS_TTL_MS = 86_400_000;

/**
 * Keys under `<REDIS_PREFIX>presence:`: `online` (hash: user id → username, while online),
 * `pending` (sorted set: user id → when their last socket closed, while they wait out the grace),
 * `leases` (sorted set: instance → when its lease expires), `instance:<id>` (set: users with a
 * socket there) and `user:<id>` (set: instances where the user has one). Every decision runs in one
 * script, with Redis's clock, so of two instances only one ever announces a change.
 */
const PRELUDE = `
local p = ARGV[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local version = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local function live(uid)
  for _, instance in ipairs(redis.call('SMEMBERS', p .. 'user:' .. uid)) do
    local expiry = redis.call('ZSCORE', p .. 'leases', instance)
    if expiry and tonumber(expiry) > now then return true end
  end
  return false
end

local function arrive(uid, username, me)
  redis.call('SADD', p .. 'user:' .. uid, me)
  redis.call('SADD', p .. 'instance:' .. me, uid)
  redis.call('ZREM', p .. 'pending', uid)
  return redis.call('HSETNX', p .. 'online', uid, username) == 1
end

local function depart(uid, me, at)
  redis.call('SREM', p .. 'instance:' .. me, uid)
  redis.call('SREM', p .. 'user:' .. uid, me)
  if live(uid) or redis.call('HEXISTS', p .. 'online', uid) == 0 then return false end
  redis.call('ZADD', p .. 'pending', 'GT', at, uid)
  return true
end

local function settle(uid, grace)
  local seen = redis.call('ZSCORE', p .. 'pending', uid)
  if not seen or tonumber(seen) + grace > now then return nil end
  redis.call('ZREM', p .. 'pending', uid)
  if live(uid) then return nil end
  local username = redis.call('HGET', p .. 'online', uid)
  if not username then return nil end
  redis.call('HDEL', p .. 'online', uid)
  return math.floor(tonumber(seen)), username
end
`;

/** ARGV: prefix, instance, user id, username → the change's version when the user came online, else 0. */
const ARRIVE = `${PRELUDE}
if arrive(ARGV[3], ARGV[4], ARGV[2]) then return version end
return 0`;

/** ARGV: prefix, instance, user id → 1 when the user has no socket anywhere now (their grace starts). */
const DEPART = `${PRELUDE}
if depart(ARGV[3], ARGV[2], now) then return 1 end
return 0`;

/** ARGV: prefix, grace, user id → {last seen ms, username, version} when the user went offline now. */
const SETTLE = `${PRELUDE}
local seen, username = settle(ARGV[3], tonumber(ARGV[2]))
if not seen then return false end
return {seen, username, version}`;

/**
 * ARGV: prefix, instance, lease ms, grace ms, limit, keys' TTL ms. Renews this instance's lease
 * (and the shared keys' TTL), takes the users of instances whose lease expired as gone since their
 * last renewal, and settles every grace that is over. → {1 when this instance's lease was still
 * live, version, then user id, last seen ms, username for each user who went offline}.
 */
const TICK = `${PRELUDE}
local leases = p .. 'leases'
local lease = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local mine = redis.call('ZSCORE', leases, ARGV[2])
local result = {(mine and tonumber(mine) > now) and 1 or 0, version}
redis.call('ZADD', leases, now + lease, ARGV[2])
for _, key in ipairs({'online', 'pending', 'leases'}) do redis.call('PEXPIRE', p .. key, ARGV[6]) end
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
  if budget <= 0 then break end
  local lastRenewal = tonumber(redis.call('ZSCORE', leases, dead)) - lease
  local members = p .. 'instance:' .. dead
  for _, uid in ipairs(redis.call('SPOP', members, budget)) do
    budget = budget - 1
    depart(uid, dead, lastRenewal)
  end
  if redis.call('SCARD', members) == 0 then redis.call('ZREM', leases, dead) end
end
for _, uid in ipairs(redis.call('ZRANGEBYSCORE', p .. 'pending', '-inf', now - grace, 'LIMIT', 0, tonumber(ARGV[5]))) do
  local seen, username = settle(uid, grace)
  if seen then
    table.insert(result, uid)
    table.insert(result, seen)
    table.insert(result, username)
  end
end
return result`;

/**
 * ARGV: prefix, instance, '1' to leave the cluster (drop the lease), then user id and username of
 * every user with a socket here. Makes Redis hold what this instance holds: whoever it lists and
 * Redis did not have arrives, whoever Redis had and it does not list departs.
 * → {version, then the id of each user who came online}.
 */
const RECONCILE = `${PRELUDE}
local here = {}
for i = 4, #ARGV, 2 do here[ARGV[i]] = ARGV[i + 1] end
for _, uid in ipairs(redis.call('SMEMBERS', p .. 'instance:' .. ARGV[2])) do
  if not here[uid] then depart(uid, ARGV[2], now) end
end
local result = {version}
for uid, username in pairs(here) do
  if arrive(uid, username, ARGV[2]) then table.insert(result, uid) end
end
if ARGV[3] == '1' then redis.call('ZREM', p .. 'leases', ARGV[2]) end
return result`;

/**
 * Presence across instances. Each instance tells Redis of its users' first and last sockets (never
 * of every socket), in order on one connection, and renews a lease every PRESENCE_TICK_MS; a user
 * is online while any instance with a live lease has them. Every tick also sweeps: an instance
 * whose lease expired (it died) has its users depart as of its last renewal, and graces that are
 * over are settled even when the instance that started them is gone. Scripts go as EVAL, not
 * EVALSHA: a NOSCRIPT retry (after Redis restarted) would let a later call of this instance run
 * before the one retried.
 *
 * Redis unreachable never blocks or fails a socket: a call that fails is logged once per outage,
 * and once Redis answers again (or this instance finds its lease was taken for dead) it rewrites
 * what Redis holds of it from its own sockets.
 */
export class RedisPresenceStore implements PresenceStore {
  private readonly keyPrefix: string;
  private readonly instance = crypto.randomUUID();
  private readonly timer: Timer;
  /** What Redis holds of this instance may be wrong (a call failed, or its lease expired): rewrite it. */
  private stale = true;
  private ticking: Promise<void> | null = null;
  private unreachable = false;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly graceMs: number,
    private readonly host: PresenceHost,
    private readonly log: Logger,
  ) {
    this.keyPrefix = `${prefix}presence:`;
    this.timer = setInterval(() => void this.tick(), PRESENCE_TICK_MS);
    void this.tick();
  }

  async arrive(user: PresentUser): Promise<PresenceChange | null> {
    const version = (await this.call(() => this.redis.eval(ARRIVE, 0, this.keyPrefix, this.instance, user.id, user.username))) as number;
    return version === 0 ? null : { userId: user.id, username: user.username, status: 'online', lastSeenAt: null, version };
  }

  async depart(user: PresentUser): Promise<boolean> {
    return (await this.call(() => this.redis.eval(DEPART, 0, this.keyPrefix, this.instance, user.id))) === 1;
  }

  async settle(userId: number): Promise<PresenceChange | null> {
    const settled = (await this.call(() => this.redis.eval(SETTLE, 0, this.keyPrefix, this.graceMs, userId))) as [number, string, number] | null;
    if (!settled) return null;
    const [seen, username, version] = settled;
    return { userId, username, status: 'offline', lastSeenAt: new Date(seen), version };
  }

  async onlineAmong(userIds: number[]): Promise<Set<number>> {
    const names = await this.call(() => this.redis.hmget(`${this.keyPrefix}online`, ...userIds.map(String)));
    return new Set(userIds.filter((_, index) => names[index] !== null));
  }

  /** Leaves the cluster: this instance's users depart now (the others, or the next instance to start, settle them). */
  async close(): Promise<PresenceChange[]> {
    this.closed = true;
    clearInterval(this.timer);
    await this.ticking;
    await this.call(() => this.redis.eval(RECONCILE, 0, this.keyPrefix, this.instance, '1')).catch(() => {});
    return [];
  }

  /** Renews the lease and sweeps; rewrites this instance's users when Redis may have lost them. */
  private tick(): Promise<void> {
    if (this.ticking || this.closed) return this.ticking ?? Promise.resolve();
    this.ticking = (async () => {
      try {
        const [kept, version, ...settled] = (await this.call(() =>
          this.redis.eval(TICK, 0, this.keyPrefix, this.instance, PRESENCE_LEASE_MS, this.graceMs, SWEEP_LIMIT, KEYS_TTL_MS),
        )) as [number, number, ...(string | number)[]];
        if (kept === 0) this.stale = true;
        const changes: PresenceChange[] = [];
        for (let i = 0; i < settled.length; i += 3) {
          const [userId, seen, username] = settled.slice(i, i + 3);
          changes.push({ userId: Number(userId), username: String(username), status: 'offline', lastSeenAt: new Date(Number(seen)), version });
        }
        if (changes.length > 0) this.host.announce(changes);
        if (this.stale) await this.reconcile();
      } catch {
        // Logged by `call`; the next tick tries again.
      } finally {
        this.ticking = null;
      }
    })();
    return this.ticking;
  }

  private async reconcile(): Promise<void> {
    // Cleared first: a call failing while this runs marks it stale again.
    this.stale = false;
    const users = this.host.usersHere();
    const [version, ...arrived] = (await this.call(() =>
      this.redis.eval(RECONCILE, 0, this.keyPrefix, this.instance, '0', ...users.flatMap((user) => [user.id, user.username])),
    )) as [number, ...string[]];
    const names = new Map(users.map((user) => [String(user.id), user.username]));
    const changes = arrived.map((userId): PresenceChange => ({
      userId: Number(userId),
      username: names.get(userId)!,
      status: 'online',
      lastSeenAt: null,
      version,
    }));
    if (changes.length > 0) this.host.announce(changes);
  }

  /** Runs a Redis call; a failure marks this instance's state stale, is logged once per outage, and is rethrown. */
  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      if (this.unreachable) {
        this.unreachable = false;
        this.log.info('presence reaches Redis again');
      }
      return result;
    } catch (error) {
      this.stale = true;
      if (!this.unreachable && !this.closed) {
        this.unreachable = true;
        this.log.error({ err: error }, 'presence cannot reach Redis: statuses may be stale until it answers again');
      }
      throw error;
    }
  }
}
