import type { Database } from '../db/client';
import { Prisma } from '../generated/sqlite/client';
import type { PublicUser } from './auth.service';
import { ChatNotFoundError, NotAuthorizedError } from './errors';
import type { Memberships } from './memberships';
import { namedMessageEvent } from './message.service';
import type { PubSub, ReadReceipts, StoredMessage } from './pubsub';
import { messageSelect, toStoredMessage, VISIBLE_STATUSES } from './room-feed';
import { parseChatId } from './validation';

/**
 * The receipts map covers the chat's newest this-many messages: what a client shows when it opens a
 * chat (the history's default page). Older messages are read by whoever's position is past them.
 */
export const RECEIPT_WINDOW = 50;

/** A participant's read position as loaded for receipts. */
export const readPositionSelect = {
  userId: true,
  lastReadMessageId: true,
  lastReadAt: true,
  user: { select: { username: true } },
} as const;

export interface ReadPosition {
  userId: number;
  lastReadMessageId: number | null;
  lastReadAt: Date | null;
  user: { username: string };
}

export type ReadReceipt = ReadReceipts[string][number];

/**
 * Who has read `message`: every participant who marked the chat read with their position at or past
 * it, its author left out; oldest read first. `readAt` is when that reader last moved their position.
 */
export function readersOf(message: { id: number; userId: number | null }, positions: ReadPosition[]): ReadReceipt[] {
  return positions
    .filter(
      (position) =>
        position.lastReadAt !== null && position.lastReadMessageId !== null && position.lastReadMessageId >= message.id && position.userId !== message.userId,
    )
    .map((position) => ({ userId: position.userId, username: position.user.username, readAt: position.lastReadAt! }))
    .sort((a, b) => a.readAt.getTime() - b.readAt.getTime() || a.userId - b.userId);
}

/** What the chat list shows of a chat beside its own columns. */
export interface ChatActivity {
  /** Messages by others after the reader's position. */
  unreadCount: number;
  lastMessage: StoredMessage | null;
}

/**
 * Read state that scales: one read position per participant, moved by `markRead`, instead of a row
 * per message per reader. Unread counts and receipts are computed from the positions.
 */
export class ReadStateService {
  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly memberships: Memberships,
    private readonly botName: string,
  ) {}

  /** Where a new participant's position starts: the chat's newest message, so nothing before they joined is unread. */
  async startingPosition(chatId: number): Promise<number | null> {
    const newest = await this.newestMessage(chatId);
    return newest?.id ?? null;
  }

  /**
   * Moves the reader's position to the chat's newest message. Only when it moved does every
   * participant hear of it (`read_receipts_updated`): the client calls this on every incoming
   * message, and a call that changes nothing must cost nobody a push.
   * @returns whether the position moved
   */
  async markRead(reader: PublicUser, chatId: unknown): Promise<boolean> {
    const id = parseChatId(chatId);
    await this.requireReader(reader.id, id);
    const newest = await this.newestMessage(id);
    if (!newest) return false;
    // One conditional write, so concurrent calls move it once, and never backwards.
    const { count } = await this.db.chatParticipant.updateMany({
      where: { chatId: id, userId: reader.id, OR: [{ lastReadAt: null }, { lastReadMessageId: null }, { lastReadMessageId: { lt: newest.id } }] },
      data: { lastReadMessageId: newest.id, lastReadAt: new Date() },
    });
    if (count === 0) return false;
    const { receipts, positions } = await this.readState(id);
    for (const { userId } of positions) this.pubsub.publish('user:event', userId, { type: 'read_receipts_updated', chatId: id, receipts });
    return true;
  }

  /** Who has read each of the chat's RECEIPT_WINDOW newest messages, by message id. */
  async receipts(reader: PublicUser, chatId: unknown): Promise<ReadReceipts> {
    const id = parseChatId(chatId);
    await this.requireReader(reader.id, id);
    return (await this.readState(id)).receipts;
  }

  /**
   * Unread count and last message of each of `chatIds` that `user` takes part in: two statements
   * whatever the number of chats, never a query per chat.
   */
  async activity(user: PublicUser, chatIds: number[]): Promise<Map<number, ChatActivity>> {
    if (chatIds.length === 0) return new Map();
    const visible = Prisma.join(VISIBLE_STATUSES);
    // Counted from the position along the (chat_id, id) index; the last message is read backwards
    // along it, stopping at the first visible one.
    const rows = await this.db.$queryRaw<{ chat_id: number; unread_count: number; last_message_id: number | null }[]>`
      SELECT p.chat_id,
        CAST((SELECT COUNT(*) FROM messages m
          WHERE m.chat_id = p.chat_id AND m.id > COALESCE(p.last_read_message_id, 0) AND m.status IN (${visible})
            AND (m.user_id IS NULL OR m.user_id <> p.user_id)) AS INTEGER) AS unread_count,
        (SELECT m.id FROM messages m WHERE m.chat_id = p.chat_id AND m.status IN (${visible}) ORDER BY m.id DESC LIMIT 1) AS last_message_id
      FROM chat_participants p
      WHERE p.user_id = ${user.id} AND p.chat_id IN (${Prisma.join(chatIds)})`;
    const lastIds = rows.flatMap((row) => (row.last_message_id === null ? [] : [row.last_message_id]));
    const lastMessages = lastIds.length === 0 ? [] : await this.db.message.findMany({ where: { id: { in: lastIds } }, select: messageSelect });
    const byId = new Map(lastMessages.map((row) => [row.id, namedMessageEvent(toStoredMessage(row), this.botName)]));
    return new Map(
      rows.map((row) => [
        row.chat_id,
        { unreadCount: Number(row.unread_count), lastMessage: row.last_message_id === null ? null : (byId.get(row.last_message_id) ?? null) },
      ]),
    );
  }

  /** The positions of every participant and the receipts they give the chat's recent messages. */
  private async readState(chatId: number): Promise<{ receipts: ReadReceipts; positions: ReadPosition[] }> {
    const [positions, recent] = await Promise.all([
      this.db.chatParticipant.findMany({ where: { chatId }, orderBy: { id: 'asc' }, select: readPositionSelect }),
      this.db.message.findMany({
        where: { chatId, status: { in: VISIBLE_STATUSES } },
        orderBy: { id: 'desc' },
        take: RECEIPT_WINDOW,
        select: { id: true, userId: true },
      }),
    ]);
    const receipts: ReadReceipts = {};
    for (const message of recent.reverse()) receipts[String(message.id)] = readersOf(message, positions);
    return { receipts, positions };
  }

  private newestMessage(chatId: number) {
    return this.db.message.findFirst({ where: { chatId, status: { in: VISIBLE_STATUSES } }, orderBy: { id: 'desc' }, select: { id: true } });
  }

  /** Read state tells nothing of chats the caller is not in, not even whether they exist: 403 for both, as the original. */
  private async requireReader(userId: number, chatId: number): Promise<void> {
    try {
      await this.memberships.require(userId, chatId);
    } catch (error) {
      if (error instanceof ChatNotFoundError) throw new NotAuthorizedError();
      throw error;
    }
  }
}
