import type { Database } from '../db/client';
import { idsTable } from '../db/client';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { PublicUser } from './auth.service';
import { batched, groupedBy } from './batched';
import { LruCache } from './lru-cache';
import type { PresenceChange, PresenceHost, PresenceStore, PresentUser } from './presence-store';
import type { PubSub, UserEvent, UserPresenceEvent } from './pubsub';
import { settleWithin } from './timeout';

/** What the API shows of a user's presence: `lastSeenAt` is null while they are online. */
export interface UserPresence {
  online: boolean;
  lastSeenAt: Date | null;
}

/** What `connect` hands out for `disconnect`: the user's entry itself, so a socket costs no object of its own. */
export type PresenceTicket = Here;

/** A user of this instance: their sockets here, and the timer of their grace once the last one closed. */
interface Here extends PresentUser {
  sockets: number;
  grace: Timer | null;
}

/**
 * Long enough for any announcement of a user's change to have reached this instance: older changes
 * than the newest one passed on are dropped for this long after it.
 */
const ORDER_MEMORY_MS = 60_000;
const ORDER_MEMORY_USERS = 100_000;
/** How long a read waits for the store before answering from this instance's own sockets. */
const STORE_READ_TIMEOUT_MS = 500;

/**
 * Online and offline. A user is online while at least one of their sockets (`/ws` or graphql-ws) is
 * open on any instance, and offline once the last one has been closed for PRESENCE_GRACE_MS, so a
 * reload does not flap. Each change is told once to everyone who shares a chat with the user (not
 * to the user: their own client knows it is connected) on their `user:event` topic, which `/ws` turns
 * into a `presence` frame and GraphQL into a `PresenceChangedEvent`; going offline is written to
 * `users.last_seen_at` first.
 *
 * This instance counts its own sockets and tells the store (memory, or Redis for a cluster) only of
 * a user's first socket here and their last one closing; a user opening and closing sockets in a
 * loop costs no push within the grace and holds at most one timer.
 */
