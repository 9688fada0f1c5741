import type { AttachmentService } from './attachments/attachment.service';
import type { Database } from '../db/client';
import { idsTable } from '../db/client';
import type { Prisma } from '../generated/sqlite/client';
import type { PublicUser } from './auth.service';
import { isUniqueViolation, publicUserSelect } from './auth.service';
import { requestStop } from './bot.service';
import { batched, groupedBy } from './batched';
import { AppError, ChatNotFoundError, UserNotFoundError } from './errors';
import type { Memberships, MembershipScope } from './memberships';
import type { UserPresence, PresenceService } from './presence.service';
import type { ChatSummary, EndWhen, EventStream, PubSub, UserEvent } from './pubsub';
import { boundedStream, whileMember } from './pubsub';
import type { ChatActivity, ReadStateService } from './read-state.service';
import { createChatInput, inviteInput, parseChatId, parseInput, parseUserId } from './validation';
import type { WebhookOutbox } from './webhooks/outbox';

/** A Prisma selection handed down by a GraphQL resolver, so a query loads only what it asks for. */
export type ChatQuery = Omit<Prisma.ChatFindUniqueArgs, 'where'>;

/** The columns of a chat as REST returns it and user events carry it. */
export const chatSummarySelect = { id: true, name: true, ownerId: true, isGroup: true, createdAt: true } as const;

/** An AI chat starts with this bot message, so the room is not empty when it opens. */
export const AI_CHAT_GREETING = "Hello! I'm your AI assistant. How can I help you today?";
const AI_CHAT_DEFAULT_NAME = 'AI Chat';

/**
 * What a user's own stream tells them: their events, and, after a Redis outage, that some may have
 * been lost (`events_missed`, from this instance only: it never travels between instances).
 */
export type ViewerEvent = UserEvent | { type: 'events_missed'; since: Date };

/** A subscription's hold on a chat: who, which chat, and what ends the subscription. */
interface SubscriptionMembership {
  userId: number;
  chatId: number;
  end: () => void;
}

