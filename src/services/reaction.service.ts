import type { Database } from '../db/client';
import { Prisma } from '../generated/sqlite/client';
import type { PublicUser } from './auth.service';
import type { ChatService } from './chat.service';
import { groupedBy } from './batched';
import { AppError } from './errors';
import type { EventBus, EventStream, PubSub, ReactionEvent, ReactionSummary } from './pubsub';
import type { KeyedRateLimiter } from './rate-limit';
import type { ReactionRow } from './reaction-summaries';
import { summarizeReactions } from './reaction-summaries';
import { VISIBLE_STATUSES } from './room-feed';
import type { ValidationIssue } from './validation';
import { parseChatId, parseInput, parseMessageId, reactionInput } from './validation';

/**
 * A message holds at most this many different emoji, so no client can grow its reactions without
 * bound (each user may still add any of those already there). Checked before the insert: adds of
 * new emoji at the same instant may pass it together, by at most as many as arrive at once.
 */
export const MAX_EMOJI_PER_MESSAGE = 50;

const tooManyEmoji = () => {
  const msg = `This message already has ${MAX_EMOJI_PER_MESSAGE} different reactions: add one of those instead`;
  const issue: ValidationIssue = { type: 'value_error', loc: ['body', 'emoji'], msg };
  return new AppError('BAD_USER_INPUT', msg, [issue]);
};

const messageNotFound = () => new AppError('NOT_FOUND', 'Message not found');

/**
 * Reactions to messages: any participant adds or removes their own, on any message of the chat's
 * history (bot answers included). A change is stored, then published once to the chat
 * (`chat:reaction`); adding what is already there, or removing what is not, changes nothing and
 * publishes nothing. Every call answers the message's reactions.
 */
export class ReactionService {
  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly bus: Pick<EventBus, 'available'>,
    /** Per user, whichever transport: each change reaches every participant, as a message does. */
    private readonly changeLimit: KeyedRateLimiter<number>,
  ) {}

  /**
   * Adds the caller's reaction `input.emoji` to the message.
   * @example await reactions.add(me, chatId, messageId, { emoji: '👍' }) // [{ emoji: '👍', count: 1, userIds: [me.id] }]
   */
  async add(user: PublicUser, chatId: unknown, messageId: unknown, input: unknown): Promise<ReactionSummary[]> {
    const target = await this.target(user, chatId, messageId, () => parseInput(reactionInput, input).emoji);
    const { emoji } = target;
    const rows = await this.reactionRowsOf(target);
    if (rows.some((row) => row.userId === user.id && row.emoji === emoji)) return summarizeReactions(rows);
    if (!rows.some((row) => row.emoji === emoji) && new Set(rows.map((row) => row.emoji)).size >= MAX_EMOJI_PER_MESSAGE) throw tooManyEmoji();
    const after = [...rows, { emoji, userId: user.id }];
    // Raw SQL on both engines, as for messages: a fraction of the ORM's cost on a path every reaction takes.
    const added = await this.db.$executeRaw`
      INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (${target.messageId}, ${user.id}, ${emoji}, ${new Date()})
      ON CONFLICT (message_id, user_id, emoji) DO NOTHING`;
    // Added at this very moment by another socket of the caller's: that one tells the room.
    return added === 0 ? summarizeReactions(after) : this.publish(user, target, 'added', after);
  }

  /** Removes the caller's reaction `emoji` from the message. */
  async remove(user: PublicUser, chatId: unknown, messageId: unknown, emoji: unknown): Promise<ReactionSummary[]> {
    const target = await this.target(user, chatId, messageId, () => parseInput(reactionInput, { emoji }, 'path').emoji);
    // Read first: only a message of this chat's history is found, so another chat's reactions stay out of reach.
    const rows = await this.reactionRowsOf(target);
    const isTarget = (row: ReactionRow) => row.userId === user.id && row.emoji === target.emoji;
    if (!rows.some(isTarget)) return summarizeReactions(rows);
    const removed = await this.db.$executeRaw`
      DELETE FROM reactions WHERE message_id = ${target.messageId} AND user_id = ${user.id} AND emoji = ${target.emoji}`;
    const after = rows.filter((row) => !isTarget(row));
    // Taken back at this very moment by another socket of the caller's: that one tells the room.
    return removed === 0 ? summarizeReactions(after) : this.publish(user, target, 'removed', after);
  }

  /** The reactions of each of `messageIds` (those with none are left out): one query for all of them. */
  async summariesOf(messageIds: number[]): Promise<Map<number, ReactionSummary[]>> {
    if (messageIds.length === 0) return new Map();
    const rows = await this.db.reaction.findMany({
      where: { messageId: { in: messageIds } },
      orderBy: { id: 'asc' },
      select: { messageId: true, emoji: true, userId: true },
    });
    const byMessage = groupedBy(
      rows,
      (row) => row.messageId,
      (row) => row,
    );
    return new Map([...byMessage].map(([messageId, list]) => [messageId, summarizeReactions(list)]));
  }

  /** The chat's reaction changes, for a participant, until they are no longer in the chat. */
  async subscribe(reader: PublicUser, chatId: unknown): Promise<EventStream<ReactionEvent>> {
    const id = parseChatId(chatId);
    return this.pubsub.subscribe('chat:reaction', id, await this.chats.participantUntilLeft(reader.id, id));
  }

  /**
   * The checks every change makes, in the order the other routes make them: the input (422), the rate
   * (input refused costs nothing), the chat (404, then 403 for anyone not in it), and that the change
   * can reach everyone.
   */
  private async target(user: PublicUser, chatId: unknown, messageId: unknown, parseEmoji: () => string) {
    const target = { chatId: parseChatId(chatId), messageId: parseMessageId(messageId), emoji: parseEmoji() };
    this.changeLimit.take(user.id);
    await this.chats.requireParticipant(user.id, target.chatId);
    // Refused before storing while other instances cannot hear of it, as messages are.
    if (!this.bus.available()) throw new AppError('SERVICE_UNAVAILABLE', 'Reactions cannot be delivered right now (Redis is unreachable): try again shortly');
    return target;
  }

  /**
   * The message's reactions, oldest first, read with the message in one statement (a change costs
   * this read and one write); 404 unless the message is in this chat's history: neither a bot
   * answer still streaming nor one that failed.
   */
  private async reactionRowsOf({ chatId, messageId }: { chatId: number; messageId: number }): Promise<ReactionRow[]> {
    const rows = await this.db.$queryRaw<{ emoji: string | null; user_id: number | null }[]>`
      SELECT r.emoji, r.user_id FROM messages m LEFT JOIN reactions r ON r.message_id = m.id
      WHERE m.id = ${messageId} AND m.chat_id = ${chatId} AND m.status IN (${Prisma.join(VISIBLE_STATUSES)})
      ORDER BY r.id`;
    if (rows.length === 0) throw messageNotFound();
    return rows.flatMap(({ emoji, user_id }) => (emoji === null ? [] : [{ emoji, userId: Number(user_id) }]));
  }

  private publish(
    user: PublicUser,
    { chatId, messageId, emoji }: { chatId: number; messageId: number; emoji: string },
    action: ReactionEvent['action'],
    rowsAfter: ReactionRow[],
  ): ReactionSummary[] {
    const reactions = summarizeReactions(rowsAfter);
    this.pubsub.publish('chat:reaction', chatId, { chatId, messageId, emoji, userId: user.id, username: user.username, action, reactions });
    return reactions;
  }
}
