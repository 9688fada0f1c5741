import type { Database } from '../db/client';
import { ChatNotFoundError, NotAuthorizedError } from './errors';
import { LruCache } from './lru-cache';
import type { PubSub } from './pubsub';

const MEMBERSHIP_CACHE_SIZE = 50_000;
/** A safety net only: removals reach every instance's cache at once through the pub/sub. */
const MEMBERSHIP_CACHE_TTL_MS = 60_000;
/** Every instance listens to one invalidation channel. */
const CLUSTER = 0;

/** Whose cached memberships to drop: one user in one chat, a user in every chat, or everyone in a chat. */
export type MembershipScope = { userId: number; chatId?: number } | { userId?: number; chatId: number };

interface CachedMembership {
  userId: number;
  chat: { id: number; name: string | null };
}

/**
 * The one membership rule, "is this user in this chat?", with its positive answers cached: every
 * message, join and subscription asks it. Whatever removes people from chats calls `forget`, which
 * drops the answers here at once and on every other instance through the pub/sub.
 */
export class Memberships {
  private readonly cache = new LruCache<string, CachedMembership>(MEMBERSHIP_CACHE_SIZE, MEMBERSHIP_CACHE_TTL_MS);
  /** Counts invalidations: a lookup that one overtook does not cache the "yes" it read before it. */
  private forgets = 0;
  /** This instance's invalidations come back to it from the bus; already applied, they are skipped. */
  private readonly origin = crypto.randomUUID();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
  ) {
    // Held for the life of the process: the cache it keeps honest lives as long.
    pubsub.on('membership:forget', CLUSTER, ({ origin, ...scope }) => {
      if (origin !== this.origin) this.forgetHere(scope);
    });
  }

  /** 404 "Chat not found" when the chat does not exist, then 403 "Not authorized" when `userId` is not in it. */
  async require(userId: number, chatId: number): Promise<{ id: number; name: string | null }> {
    const cached = this.cache.get(membershipKey(userId, chatId));
    if (cached) return cached.chat;
    const forgetsBefore = this.forgets;
    const chat = await this.db.chat.findUnique({
      where: { id: chatId },
      select: { id: true, name: true, participants: { where: { userId }, select: { id: true } } },
    });
    if (!chat) throw new ChatNotFoundError();
    if (chat.participants.length === 0) throw new NotAuthorizedError();
    const membership = { id: chat.id, name: chat.name };
    if (this.forgets === forgetsBefore) this.cache.set(membershipKey(userId, chatId), { userId, chat: membership });
    return membership;
  }

  /** Drops the cached answers `scope` covers on this instance at once, and on every other one. */
  forget(scope: MembershipScope): void {
    this.forgetHere(scope);
    this.pubsub.publish('membership:forget', CLUSTER, { ...scope, origin: this.origin });
  }

  private forgetHere({ userId, chatId }: { userId?: number; chatId?: number }): void {
    this.forgets++;
    if (userId !== undefined && chatId !== undefined) this.cache.delete(membershipKey(userId, chatId));
    else this.cache.deleteWhere((_key, cached) => cached.userId === userId || cached.chat.id === chatId);
  }
}

const membershipKey = (userId: number, chatId: number) => `${userId}:${chatId}`;
