import type { UserPresenceEvent } from './pubsub';

/** A user's change of status, as decided once for the whole cluster. */
export type PresenceChange = Omit<UserPresenceEvent, 'type'>;

/** A user as presence knows them: enough to announce them without a query. */
export interface PresentUser {
  id: number;
  username: string;
}

/**
 * Where presence is decided: who is online anywhere, and which change happened. The presence service
 * counts this instance's sockets and tells the store only of a user's first socket here opening and
 * last one closing; every transition the store returns is the cluster's one and only announcement
 * of that change.
 */
export interface PresenceStore {
  /** The user's first socket on this instance opened: the change when they were offline everywhere. */
  arrive(user: PresentUser): Promise<PresenceChange | null>;
  /** The user's last socket here closed: true when they have none anywhere, so their grace starts now. */
  depart(userId: number): Promise<boolean>;
  /** The grace is over: the change when the user is still without a socket anywhere (and nobody announced it yet). */
  settle(userId: number): Promise<PresenceChange | null>;
  onlineAmong(userIds: number[]): Promise<Set<number>>;
  /**
   * Stops what the store runs. Returns the offline changes nobody else will announce (a single
   * process going away with users online): they are persisted, so `last_seen_at` survives a restart.
   */
  close(): Promise<PresenceChange[]>;
}

/** What a store that repairs and sweeps by itself needs of the instance it runs in. */
export interface PresenceHost {
  /** Users with a socket open on this instance now. */
  usersHere(): PresentUser[];
  /** Changes the store found by itself (an instance that died, a repair after an outage): announced as any other. */
  announce(changes: PresenceChange[]): void;
}

/** One process: everyone online is in this map, with when their last socket closed while they wait out the grace. */
export class LocalPresenceStore implements PresenceStore {
  private readonly online = new Map<number, { username: string; departedAt: Date | null }>();
  private version = 0;

  arrive(user: PresentUser): Promise<PresenceChange | null> {
    const known = this.online.get(user.id);
    if (known) {
      known.departedAt = null;
      return Promise.resolve(null);
    }
    this.online.set(user.id, { username: user.username, departedAt: null });
    return Promise.resolve({ userId: user.id, username: user.username, status: 'online', lastSeenAt: null, version: ++this.version });
  }

  depart(userId: number): Promise<boolean> {
    const known = this.online.get(userId);
    if (known) known.departedAt = new Date();
    return Promise.resolve(known !== undefined);
  }

  settle(userId: number): Promise<PresenceChange | null> {
    const known = this.online.get(userId);
    if (!known?.departedAt) return Promise.resolve(null);
    this.online.delete(userId);
    return Promise.resolve({ userId, username: known.username, status: 'offline', lastSeenAt: known.departedAt, version: ++this.version });
  }

  onlineAmong(userIds: number[]): Promise<Set<number>> {
    return Promise.resolve(new Set(userIds.filter((id) => this.online.has(id))));
  }

  close(): Promise<PresenceChange[]> {
    const now = new Date();
    const left = [...this.online].map(([userId, { username, departedAt }]): PresenceChange => ({
      userId,
      username,
      status: 'offline',
      lastSeenAt: departedAt ?? now,
      version: ++this.version,
    }));
    this.online.clear();
    return Promise.resolve(left);
  }
}
