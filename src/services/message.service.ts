import type { AttachmentService } from './attachments/attachment.service';
import type { Database } from '../db/client';
import type { Prisma } from '../generated/sqlite/client';
import type { PublicUser } from './auth.service';
import type { BotService } from './bot.service';
import type { ChatService } from './chat.service';
import { AppError, MessageNotFoundError } from './errors';
import { replayThenLive } from './listen';
import type { MessageChangeService } from './message-change.service';
import type { MessageWriter } from './message-writer';
import type { EventBus, MessageChange, MessageEvent, PubSub, StoredMessage } from './pubsub';
import { boundedStream, isMessageChange } from './pubsub';
import type { RoomFeeds } from './room-feed';
import { messageWithReactionsSelect, nameAssistants, toMessageEvent, VISIBLE_STATUSES } from './room-feed';
import type { KeyedRateLimiter } from './rate-limit';
import { cursorSchema, historyQuery, hookMessageInput, parseChatId, parseInput, sendMessageInput } from './validation';
import type { WebhookOutbox } from './webhooks/outbox';
import { messageFrameFields } from '../serializers';

/** At most this many missed messages are replayed on reconnect; beyond, the client is told of the gap. */
export const CATCH_UP_LIMIT = 1000;

/**
 * Replaces the oldest missed messages when more than CATCH_UP_LIMIT were missed: those with
 * `after < id < before` were not replayed, and the client pages them from the history.
 */
export interface HistoryGap {
  chatId: number;
  after: number;
  before: number;
  gap: true;
}

export type CatchUpEvent = MessageEvent | HistoryGap;

/** What a `/ws` socket rejoining a room is sent: missed messages and changes, then live ones. */
export type RoomCatchUpEvent = CatchUpEvent | MessageChange;

export const isHistoryGap = (event: object): event is HistoryGap => 'gap' in event;

/** A stored message as delivered. Bot messages have no author: they show their assistant's name, else BOT_NAME, as their `username`. */
export function namedMessageEvent<M extends StoredMessage>(message: M, botName: string): M {
  return message.isBot ? { ...message, username: message.assistant?.name ?? botName } : message;
}

/** What a replay is de-duplicated by: a message's id; a gap or a change is never dropped. */
const messageKey = (event: RoomCatchUpEvent): number | undefined => (isHistoryGap(event) || isMessageChange(event) ? undefined : event.id);

/** A Prisma selection handed down by a GraphQL resolver. */
export type MessageQuery = Omit<Prisma.MessageFindUniqueArgs, 'where'>;

