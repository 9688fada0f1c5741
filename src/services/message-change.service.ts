import type { AttachmentService } from './attachments/attachment.service';
import type { Database } from '../db/client';
import { Prisma } from '../generated/sqlite/client';
import type { PublicUser } from './auth.service';
import type { BotService } from './bot.service';
import type { ChatService } from './chat.service';
import { AppError, MessageNotFoundError } from './errors';
import { replayThenLive } from './listen';
import type { HistoryGap } from './message.service';
import { CATCH_UP_LIMIT, namedMessageEvent } from './message.service';
import type { EventBus, EventStream, MessageChange, MessageEvent, PubSub } from './pubsub';
import { boundedStream } from './pubsub';
import type { KeyedRateLimiter } from './rate-limit';
import type { RoomFeeds } from './room-feed';
import { changeOf, messageWithReactionsSelect, toMessageEvent } from './room-feed';
import { cursorSchema, editMessageInput, parseChatId, parseInput, parseMessageRef } from './validation';
import type { WebhookOutbox } from './webhooks/outbox';
import { messageFrameFields } from '../serializers';

/** A missed change, or the marker that more than CATCH_UP_LIMIT of them were missed. */
export type ChangeCatchUpEvent = MessageChange | HistoryGap;

interface MessageRef {
  chatId: number;
  messageId: number;
}

/**
 * Edits and deletions of messages, whatever the transport. An edit rewrites the content in place
 * and stamps `edited_at`; a deletion leaves a tombstone (status `deleted`, content erased,
 * `deleted_at`), so the message leaves the history, the bot's context and the unread counts. Each
 * sets the message's change mark, by which a reconnecting client is sent what it missed, and
 * publishes one `chat:change` event to everyone in the chat.
 */
