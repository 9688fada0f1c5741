import type { Database } from '../db/client';
import type { Prisma } from '../generated/sqlite/client';
import type { PublicUser } from './auth.service';
import { isUniqueViolation, publicUserSelect } from './auth.service';
import { AppError, ChatNotFoundError, NotAuthorizedError, UserNotFoundError } from './errors';
import { LruCache } from './lru-cache';
import type { PubSub } from './pubsub';
import { createChatInput, inviteInput, parseChatId, parseInput } from './validation';

/** A Prisma selection handed down by a GraphQL resolver, so a query loads only what it asks for. */
export type ChatQuery = Omit<Prisma.ChatFindUniqueArgs, 'where'>;

const MEMBERSHIP_CACHE_SIZE = 50_000;
const MEMBERSHIP_CACHE_TTL_MS = 60_000;

export class ChatService {
  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
  ) {}

  /** Creates a chat owned by `owner`, who becomes its first participant. */
  create(owner: PublicUser, input: unknown, query: ChatQuery = {}) {
    const { name, is_group } = parseInput(createChatInput, input);
    return this.db.chat.create({
      ...query,
      data: { name, isGroup: is_group, ownerId: owner.id, participants: { create: { userId: owner.id } } },
    });
  }

  /** The chats `user` takes part in, oldest first. */
  listFor(user: PublicUser, query: Omit<Prisma.ChatFindManyArgs, 'where' | 'orderBy'> = {}) {
    return this.db.chat.findMany({ ...query, where: { participants: { some: { userId: user.id } } }, orderBy: { id: 'asc' } });
  }

  /** A chat its participant may read: 404 when it does not exist, then 403 for anyone else. */
  async get(user: PublicUser, chatId: unknown, query: ChatQuery = {}) {
    const id = parseChatId(chatId);
    await this.requireParticipant(user.id, id);
    return this.db.chat.findUniqueOrThrow({ ...query, where: { id } });
  }

  /**
   * Adds `username` to the chat; any participant may invite. The invitee's open sockets hear of it,
   * once: inviting someone already in the chat is refused ("User is already a participant").
   */
  async invite(inviter: PublicUser, chatId: unknown, input: unknown) {
    const id = parseChatId(chatId);
    const { username } = parseInput(inviteInput, input);
    await this.requireParticipant(inviter.id, id);
    const invitee = await this.db.user.findUnique({ where: { usernameKey: username.trim().toLowerCase() }, select: { id: true, username: true } });
    if (!invitee) throw new UserNotFoundError();
    try {
      await this.db.chatParticipant.create({ data: { chatId: id, userId: invitee.id }, select: { id: true } });
    } catch (error) {
      // Already in the chat, or invited by someone else at this very moment: the unique index decides.
      if (isUniqueViolation(error)) throw new AppError('CONFLICT', 'User is already a participant');
      throw error;
    }
    const summary = await this.db.chat.findUniqueOrThrow({ where: { id }, select: { id: true, name: true, ownerId: true, isGroup: true, createdAt: true } });
    this.pubsub.publish('user:event', invitee.id, { type: 'chat_invite', chat: summary, invitedBy: inviter.username });
    return invitee;
  }

  /** The ids of every chat `userId` takes part in: what their sockets receive messages from. */
  async chatIdsOf(userId: number): Promise<number[]> {
    const rows = await this.db.chatParticipant.findMany({ where: { userId }, select: { chatId: true } });
    return rows.map((row) => row.chatId);
  }

  async participants(user: PublicUser, chatId: unknown): Promise<PublicUser[]> {
    const id = parseChatId(chatId);
    await this.requireParticipant(user.id, id);
    const rows = await this.db.chatParticipant.findMany({
      where: { chatId: id },
      orderBy: { id: 'asc' },
      select: { user: { select: publicUserSelect } },
    });
    return rows.map((row) => row.user);
  }

  /**
   * The one membership rule: 404 when the chat does not exist, 403 when `userId` is not in it.
   * Positive answers are cached, since every message and join asks it. The cache is bounded, and
   * an answer is kept a minute at most, so a removal made by another instance shows within it;
   * one made here is seen at once through `forgetMemberships`.
   */
  async requireParticipant(userId: number, chatId: number): Promise<{ id: number; name: string | null }> {
    const cached = this.memberships.get(membershipKey(userId, chatId));
    if (cached) return cached.chat;
    const chat = await this.db.chat.findUnique({
      where: { id: chatId },
      select: { id: true, name: true, participants: { where: { userId }, select: { id: true } } },
    });
    if (!chat) throw new ChatNotFoundError();
    if (chat.participants.length === 0) throw new NotAuthorizedError();
    const membership = { id: chat.id, name: chat.name };
    this.memberships.set(membershipKey(userId, chatId), { userId, chat: membership });
    return membership;
  }

  /**
   * Drops the cached "yes" of one user in one chat, of a user in every chat, or of everyone in a
   * chat: whatever removes people from chats (a leave, a kick, a deleted chat) calls it.
   */
  forgetMemberships(scope: { userId: number; chatId?: number } | { userId?: number; chatId: number }): void {
    const { userId, chatId } = scope;
    if (userId !== undefined && chatId !== undefined) this.memberships.delete(membershipKey(userId, chatId));
    else this.memberships.deleteWhere((_key, cached) => cached.userId === userId || cached.chat.id === chatId);
  }

  private readonly memberships = new LruCache<string, { userId: number; chat: { id: number; name: string | null } }>(
    MEMBERSHIP_CACHE_SIZE,
    MEMBERSHIP_CACHE_TTL_MS,
  );
}

const membershipKey = (userId: number, chatId: number) => `${userId}:${chatId}`;
