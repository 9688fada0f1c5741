import type { Database } from '../../db/client';
import type { PublicUser } from '../auth.service';
import type { ChatService } from '../chat.service';
import { AppError, MessageNotFoundError } from '../errors';
import { VISIBLE_STATUSES } from '../room-feed';
import { parseMessageRef } from '../validation';

/** One version of an answer: 1 is the first written. */
export interface AnswerVersion {
  version: number;
  content: string;
  /** As stored (JSON), null for none. */
  sources: string | null;
  createdAt: Date;
}

/**
 * Regenerating answers and reading their versions. A regeneration marks the answer's ask pending
 * again; the room's queue then writes the answer anew in its place (see AnswerRunner.claim), the
 * earlier text kept in `message_versions`.
 */
export class AnswerVersions {
  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    /** The checks of any ask: shutdown, BOT_RATE_LIMIT, BOT_ROOM_MONTHLY_TOKENS. */
    private readonly admit: (user: PublicUser, chatId: number) => Promise<void>,
    /** Starts the room's queue. */
    private readonly answer: (chatId: number) => void,
  ) {}

  /**
   * Any member asks for an answer again: it is written anew in its place (same message id, streamed
   * as any answer), its earlier text kept as a version. Refused while it is being written.
   */
  async regenerate(user: PublicUser, chatId: unknown, messageId: unknown): Promise<void> {
    const ref = parseMessageRef(chatId, messageId);
    await this.chats.requireParticipant(user.id, ref.chatId);
    const answer = await this.db.message.findFirst({
      where: { id: ref.messageId, chatId: ref.chatId, isBot: true, status: { in: VISIBLE_STATUSES } },
      select: { replyToId: true },
    });
    if (!answer) throw new MessageNotFoundError();
    const ask =
      answer.replyToId === null
        ? null
        : await this.db.message.findFirst({ where: { id: answer.replyToId, status: { in: VISIBLE_STATUSES } }, select: { id: true } });
    if (!ask) throw new AppError('BAD_REQUEST', 'Only an answer to an ask that is still in the chat can be asked again');
    await this.admit(user, ref.chatId);
    const { count } = await this.db.message.updateMany({ where: { id: ask.id, askPending: false }, data: { askPending: true } });
    if (count === 0) throw new AppError('BAD_REQUEST', 'This answer is already being written again');
    this.answer(ref.chatId);
  }

  /** An answer's versions, oldest first, the current one last: each regeneration keeps the text it replaced. */
  async list(user: PublicUser, chatId: unknown, messageId: unknown): Promise<AnswerVersion[]> {
    const ref = parseMessageRef(chatId, messageId);
    await this.chats.requireParticipant(user.id, ref.chatId);
    const answer = await this.db.message.findFirst({
      where: { id: ref.messageId, chatId: ref.chatId, status: { in: VISIBLE_STATUSES } },
      select: {
        content: true,
        sources: true,
        createdAt: true,
        editedAt: true,
        versions: { orderBy: { id: 'asc' }, select: { content: true, sources: true, createdAt: true } },
      },
    });
    if (!answer) throw new MessageNotFoundError();
    const current = { content: answer.content, sources: answer.sources, createdAt: answer.editedAt ?? answer.createdAt };
    return [...answer.versions, current].map((version, index) => ({ version: index + 1, ...version }));
  }
}