export class PresenceService implements PresenceHost {
  private readonly here = new Map<number, Here>();
  private readonly store: PresenceStore;
  /** The newest change of each user passed on here, by version: one announced late is stale. */
  private readonly passedOn = new LruCache<number, number>(ORDER_MEMORY_USERS, ORDER_MEMORY_MS);
  /** Store calls and announcements still running: `idle` and `close` wait for them. */
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  /**
   * Set once the store has closed. Until then what it hands over is announced, closing or not: a sweep
   * of the cluster's graces in flight when closing began has taken its users off the graces already,
   * and no other instance would announce them.
   */
  private storeClosed = false;

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly graceMs: number,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    openStore: (host: PresenceHost) => PresenceStore,
  ) {
    this.store = openStore(this);
  }

  /**
   * Counts an open socket of `user` until the ticket returned is handed to `disconnect`, once, when the
   * socket closes (releaseSocket does). Never waits for the store: a socket opens and closes the same
   * whether it answers or not.
   * @example const ticket = presence.connect(user); … presence.disconnect(ticket)
   */
  connect(user: PublicUser): PresenceTicket | null {
    if (this.closed) return null;
    let entry = this.here.get(user.id);
    if (!entry) {
      entry = { id: user.id, username: user.username, sockets: 0, grace: null };
      this.here.set(user.id, entry);
    }
    entry.sockets++;
    if (entry.sockets === 1) {
      this.stopGrace(entry);
      this.track(
        this.store.arrive(user).then(
          (change) => change && this.announce([change]),
          (error: unknown) => this.storeFailed(error, user.id),
        ),
      );
    }
    return entry;
  }

  /** One socket counted by `connect` has closed: called once per ticket. */
  disconnect(ticket: PresenceTicket | null): void {
    if (ticket) this.release(ticket);
  }

  /**
   * Which of `userIds` are online. While the store cannot answer (promptly: a stalled Redis must not
   * stall every list of people), those with a socket on this instance, which is what it still knows.
   */
  async onlineAmong(userIds: number[]): Promise<Set<number>> {
    if (userIds.length === 0) return new Set();
    const knownHere = () => new Set(userIds.filter((id) => this.here.has(id)));
    // A failure has been logged by the store; an answer past the timeout is dropped.
    return settleWithin(this.store.onlineAmong(userIds).catch(knownHere), STORE_READ_TIMEOUT_MS, knownHere);
  }

  /** `users` with whether each is online; `lastSeenAt` is null while they are. One store lookup for them all. */
  async withPresence<T extends { id: number; lastSeenAt: Date | null }>(users: T[]): Promise<(T & UserPresence)[]> {
    const online = await this.onlineAmong(users.map((user) => user.id));
    return users.map((user) => (online.has(user.id) ? { ...user, online: true, lastSeenAt: null } : { ...user, online: false }));
  }

  /**
   * The presence of those of `userIds` whom `viewer` may see: themselves and whoever shares a chat
   * with them, the people they would hear it from. One query and one store lookup for them all.
   */
  async visibleTo(viewer: PublicUser, userIds: number[]): Promise<Map<number, UserPresence>> {
    if (userIds.length === 0) return new Map();
    const visible = await this.db.user.findMany({
      where: { id: { in: userIds }, OR: [{ id: viewer.id }, { participations: { some: { chat: { participants: { some: { userId: viewer.id } } } } } }] },
      select: { id: true, lastSeenAt: true },
    });
    const seen = await this.withPresence(visible);
    return new Map(seen.map(({ id, online, lastSeenAt }) => [id, { online, lastSeenAt }]));
  }

  /**
   * False for a presence change older than one of the same user already passed on here: changes
   * announced by different instances may arrive out of order, and a receiver must end on the newest.
   */
  isCurrent(event: UserEvent): boolean {
    if (event.type !== 'presence') return true;
    const newest = this.passedOn.get(event.userId);
    if (newest !== undefined && newest > event.version) return false;
    if (newest !== event.version) this.passedOn.set(event.userId, event.version);
    return true;
  }

  /** The sockets `userId` has open on this instance (what MAX_SOCKETS_PER_USER caps). */
  socketsHere(userId: number): number {
    return this.here.get(userId)?.sockets ?? 0;
  }

  usersHere(): PresentUser[] {
    // Each entry is its user already (Here extends PresentUser).
    return [...this.here.values()].filter((entry) => entry.sockets > 0);
  }

  /** Persists each offline change, then tells everyone who shares a chat with its user. */
  announce(changes: PresenceChange[]): void {
    if (this.storeClosed) return;
    for (const change of changes) {
      this.metrics.presenceChanges.inc({ status: change.status });
      this.track(this.tell(change).catch((error: unknown) => this.log.error({ err: error, userId: change.userId }, 'announcing a presence change failed')));
    }
  }

  /** What this instance holds for `userId`: their sockets here and whether their grace runs here; null when nothing. */
  tracking(userId: number): { sockets: number; grace: boolean } | null {
    const entry = this.here.get(userId);
    return entry ? { sockets: entry.sockets, grace: entry.grace !== null } : null;
  }

  /** Settles once every store call and announcement started so far (and those they started) is done. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  /** Stops every timer; what only this process knew of is persisted (see PresenceStore.close). */
  async close(): Promise<void> {
    this.closed = true;
    for (const entry of this.here.values()) this.stopGrace(entry);
    await this.idle();
    // The store reads who is still here (see LocalPresenceStore): forgotten only once it has closed.
    const unannounced = await this.store.close();
    this.storeClosed = true;
    this.here.clear();
    // What the store found while it closed (a sweep in flight) was handed over to be announced: told before going.
    await this.idle();
    await Promise.all(unannounced.map((change) => this.persist(change))).catch((error: unknown) =>
      this.log.error({ err: error }, 'persisting last_seen_at on close failed'),
    );
  }

  private release(entry: Here): void {
    const userId = entry.id;
    if (this.closed || this.here.get(userId) !== entry) return;
    entry.sockets--;
    if (entry.sockets > 0) return;
    this.track(
      this.store.depart(entry).then(
        (alone) => {
          // Back meanwhile, or already forgotten: only a user still without a socket here waits out a grace.
          if (this.closed || this.here.get(userId) !== entry || entry.sockets > 0) return;
          if (alone) this.startGrace(userId, entry);
          else this.here.delete(userId);
        },
        (error: unknown) => {
          this.storeFailed(error, userId);
          if (this.here.get(userId) === entry && entry.sockets === 0) this.here.delete(userId);
        },
      ),
    );
  }

  /** One timer per user: a new grace replaces the old one. */
  private startGrace(userId: number, entry: Here): void {
    this.stopGrace(entry);
    entry.grace = setTimeout(() => {
      entry.grace = null;
      if (this.here.get(userId) === entry && entry.sockets === 0) this.here.delete(userId);
      this.track(
        this.store.settle(userId).then(
          (change) => change && this.announce([change]),
          (error: unknown) => this.storeFailed(error, userId),
        ),
      );
    }, this.graceMs);
  }

  /** Keeps `work` (which never rejects) until it is done. */
  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private stopGrace(entry: Here): void {
    if (entry.grace) clearTimeout(entry.grace);
    entry.grace = null;
  }

  private async tell(change: PresenceChange): Promise<void> {
    const [recipients] = await Promise.all([this.sharersOf(change.userId), change.status === 'offline' ? this.persist(change) : null]);
    const event: UserPresenceEvent = { type: 'presence', ...change };
    for (const userId of recipients) this.pubsub.publish('user:event', userId, event);
  }

  /** Writes when the user was last seen; never moves it back (two instances' writes may cross). */
  private async persist({ userId, lastSeenAt }: PresenceChange): Promise<void> {
    if (!lastSeenAt) return;
    await this.db.user.updateMany({ where: { id: userId, OR: [{ lastSeenAt: null }, { lastSeenAt: { lt: lastSeenAt } }] }, data: { lastSeenAt } });
  }

  /** Everyone who shares at least one chat with `userId`, once each, themselves left out. The users asked about in one turn share one query. */
  async sharersOf(userId: number): Promise<number[]> {
    return (await this.sharersOfUsers(userId)) ?? [];
  }

  private readonly sharersOfUsers = batched(async (userIds: number[]) => {
    const rows = await this.db.$queryRaw<{ user_id: number; sharer_id: number }[]>`
      SELECT DISTINCT mine.user_id, other.user_id AS sharer_id FROM chat_participants mine
      JOIN chat_participants other ON other.chat_id = mine.chat_id
      WHERE mine.user_id IN ${idsTable(this.db, userIds)} AND other.user_id <> mine.user_id`;
    return groupedBy(
      rows,
      (row) => Number(row.user_id),
      (row) => Number(row.sharer_id),
    );
  });

  /** A store that failed has logged it (once per outage) and repairs itself when it answers again. */
  private storeFailed(error: unknown, userId: number): void {
    this.log.debug({ err: error, userId }, 'a presence update did not reach the store');
  }
}
