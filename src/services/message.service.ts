import type { Database } from '../db/client';
import type { PublicUser } from './auth.service';
import type { BotService } from './bot.service';
import { botPrompt } from './bot.service';
import type { ChatService } from './chat.service';
import { replayThenLive } from './listen';
import { MessageWriter } from './message-writer';
import type { MessageEvent, PubSub } from './pubsub';
import { cursorSchema, historyQuery, parseChatId, parseInput, sendMessageInput } from './validation';

/** History shows finished messages: not an answer still streaming, nor one that failed. */
export const VISIBLE_STATUSES = ['complete', 'stopped'];

/** At most this many missed messages are replayed on reconnect; older ones are in the history. */
export const CATCH_UP_LIMIT = 1000;

const messageSelect = {
  id: true,
  chatId: true,
  userId: true,
  content: true,
  isBot: true,
  status: true,
  replyToId: true,
  createdAt: true,
  user: { select: { username: true } },
} as const;

type MessageRow = Omit<MessageEvent, 'username'>;

const toEvent = (row: MessageRow): MessageEvent => ({ ...row, username: row.user?.username ?? null });

export class MessageService {
  private readonly writer: MessageWriter;

  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly bot: BotService,
  ) {
    this.writer = new MessageWriter(db);
  }

  /**
   * The one write path for a user's message, whatever the transport: checks, persists,
   * then publishes one `chat:message` event.
   */
  async send(author: PublicUser, chatId: unknown, input: unknown): Promise<MessageEvent> {
    const id = parseChatId(chatId);
    const { content } = parseInput(sendMessageInput, input);
    await this.chats.requireParticipant(author.id, id);
    const prompt = botPrompt(content);
    if (prompt !== null) this.bot.admit(author, prompt);
    const stored = await this.writer.write({ chatId: id, userId: author.id, content, askPending: prompt !== null });
    const event: MessageEvent = {
      ...stored,
      chatId: id,
      userId: author.id,
      username: author.username,
      user: { username: author.username },
      content,
      isBot: false,
      status: 'complete',
      replyToId: null,
    };
    this.pubsub.publish('chat:message', id, event);
    if (prompt !== null) void this.bot.answer(id);
    return event;
  }

  /** Tells the room that `author` is typing; `socketId` is the `/ws` socket it came from, if any. */
  async typing(author: PublicUser, chatId: unknown, socketId: string | null = null): Promise<void> {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(author.id, id);
    this.pubsub.publish('chat:typing', id, { chatId: id, userId: author.id, username: author.username, socketId });
  }

  /**
   * The room's new messages, for a participant only. With `after` (a message id the client has),
   * the messages it missed come first, then live ones: in id order, no duplicates, no gaps.
   */
  async subscribe(reader: PublicUser, chatId: unknown, after?: unknown): Promise<AsyncIterable<MessageEvent>> {
    const id = parseChatId(chatId);
    const afterId = after === undefined || after === null ? null : parseInput(cursorSchema, after, 'query');
    await this.chats.requireParticipant(reader.id, id);
    const live = this.pubsub.subscribe('chat:message', id);
    if (afterId === null) return live;
    const missed = () =>
      this.db.message
        .findMany({
          where: { chatId: id, id: { gt: afterId }, status: { in: VISIBLE_STATUSES } },
          orderBy: { id: 'asc' },
          take: CATCH_UP_LIMIT,
          select: messageSelect,
        })
        .then((rows) => rows.map(toEvent));
    // A live message the replay already held is dropped by id.
    return replayThenLive(live, missed, (event, replayed) => event.id > (replayed.at(-1)?.id ?? afterId));
  }

  async subscribeTyping(reader: PublicUser, chatId: unknown) {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(reader.id, id);
    return this.pubsub.subscribe('chat:typing', id);
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
      select: messageSelect,
    });
    return rows.reverse().map(toEvent);
  }
}
