import type { Database } from '../db/client';
import { ChatNotFoundError, NotAuthorizedError } from './errors';
import { LruCache } from './lru-cache';
import { ClusterForgetting } from './cluster-forgetting';
import type { EventBus } from './pubsub';

const MEMBERSHIP_CACHE_SIZE = 50_000;
/** A safety net only: removals reach every instance's cache at once through the pub/sub. */
const MEMBERSHIP_CACHE_TTL_MS = 60_000;
/**
 * Removals remembered for answers acted on after their check (see `leftSince`): a check and the act are
 * microseconds to milliseconds apart, and this many removals rarely fit in between.
 */
const REMEMBERED_REMOVALS = 1_000;

/** Whose cached memberships to drop: one user in one chat, a user in every chat, or everyone in a chat. */
export type MembershipScope = { userId: number; chatId?: number } | { userId?: number; chatId: number };

/** A scope as it arrives from any instance: a user, a chat, or both. */
type ForgottenScope = { userId?: number; chatId?: number };

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
  private readonly forgetting: ClusterForgetting<'membership:forget'>;
  /** The last REMEMBERED_REMOVALS scopes forgotten, oldest first, each with its mark (see `leftSince`). */
  private readonly removals: { mark: number; scope: ForgottenScope | null }[] = [];

  constructor(
    private readonly db: Database,
    bus: Pick<EventBus, 'pubsub' | 'available'>,
  ) {
    this.forgetting = new ClusterForgetting(
      bus,
      'membership:forget',
      (scope) => this.forgetHere(scope),
      () => this.forgetAllHere(),
    );
  }

  /** 404 "Chat not found" when the chat does not exist, then 403 "Not authorized" when `userId` is not in it. */
  async require(userId: number, chatId: number): Promise<{ id: number; name: string | null }> {
    const cached = this.forgetting.trusted() ? this.cache.get(membershipKey(userId, chatId)) : undefined;
    if (cached) return cached.chat;
    const mark = this.forgetting.mark();
    const chat = await this.db.chat.findUnique({
      where: { id: chatId },
      select: { id: true, name: true, participants: { where: { userId }, select: { id: true } } },
    });
    if (!chat) throw new ChatNotFoundError();
    if (chat.participants.length === 0) throw new NotAuthorizedError();
    const membership = { id: chat.id, name: chat.name };
    // A lookup that a removal overtook does not cache the "yes" it read before it.
    if (this.forgetting.mayCache(mark)) this.cache.set(membershipKey(userId, chatId), { userId, chat: membership });
    return membership;
  }

  /** Where removals stand now: taken before a membership is checked, for `leftSince` after. */
  mark(): number {
    return this.forgetting.mark();
  }

  /** After a Redis outage: the removals made meanwhile on other instances may never have been heard here. */
  forgetEverythingHere(): void {
    this.forgetting.forgetEverythingHere();
  }

  /** Drops the cached answers `scope` covers on this instance at once, and on every other one. */
  forget(scope: MembershipScope): void {
    this.forgetting.forget(scope);
  }

  /**
   * Whether a removal heard here since `mark` covers `userId` in `chatId`: a "yes" read after `mark`
   * may be older than it. True as well when the removals since then are too many to be remembered.
   */
  leftSince(mark: number, userId: number, chatId: number): boolean {
    if (!this.forgetting.overtaken(mark)) return false;
    if ((this.removals[0]?.mark ?? Infinity) > mark + 1) return true;
    return this.removals.some((removal) => removal.mark > mark && removal.scope !== null && covers(removal.scope, userId, chatId));
  }

  /** Drops every cached answer here, and removes no one: marked as a removal of nobody, so `leftSince` stays exact. */
  private forgetAllHere(): void {
    this.cache.clear();
    this.remember(null);
  }

  private forgetHere(scope: ForgottenScope): void {
    const { userId, chatId } = scope;
    if (userId !== undefined && chatId !== undefined) this.cache.delete(membershipKey(userId, chatId));
    else this.cache.deleteWhere((_key, cached) => covers(scope, cached.userId, cached.chat.id));
    this.remember(scope);
  }

  private remember(scope: ForgottenScope | null): void {
    this.removals.push({ mark: this.forgetting.mark(), scope });
    if (this.removals.length > REMEMBERED_REMOVALS) this.removals.shift();
  }
}

/** Whether forgetting `scope` drops `userId`'s membership of `chatId`. */
const covers = (scope: ForgottenScope, userId: number, chatId: number) =>
  (scope.userId === undefined || scope.userId === userId) && (scope.chatId === undefined || scope.chatId === chatId);

const membershipKey = (userId: number, chatId: number) => `${userId}:${chatId}`;