export class MessageService {
  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly bot: BotService,
    private readonly feeds: RoomFeeds,
    private readonly changes: MessageChangeService,
    private readonly bus: Pick<EventBus, 'available'>,
    /** MESSAGE_RATE_LIMIT: per user, so more sockets or another transport buy no extra messages. */
    private readonly sendLimit: KeyedRateLimiter<number>,
    /** BOT_NAME: the `username` of bot messages. */
    readonly botName: string,
    /** The group-commit writer every message is stored through. */
    private readonly writer: MessageWriter,
    private readonly outbox: WebhookOutbox,
    private readonly attachments: AttachmentService,
  ) {}

  /**
   * The one write path for a user's message, whatever the transport: checks, persists,
   * then publishes one `chat:message` event.
   */
  async send(author: PublicUser, chatId: unknown, input: unknown): Promise<MessageEvent> {
    const id = parseChatId(chatId);
    const { content, thread_id: under, attachment_ids: attachmentIds } = parseInput(sendMessageInput, input);
    // Input refused costs no message: a client's bug does not use up its budget.
    this.sendLimit.take(author.id);
    await this.chats.requireParticipant(author.id, id);
    const user = {
      id: author.id,
      username: author.username,
      email: author.email,
      createdAt: author.createdAt,
      displayName: author.displayName,
      avatarKey: author.avatarKey,
    };
    return this.store(id, content, under ?? null, attachmentIds, { asker: author, userId: author.id, username: author.username, user, senderName: null });
  }

  /**
   * An incoming hook's message: posted into its chat under the hook's name (no user), through the
   * same path as anyone's, `/bot` asks included, without attachments (a hook uploads none).
   * Rate-limited like a user: each hook has its own MESSAGE_RATE_LIMIT and BOT_RATE_LIMIT budgets.
   */
  async postAsHook(hook: { id: number; chatId: number; name: string }, input: unknown): Promise<MessageEvent> {
    // Hooks' budgets are keyed apart from users' (ids are positive).
    const key = -hook.id;
    const { content } = parseInput(hookMessageInput, input);
    this.sendLimit.take(key);
    return this.store(hook.chatId, content, null, [], { asker: { id: key }, userId: null, username: hook.name, user: null, senderName: hook.name });
  }

  /**
   * Persists, claims the attachments, publishes one `chat:message` event, then writes the webhook
   * outbox before the sender is answered; a `/bot` ask is admitted first and answered after.
   */
  private async store(
    chatId: number,
    content: string,
    /** A message to reply under: the new message joins that message's thread. */
    threadUnder: number | null,
    /** The sender's uploads to the chat, each sent once. */
    attachmentIds: number[],
    sender: { asker: { id: number }; userId: number | null; username: string; user: PublicUser | null; senderName: string | null },
  ): Promise<MessageEvent> {
    const attachments = sender.user ? await this.attachments.usable(sender.user, chatId, attachmentIds) : [];
    // Refused before storing while other instances cannot hear of it: the sender retries, nothing half-delivered.
    if (!this.bus.available()) throw new AppError('SERVICE_UNAVAILABLE', 'Messages cannot be delivered right now (Redis is unreachable): try again shortly');
    const threadId = threadUnder ? await this.threadRoot(chatId, threadUnder) : null;
    const ask = await this.bot.route(sender.asker, chatId, content);
    const askPending = ask !== null;
    const assistantId = ask?.assistantId ?? null;
    const stored = await this.writer.write({
      chatId,
      userId: sender.userId,
      content,
      askPending,
      assistantId,
      threadId,
      ...(sender.senderName ? { senderName: sender.senderName } : {}),
    });
    if (sender.user && !(await this.attachments.claim(sender.user, chatId, stored.id, attachmentIds))) {
      // Another request sent one of them first: this message never happened.
      await this.db.message.delete({ where: { id: stored.id } });
      throw new AppError('BAD_USER_INPUT', 'An attachment was sent with another message meanwhile');
    }
    const event: MessageEvent = {
      ...stored,
      chatId,
      userId: sender.userId,
      username: sender.username,
      user: sender.user,
      content,
      isBot: false,
      status: 'complete',
      replyToId: null,
      askPending,
      editedAt: null,
      deletedAt: null,
      changeMark: null,
      senderName: sender.senderName,
      assistantId,
      assistant: null,
      threadId,
      sources: null,
      reactions: [],
      attachments,
    };
    // Published as soon as it is stored: the writer settles a batch's messages in id order within one
    // turn, so the room gets them in that order; an await before this line would let another
    // message's answer (on PostgreSQL, from another connection) overtake it.
    this.pubsub.publish('chat:message', chatId, event);
    if (askPending) void this.bot.answer(chatId);
    // In the outbox before the sender hears it was sent: an acknowledged message reaches its webhooks.
    await this.outbox.record(chatId, 'message.created', () => messageFrameFields(event, this.attachments), stored.createdAt);
    return event;
  }

  /** The thread a message written under `messageId` joins: that message's own thread, or the thread it starts. 404 unless it is in the chat's history. */
  private async threadRoot(chatId: number, messageId: number): Promise<number> {
    const under = await this.db.message.findFirst({ where: { id: messageId, chatId, status: { in: VISIBLE_STATUSES } }, select: { id: true, threadId: true } });
    if (!under) throw new MessageNotFoundError();
    return under.threadId ?? under.id;
  }

  /** Tells the room that `author` is typing; `socketId` is the `/ws` socket it came from, if any. */
  async typing(author: PublicUser, chatId: unknown, socketId: string | null = null): Promise<void> {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(author.id, id);
    this.pubsub.publish('chat:typing', id, { chatId: id, userId: author.id, username: author.username, socketId });
  }

  /**
   * The room's new messages, for a participant only. With `after` (a message id the client has),
   * the messages it missed come first, then live ones: in id order, each once, none skipped; when
   * more than CATCH_UP_LIMIT were missed, a HistoryGap comes first and the newest of them follow.
   */
  async subscribe(reader: PublicUser, chatId: unknown, after?: unknown): Promise<AsyncIterableIterator<CatchUpEvent>> {
    const id = parseChatId(chatId);
    const afterId = after === undefined || after === null ? null : parseInput(cursorSchema, after, 'query');
    const untilLeft = await this.chats.participantUntilLeft(reader.id, id);
    const listen = (onEvent: (event: MessageEvent) => void) => this.feeds.onMessage(id, onEvent);
    if (afterId === null) return boundedStream(listen, untilLeft);
    return replayThenLive<CatchUpEvent>(listen, () => this.missed(id, afterId), messageKey, untilLeft);
  }

  /**
   * A participant's way back into a room after message `after`, in one stream: the messages it
   * missed as they are now (as `subscribe`), the edits and deletions it may have missed of the
   * messages it has (see MessageChangeService.changesSince), then live messages and changes in the
   * order they happened. A live message already replayed is dropped; a live change never is, so an
   * edit made while the replay was read is not lost to its message's replay.
   * `alreadyDelivered`: message ids the reader has had live already (its `/ws` socket), left out of
   * the replay; their changes are not: one made as the socket switched to this stream was heard by neither.
   */
  async catchUp(reader: PublicUser, chatId: unknown, after: unknown, alreadyDelivered: ReadonlySet<number>): Promise<AsyncIterableIterator<RoomCatchUpEvent>> {
    const id = parseChatId(chatId);
    const afterId = parseInput(cursorSchema, after, 'query');
    const untilLeft = await this.chats.participantUntilLeft(reader.id, id);
    // Messages above this that the reader does not have come in the replay as they are now.
    const upTo = Math.max(afterId, ...alreadyDelivered);
    const replay = async () => {
      const [missed, changes] = await Promise.all([this.missed(id, afterId), this.changes.changesSince(id, afterId, { upTo })]);
      return [...missed.filter((event) => isHistoryGap(event) || !alreadyDelivered.has(event.id)), ...changes];
    };
    return replayThenLive<RoomCatchUpEvent>((onEvent) => this.feeds.onMessageOrChange(id, onEvent), replay, messageKey, untilLeft);
  }

  /** The messages after `afterId`, oldest first: all of them, or a gap and the newest CATCH_UP_LIMIT. */
  private async missed(chatId: number, afterId: number): Promise<CatchUpEvent[]> {
    const rows = await this.db.message.findMany({
      where: { chatId, id: { gt: afterId }, status: { in: VISIBLE_STATUSES } },
      orderBy: { id: 'desc' },
      take: CATCH_UP_LIMIT + 1,
      select: messageWithReactionsSelect,
    });
    const missed = (await nameAssistants(this.db, rows.slice(0, CATCH_UP_LIMIT).reverse().map(toMessageEvent))).map((event) =>
      namedMessageEvent(event, this.botName),
    );
    if (rows.length <= CATCH_UP_LIMIT) return missed;
    return [{ chatId, after: afterId, before: missed[0]!.id, gap: true }, ...missed];
  }

  async subscribeTyping(reader: PublicUser, chatId: unknown) {
    const id = parseChatId(chatId);
    return this.pubsub.subscribe('chat:typing', id, await this.chats.participantUntilLeft(reader.id, id));
  }

  /** A delivered message read again with what a GraphQL selection asks and its event did not carry. */
  async reload(messageId: number, query: MessageQuery) {
    const message = await this.db.message.findFirst({ ...query, where: { id: messageId, status: { not: 'deleted' } } });
    // It was deleted since it was delivered, or its chat was.
    if (!message) throw new MessageNotFoundError();
    return message;
  }

  /** The newest `limit` messages older than `before`, in chronological order. */
  async history(reader: PublicUser, chatId: unknown, query: unknown): Promise<MessageEvent[]> {
    const id = parseChatId(chatId);
    const { limit, before } = parseInput(historyQuery, query, 'query');
    await this.chats.requireParticipant(reader.id, id);
    const rows = await this.db.message.findMany({
      where: { chatId: id, status: { in: VISIBLE_STATUSES }, ...(before ? { id: { lt: before } } : {}) },
      orderBy: { id: 'desc' },
      take: limit,
      select: messageWithReactionsSelect,
    });
    return (await nameAssistants(this.db, rows.reverse().map(toMessageEvent))).map((event) => namedMessageEvent(event, this.botName));
  }
}