export class MessageChangeService {
  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly bot: BotService,
    private readonly feeds: RoomFeeds,
    private readonly bus: Pick<EventBus, 'available'>,
    /** MESSAGE_RATE_LIMIT, shared with sending: an edit or a deletion reaches the whole room as a message does. */
    private readonly writeLimit: KeyedRateLimiter<number>,
    /** BOT_NAME: the `username` of bot messages. */
    private readonly botName: string,
    private readonly outbox: WebhookOutbox,
    private readonly attachments: Pick<AttachmentService, 'deleteForMessage' | 'url'>,
  ) {}

  /**
   * The author rewrites their message, under the rules of sending. Everyone in the chat is told; a
   * `/bot` ask is not asked again, and an answer still to come reads the new text. The same content
   * again changes nothing and tells nobody. Bot answers cannot be edited.
   * @example await changes.edit(me, chatId, messageId, { content: 'Lunch at one, not noon' })
   */
  async edit(author: PublicUser, chatId: unknown, messageId: unknown, input: unknown): Promise<MessageEvent> {
    const ref = parseMessageRef(chatId, messageId);
    const { content } = parseInput(editMessageInput, input);
    this.writeLimit.take(author.id);
    await this.chats.requireParticipant(author.id, ref.chatId);
    const message = await this.standing(ref);
    if (message.isBot) throw new AppError('FORBIDDEN', 'Bot answers cannot be edited');
    if (message.userId !== author.id) throw new AppError('FORBIDDEN', 'Only its author can edit a message');
    const current = namedMessageEvent(toMessageEvent(message), this.botName);
    if (message.content === content) return current;
    this.requireDelivery();
    const editedAt = new Date();
    const changeMark = await this.stamp(ref, Prisma.sql`content = ${content}, edited_at = ${editedAt}`);
    const edited: MessageEvent = { ...current, content, editedAt, changeMark };
    await this.outbox.record(ref.chatId, 'message.updated', () => messageFrameFields(edited, this.attachments), editedAt);
    this.pubsub.publish('chat:change', ref.chatId, { kind: 'updated', message: edited });
    return edited;
  }

  /**
   * Its author, or the chat's owner (moderation), deletes a message: its text is erased and everyone
   * in the chat is told. A `/bot` ask is withdrawn: not answered if it was pending, its answer
   * stopped if it was being written. A bot answer being written is stopped. Deleting it again is
   * NOT_FOUND, like any message that is not there.
   */
  async delete(caller: PublicUser, chatId: unknown, messageId: unknown): Promise<void> {
    const ref = parseMessageRef(chatId, messageId);
    this.writeLimit.take(caller.id);
    await this.chats.requireParticipant(caller.id, ref.chatId);
    const message = await this.standing(ref);
    const ownMessage = !message.isBot && message.userId === caller.id;
    if (!ownMessage && !(await this.ownsChat(caller.id, ref.chatId))) {
      throw new AppError('FORBIDDEN', "Only its author or the chat's owner can delete a message");
    }
    this.requireDelivery();
    const deletedAt = new Date();
    await this.stamp(ref, Prisma.sql`status = 'deleted', content = '', deleted_at = ${deletedAt}, ask_pending = ${false}`);
    await this.outbox.record(ref.chatId, 'message.deleted', () => ({ chat_id: ref.chatId, message_id: ref.messageId }), deletedAt);
    this.pubsub.publish('chat:change', ref.chatId, { kind: 'deleted', ...ref });
    await this.attachments.deleteForMessage(ref.messageId);
    await this.bot.stopAnswerOf(ref.chatId, message);
  }

  /**
   * Edits and deletions in the chat, for a participant only, until they leave it. With `after` (a
   * message id the client has), the changes it may have missed come first (see `changesSince`),
   * then live ones.
   */
  async subscribe(reader: PublicUser, chatId: unknown, after?: unknown): Promise<EventStream<ChangeCatchUpEvent>> {
    const id = parseChatId(chatId);
    const afterId = after === undefined || after === null ? null : parseInput(cursorSchema, after, 'query');
    const untilLeft = await this.chats.participantUntilLeft(reader.id, id);
    const listen = (onEvent: (change: ChangeCatchUpEvent) => void) => this.feeds.onChange(id, onEvent);
    if (afterId === null) return boundedStream(listen, untilLeft);
    // Changes are never de-duplicated against the replay: one delivered twice changes nothing.
    return replayThenLive<ChangeCatchUpEvent>(listen, () => this.changesSince(id, afterId), undefined, untilLeft);
  }

  /**
   * What a client that has message `afterId` may have missed: each change made once that message
   * existed (its mark, the chat's newest id when it was made, is `afterId` or more), as the message
   * is now, oldest change first; `upTo` keeps only the messages up to that id. At most
   * CATCH_UP_LIMIT: when there were more, a HistoryGap comes first, naming the messages whose
   * changes were left out (all older than its `before`). Read along the (chat_id, change_mark) index.
   */
  async changesSince(chatId: number, afterId: number, { upTo }: { upTo?: number } = {}): Promise<ChangeCatchUpEvent[]> {
    const rows = await this.db.message.findMany({
      where: { chatId, changeMark: { gte: afterId }, ...(upTo === undefined ? {} : { id: { lte: upTo } }) },
      orderBy: [{ changeMark: 'desc' }, { id: 'desc' }],
      take: CATCH_UP_LIMIT + 1,
      select: messageWithReactionsSelect,
    });
    const changes = rows.slice(0, CATCH_UP_LIMIT).reverse().map(changeOf);
    if (rows.length <= CATCH_UP_LIMIT) return changes;
    // A change left out was marked at most this, so its message's id is at most this too.
    return [{ chatId, after: 0, before: rows[CATCH_UP_LIMIT]!.changeMark! + 1, gap: true }, ...changes];
  }

  /** The message `ref` names, unless it is not in that chat or was deleted. */
  private async standing({ chatId, messageId }: MessageRef) {
    const message = await this.db.message.findFirst({ where: { id: messageId, chatId, status: { not: 'deleted' } }, select: messageWithReactionsSelect });
    if (!message) throw new MessageNotFoundError();
    return message;
  }

  private async ownsChat(userId: number, chatId: number): Promise<boolean> {
    const chat = await this.db.chat.findUnique({ where: { id: chatId }, select: { ownerId: true } });
    return chat?.ownerId === userId;
  }

  /** Refused before changing anything while other instances cannot hear of it, as sending is. */
  private requireDelivery(): void {
    if (!this.bus.available()) throw new AppError('SERVICE_UNAVAILABLE', 'Changes cannot be delivered right now (Redis is unreachable): try again shortly');
  }

  /**
   * Applies `assignments` to the message unless it was deleted meanwhile (then NOT_FOUND), marking
   * it with the chat's newest message id in the same statement: a client that has any message up
   * to that one is sent this change when it resumes. Returns the mark.
   */
  private async stamp({ chatId, messageId }: MessageRef, assignments: Prisma.Sql): Promise<number> {
    const [changed] = await this.db.$queryRaw<{ change_mark: number }[]>`
      UPDATE messages SET ${assignments}, change_mark = (SELECT MAX(newest.id) FROM messages newest WHERE newest.chat_id = ${chatId})
      WHERE id = ${messageId} AND status <> 'deleted' RETURNING change_mark`;
    if (!changed) throw new MessageNotFoundError();
    return changed.change_mark;
  }
}