export class ChatService {
  /** The memberships open subscriptions hold (see participantUntilLeft): checked again after a Redis outage. */
  private readonly subscribedMemberships = new Set<SubscriptionMembership>();
  /** What pushes into each open stream of `events`: told after a Redis outage. */
  private readonly viewerStreams = new Set<(event: ViewerEvent) => void>();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly memberships: Memberships,
    private readonly readState: ReadStateService,
    private readonly presence: PresenceService,
    private readonly outbox: WebhookOutbox,
    private readonly attachments: Pick<AttachmentService, 'filesOfChat'>,
  ) {}

  /**
   * Creates a chat owned by `owner`, its first participant, with the users `participant_usernames`
   * names (unknown names are skipped); each of them hears of it (`chat_created`), the owner's own
   * sessions too (`joined_chat`, no `/ws` frame, as in the original). An AI chat is
   * called "AI Chat" unless named, and opens with the bot's greeting.
   * @example await chats.create(me, { name: 'Plans', is_group: true, participant_usernames: ['jane'] })
   */
  async create(owner: PublicUser, input: unknown): Promise<ChatSummary> {
    const { name, is_group, is_ai_chat, participant_usernames } = parseInput(createChatInput, input);
    const keys = [...new Set(participant_usernames.map((username) => username.trim().toLowerCase()))];
    const found =
      keys.length === 0
        ? []
        : await this.db.user.findMany({ where: { usernameKey: { in: keys }, id: { not: owner.id } }, select: { id: true, usernameKey: true } });
    const added = found.sort((a, b) => keys.indexOf(a.usernameKey) - keys.indexOf(b.usernameKey));
    const chat = await this.db.chat.create({
      data: {
        name: name ?? (is_ai_chat ? AI_CHAT_DEFAULT_NAME : null),
        isGroup: is_group,
        ownerId: owner.id,
        // Everyone joins an empty chat: their read positions start at nothing, so nothing is unread.
        // One multi-row insert: participants keep the order they were named in, the owner first.
        participants: { createMany: { data: [{ userId: owner.id }, ...added.map((user) => ({ userId: user.id }))] } },
        ...(is_ai_chat ? { messages: { create: { isBot: true, content: AI_CHAT_GREETING } } } : {}),
      },
      select: chatSummarySelect,
    });
    // The owner's open sockets take the chat in too: each participant's sockets get its messages, joined or not.
    this.publishTo([owner.id], { type: 'joined_chat', chat });
    this.publishTo(
      added.map((user) => user.id),
      { type: 'chat_created', chat, addedBy: owner.username },
    );
    return chat;
  }

  /** The chats `user` takes part in, oldest first. */
  listFor(user: PublicUser, query: Omit<Prisma.ChatFindManyArgs, 'where' | 'orderBy'> = {}) {
    return this.db.chat.findMany({ ...query, where: { participants: { some: { userId: user.id } } }, orderBy: { id: 'asc' } });
  }

  /**
   * The chats `user` takes part in with their unread count and last message, latest activity first
   * (the last message's time, else the chat's creation). A fixed number of statements whatever the
   * number of chats.
   */
  async listWithActivity(user: PublicUser): Promise<(ChatSummary & ChatActivity)[]> {
    const chats = await this.listFor(user, { select: chatSummarySelect });
    const activity = await this.readState.activity(
      user,
      chats.map((chat) => chat.id),
    );
    const lastActivity = (chat: ChatSummary & ChatActivity) => (chat.lastMessage?.createdAt ?? chat.createdAt).getTime();
    return chats
      .map((chat) => ({ ...chat, ...(activity.get(chat.id) ?? { unreadCount: 0, lastMessage: null }) }))
      .sort((a, b) => lastActivity(b) - lastActivity(a) || b.id - a.id);
  }

  /** A chat its participant may read: 404 when it does not exist, then 403 for anyone else. */
  async get(user: PublicUser, chatId: unknown, query: ChatQuery = {}) {
    const id = parseChatId(chatId);
    await this.requireParticipant(user.id, id);
    const chat = await this.db.chat.findUnique({ ...query, where: { id } });
    // Deleted between the membership check and this read.
    if (!chat) throw new ChatNotFoundError();
    return chat;
  }

  /**
   * Adds `username` to the chat; any participant may invite. The invitee's open sockets hear of it,
   * once: inviting someone already in the chat is refused ("User is already a participant"). Their
   * read position starts at the chat's newest message: what came before they joined is not unread.
   */
  async invite(inviter: PublicUser, chatId: unknown, input: unknown) {
    const id = parseChatId(chatId);
    const { username } = parseInput(inviteInput, input);
    await this.requireParticipant(inviter.id, id);
    const invitee = await this.db.user.findUnique({ where: { usernameKey: username.trim().toLowerCase() }, select: { id: true, username: true } });
    if (!invitee) throw new UserNotFoundError();
    const lastReadMessageId = await this.readState.startingPosition(id);
    try {
      await this.db.chatParticipant.create({ data: { chatId: id, userId: invitee.id, lastReadMessageId }, select: { id: true } });
    } catch (error) {
      // Already in the chat, or invited by someone else at this very moment: the unique index decides.
      if (isUniqueViolation(error)) throw new AppError('CONFLICT', 'User is already a participant');
      throw error;
    }
    const summary = await this.db.chat.findUniqueOrThrow({ where: { id }, select: chatSummarySelect });
    await this.outbox.record(id, 'member.joined', () => ({ chat_id: id, user_id: invitee.id, username: invitee.username, invited_by: inviter.username }));
    this.pubsub.publish('user:event', invitee.id, { type: 'chat_invite', chat: summary, invitedBy: inviter.username });
    return invitee;
  }

  /** The ids of every chat `userId` takes part in: what their sockets receive messages from. The sockets opened in one turn share one query. */
  async chatIdsOf(userId: number): Promise<number[]> {
    return (await this.chatIdsOfUsers(userId)) ?? [];
  }

  /** The chats each of `userIds` takes part in now, by user: what an outage's repair checks what it holds against. */
  async chatIdsOfEach(userIds: Iterable<number>): Promise<Map<number, Set<number>>> {
    const unique = [...new Set(userIds)];
    const chatIds = await Promise.all(unique.map((userId) => this.chatIdsOf(userId)));
    return new Map(unique.map((userId, index) => [userId, new Set(chatIds[index])]));
  }

  /** The chats among `chatIds` that still exist, by id. */
  async summariesOf(chatIds: number[]): Promise<Map<number, ChatSummary>> {
    if (chatIds.length === 0) return new Map();
    const chats = await this.db.chat.findMany({ where: { id: { in: chatIds } }, select: chatSummarySelect });
    return new Map(chats.map((chat) => [chat.id, chat]));
  }

  private readonly chatIdsOfUsers = batched(async (userIds: number[]) => {
    // One statement whatever the batch's size (see idsTable).
    const rows = await this.db.$queryRaw<{ user_id: number; chat_id: number }[]>`
      SELECT user_id, chat_id FROM chat_participants WHERE user_id IN ${idsTable(this.db, userIds)}`;
    return groupedBy(
      rows,
      (row) => row.user_id,
      (row) => row.chat_id,
    );
  });

  /** The chat's participants in the order they joined, each with whether they are online and when they were last seen. */
  async participants(user: PublicUser, chatId: unknown): Promise<(PublicUser & UserPresence)[]> {
    const id = parseChatId(chatId);
    await this.requireParticipant(user.id, id);
    const rows = await this.db.chatParticipant.findMany({
      where: { chatId: id },
      orderBy: { id: 'asc' },
      select: { user: { select: { ...publicUserSelect, lastSeenAt: true } } },
    });
    return this.presence.withPresence(rows.map((row) => row.user));
  }

  /**
   * The owner removes someone else. The removed user hears `removed_from_chat`, everyone still in
   * the chat `user_left`; the removal holds at once on every instance.
   */
  async removeParticipant(owner: PublicUser, chatId: unknown, userId: unknown): Promise<void> {
    const id = parseChatId(chatId);
    const removedId = parseUserId(userId);
    const chat = await this.findChat(id);
    if (chat.ownerId !== owner.id) throw new AppError('FORBIDDEN', 'Only chat admin can remove participants');
    if (removedId === owner.id) throw new AppError('BAD_REQUEST', 'Cannot remove yourself. Use leave endpoint instead');
    await this.deleteParticipation(id, removedId, 'User is not a participant');
    const chatName = chat.name;
    // At once: until the removed user's streams hear it, they still deliver the room's messages.
    this.publishTo([removedId], { type: 'removed_from_chat', chatId: id, chatName, removedBy: owner.username });
    const removed = await this.db.user.findUniqueOrThrow({ where: { id: removedId }, select: { username: true } });
    await this.outbox.record(id, 'member.left', () => ({ chat_id: id, user_id: removedId, username: removed.username, how: 'removed' }));
    this.publishTo(await this.participantIds(id), { type: 'user_left', chatId: id, chatName, userId: removedId, username: removed.username, how: 'removed' });
  }

  /**
   * A participant other than the owner leaves. Everyone still in the chat hears `user_left`, and
   * the leaver's own topic `left_chat`, so their other sockets and subscriptions stop receiving it.
   */
  async leave(user: PublicUser, chatId: unknown): Promise<void> {
    const id = parseChatId(chatId);
    const chat = await this.findChat(id);
    if (chat.ownerId === user.id) throw new AppError('BAD_REQUEST', 'Chat owner cannot leave. Delete the chat instead');
    await this.deleteParticipation(id, user.id, 'Not a participant');
    // At once, as on removal.
    this.publishTo([user.id], { type: 'left_chat', chatId: id });
    await this.outbox.record(id, 'member.left', () => ({ chat_id: id, user_id: user.id, username: user.username, how: 'left' }));
    this.publishTo(await this.participantIds(id), {
      type: 'user_left',
      chatId: id,
      chatName: chat.name,
      userId: user.id,
      username: user.username,
      how: 'left',
    });
  }

  /**
   * The owner deletes the chat with everything in it (the database cascades to its participants and
   * messages); a bot answer running in it is stopped first. Every other participant hears
   * `chat_deleted`; the owner's own topic hears `left_chat`, so the owner's other sockets stop
   * receiving the chat without being told of a deletion they made.
   */
  async delete(owner: PublicUser, chatId: unknown): Promise<void> {
    const id = parseChatId(chatId);
    const chat = await this.findChat(id);
    if (chat.ownerId !== owner.id) throw new AppError('FORBIDDEN', 'Only chat admin can delete chat');
    const participantIds = await this.participantIds(id);
    await requestStop(this.db, this.pubsub, id);
    const files = await this.attachments.filesOfChat(id);
    const { count } = await this.db.chat.deleteMany({ where: { id } });
    // Deleted at this very moment by another request of the owner's: that one tells everyone.
    if (count === 0) throw new ChatNotFoundError();
    // An upload finishing meanwhile finds its chat gone and removes its own file.
    await files.release();
    this.forgetMemberships({ chatId: id });
    this.publishTo([owner.id], { type: 'left_chat', chatId: id });
    this.publishTo(
      participantIds.filter((userId) => userId !== owner.id),
      { type: 'chat_deleted', chatId: id, chatName: chat.name, deletedBy: owner.username },
    );
  }

  /**
   * The user's own events (invitations, removals, deletions, read receipts, the presence of the
   * people they share a chat with) as a subscription; a presence change overtaken by a newer one is left out.
   */
  events(user: PublicUser): EventStream<ViewerEvent> {
    return boundedStream((push: (event: ViewerEvent) => void) => {
      const listening = this.pubsub.on('user:event', user.id, (event) => {
        if (this.presence.isCurrent(event)) push(event);
      });
      this.viewerStreams.add(push);
      return {
        ready: listening.ready,
        stop: () => {
          this.viewerStreams.delete(push);
          listening.stop();
        },
      };
    });
  }

  /**
   * After a Redis outage: tells every stream of `events` here that the events published from `since`
   * on may never have reached it, so its client reads again what it shows.
   */
  tellEventsMissed(since: Date): void {
    for (const push of [...this.viewerStreams]) push({ type: 'events_missed', since });
  }

  /**
   * The one membership rule: 404 when the chat does not exist, 403 when `userId` is not in it.
   * Answered from a cache that every removal clears at once, on every instance.
   */
  requireParticipant(userId: number, chatId: number): Promise<{ id: number; name: string | null }> {
    return this.memberships.require(userId, chatId);
  }

  /**
   * The membership rule, for a caller that acts on the answer later: with what tells, when it acts,
   * whether a removal heard since the check covers the membership (the "yes" is then stale).
   */
  async requireParticipantSince(userId: number, chatId: number): Promise<() => boolean> {
    const mark = this.memberships.mark();
    await this.requireParticipant(userId, chatId);
    return () => this.memberships.leftSince(mark, userId, chatId);
  }

  /**
   * For a subscription to the chat's events: the membership rule, then what ends the subscription once
   * `userId` is no longer in the chat (see whileMember). The subscription listens from its first read:
   * a removal heard between the check and then found no listener, so it ends the subscription as it starts.
   */
  async participantUntilLeft(userId: number, chatId: number): Promise<EndWhen> {
    const leftSinceCheck = await this.requireParticipantSince(userId, chatId);
    const whileStillMember = whileMember(this.pubsub, userId, chatId);
    return (end) => {
      const listening = whileStillMember(end);
      const membership: SubscriptionMembership = { userId, chatId, end };
      this.subscribedMemberships.add(membership);
      if (leftSinceCheck()) end();
      return {
        ready: listening.ready,
        stop: () => {
          this.subscribedMemberships.delete(membership);
          listening.stop();
        },
      };
    };
  }

  /**
   * After a Redis outage: ends the subscriptions of users who are no longer in their chat, whose
   * departure's event may never have reached this instance. One statement for every 500 users; when
   * one fails, every one of them ends.
   */
  async endSubscriptionsOfDepartedMembers(): Promise<void> {
    const subscribed = [...this.subscribedMemberships];
    let inChats: Map<number, Set<number>>;
    try {
      inChats = await this.chatIdsOfEach(subscribed.map(({ userId }) => userId));
    } catch (error) {
      // Unchecked, they might deliver a chat to someone no longer in it: they end, and a client subscribing again is checked anew.
      for (const { end } of subscribed) end();
      throw error;
    }
    for (const { userId, chatId, end } of subscribed) if (!inChats.get(userId)?.has(chatId)) end();
  }

  /**
   * Drops the cached "yes" of one user in one chat, of a user in every chat, or of everyone in a
   * chat, here and on every other instance: whatever removes people from chats calls it.
   */
  forgetMemberships(scope: MembershipScope): void {
    this.memberships.forget(scope);
  }

  private async findChat(id: number) {
    const chat = await this.db.chat.findUnique({ where: { id }, select: { id: true, name: true, ownerId: true } });
    if (!chat) throw new ChatNotFoundError();
    return chat;
  }

  /** Takes `userId` out of the chat (404 `notParticipant` when not in it) and forgets the membership everywhere. */
  private async deleteParticipation(chatId: number, userId: number, notParticipant: string): Promise<void> {
    // Judged by the rows the statement deleted: of two removals at once, one succeeds.
    const { count } = await this.db.chatParticipant.deleteMany({ where: { chatId, userId } });
    if (count === 0) throw new AppError('NOT_FOUND', notParticipant);
    this.forgetMemberships({ userId, chatId });
  }

  private async participantIds(chatId: number): Promise<number[]> {
    const rows = await this.db.chatParticipant.findMany({ where: { chatId }, orderBy: { id: 'asc' }, select: { userId: true } });
    return rows.map((row) => row.userId);
  }

  private publishTo(userIds: number[], event: UserEvent): void {
    for (const userId of userIds) this.pubsub.publish('user:event', userId, event);
  }
}
