import { attachmentSelect, toAttachmentView } from './attachments/attachment.service';
import type { Database } from '../db/client';
import { publicUserSelect } from './auth.service';
import type { Logger } from '../log';
import type { BotStreamEvent, Listening, MessageChange, MessageEvent, PubSub, StoredMessage } from './pubsub';
import { readiness } from './pubsub';
import type { ReactionRow } from './reaction-summaries';
import { reactionRowsSelect, summarizeReactions } from './reaction-summaries';
import { RecentIds } from './recent-ids';

/** History shows finished messages: not an answer still streaming, nor one that failed or was deleted. */
export const VISIBLE_STATUSES = ['complete', 'stopped'];

/** The columns of a message every transport delivers, with its author's name. */
export const messageSelect = {
  id: true,
  chatId: true,
  userId: true,
  content: true,
  isBot: true,
  status: true,
  replyToId: true,
  askPending: true,
  createdAt: true,
  editedAt: true,
  deletedAt: true,
  changeMark: true,
  senderName: true,
  assistantId: true,
  threadId: true,
  sources: true,
  user: { select: publicUserSelect },
} as const;

/** A message's columns with its reactions: what history and catch-up deliver, one query for the reactions of a whole page. */
export const messageWithReactionsSelect = {
  ...messageSelect,
  reactions: reactionRowsSelect,
  attachments: { select: attachmentSelect, orderBy: { id: 'asc' } },
} as const;

/** `assistant` is named later, and only where a page holds an assistant's answer (see nameAssistants). */
export const toStoredMessage = (row: Omit<StoredMessage, 'username' | 'assistant'>): StoredMessage => ({
  ...row,
  username: row.user?.username ?? row.senderName ?? null,
  assistant: null,
});

/**
 * `messages` with the name of the assistant each answer came from: one query, and none at all for
 * a page without assistants' answers (the rooms that have none pay nothing for them).
 */
export async function nameAssistants<M extends StoredMessage>(db: Database, messages: M[]): Promise<M[]> {
  const ids = [...new Set(messages.flatMap((message) => (message.isBot && message.assistantId !== null ? [message.assistantId] : [])))];
  if (ids.length === 0) return messages;
  const names = new Map((await db.assistant.findMany({ where: { id: { in: ids } }, select: { id: true, name: true } })).map((row) => [row.id, row.name]));
  return messages.map((message) => {
    const name = message.isBot && message.assistantId !== null ? names.get(message.assistantId) : undefined;
    return name === undefined ? message : { ...message, assistant: { name } };
  });
}

export const toMessageEvent = ({
  reactions,
  attachments,
  ...row
}: Omit<StoredMessage, 'username' | 'assistant'> & { reactions: ReactionRow[]; attachments: Parameters<typeof toAttachmentView>[0][] }): MessageEvent => ({
  ...toStoredMessage(row),
  reactions: summarizeReactions(reactions),
  attachments: attachments.map(toAttachmentView),
});

/** What a stored message that was edited or deleted tells its readers now, its reactions with it. Only people's messages are edited. */
export const changeOf = (row: Parameters<typeof toMessageEvent>[0]): MessageChange =>
  row.status === 'deleted' ? { kind: 'deleted', chatId: row.chatId, messageId: row.id } : { kind: 'updated', message: toMessageEvent(row) };

/** How many delivered ids a room remembers, to tell what an outage's repair must still deliver. */
const REMEMBERED_IDS = 2048;
/** Clocks of instances differ a little: the repair reads from this long before the outage began. */
const CLOCK_SKEW_MS = 5_000;
/** At most this many stored rows are read back after one outage. */
const REPAIR_LIMIT = 10_000;

/** Hears each step of a room's bot answers, with the answer's whole text so far (the full text on completion). */
export type BotListener = (event: BotStreamEvent, textSoFar: string) => void;

interface Room {
  messageListeners: Set<(event: MessageEvent) => void>;
  changeListeners: Set<(change: MessageChange) => void>;
  botListeners: Set<BotListener>;
  /** The newest REMEMBERED_IDS message ids delivered here, each in its place in the order of delivery. */
  deliveredMessages: RecentIds;
  completedAnswers: RecentIds;
  /** Each answer seen streaming here and not yet completed: its text so far as delivered to this room's readers. */
  openAnswers: Map<number, { text: string; createdAt: Date; assistantId?: number; assistantName?: string }>;
  registrations: Listening[];
  ready: Promise<unknown>;
}

/**
 * This process's view of each room's messages, their edits and deletions, and bot answers: one
 * bus registration per topic and room however many local readers (`/ws` rooms, GraphQL
 * subscriptions, catch-up streams) it has, and the repair of what the bus lost. When Redis answers
 * again after an outage, what was stored or changed meanwhile is read back from the database and
 * delivered to the readers that missed it.
 */
export class RoomFeeds {
  private readonly rooms = new Map<number, Room>();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly log: Logger,
  ) {}

  /** Calls `listener` with each message stored in the room until `stop()`. */
  onMessage(chatId: number, listener: (event: MessageEvent) => void): Listening {
    return this.register(chatId, (room) => room.messageListeners, listener);
  }

  /** Calls `listener` with each edit and deletion of the room's messages until `stop()`. */
  onChange(chatId: number, listener: (change: MessageChange) => void): Listening {
    return this.register(chatId, (room) => room.changeListeners, listener);
  }

  /** Both of the above through one listener, in the order they happened. */
  onMessageOrChange(chatId: number, listener: (event: MessageEvent | MessageChange) => void): Listening {
    const registrations = [this.onMessage(chatId, listener), this.onChange(chatId, listener)];
    return {
      ready: readiness(Promise.all(registrations.map((registration) => registration.ready)).then(() => {})),
      stop: () => registrations.forEach((registration) => registration.stop()),
    };
  }

  /**
   * Calls `listener` with each bot stream event of the room until `stop()`; with `textSoFar`,
   * first (in this call) with one delta holding the text so far of each running answer, so a
   * reader who arrives mid-answer has it whole.
   */
  onBot(chatId: number, listener: BotListener, { textSoFar = false } = {}): Listening {
    const listening = this.register(chatId, (room) => room.botListeners, listener);
    if (textSoFar) {
      for (const snapshot of this.answersInProgress(chatId)) listener(snapshot, snapshot.chunk);
    }
    return listening;
  }

  /** Where the room's message deliveries stand now: what `deliveredSince` counts from. */
  messageSequence(chatId: number): number {
    return this.rooms.get(chatId)?.deliveredMessages.count ?? 0;
  }

  /** The ids of the messages the room delivered here after `sequence` (as far as it remembers). */
  deliveredSince(chatId: number, sequence: number): Set<number> {
    return this.rooms.get(chatId)?.deliveredMessages.since(sequence) ?? new Set();
  }

  /** A delta holding the text so far of each answer running in the room, as this process's readers have received it. */
  answersInProgress(chatId: number): BotStreamEvent[] {
    return [...(this.rooms.get(chatId)?.openAnswers ?? [])]
      .filter(([, answer]) => answer.text !== '')
      .map(([messageId, { text, ...answer }]) => ({ chatId, messageId, chunk: text, isComplete: false, ...answer }));
  }

  private register<L>(chatId: number, listenersOf: (room: Room) => Set<L>, listener: L): Listening {
    const room = this.rooms.get(chatId) ?? this.open(chatId);
    const listeners = listenersOf(room);
    listeners.add(listener);
    let stopped = false;
    return {
      ready: readiness(room.ready.then(() => {})),
      stop: () => {
        if (stopped) return;
        stopped = true;
        listeners.delete(listener);
        const idle = room.messageListeners.size === 0 && room.changeListeners.size === 0 && room.botListeners.size === 0;
        if (idle && this.rooms.get(chatId) === room) {
          for (const registration of room.registrations) registration.stop();
          this.rooms.delete(chatId);
        }
      },
    };
  }

  private open(chatId: number): Room {
    const room: Room = {
      messageListeners: new Set(),
      changeListeners: new Set(),
      botListeners: new Set(),
      deliveredMessages: new RecentIds(REMEMBERED_IDS),
      completedAnswers: new RecentIds(REMEMBERED_IDS),
      openAnswers: new Map(),
      registrations: [],
      ready: Promise.resolve(),
    };
    room.registrations = [
      this.pubsub.on('chat:message', chatId, (event) => this.deliverMessage(room, event)),
      this.pubsub.on('chat:change', chatId, (change) => this.deliverChange(room, change)),
      this.pubsub.on('chat:bot', chatId, (event) => this.deliverBot(room, event)),
    ];
    room.ready = Promise.all(room.registrations.map((registration) => registration.ready));
    this.rooms.set(chatId, room);
    return room;
  }

  private deliverMessage(room: Room, event: MessageEvent): void {
    if (room.deliveredMessages.has(event.id)) return;
    room.deliveredMessages.add(event.id);
    this.deliverTo(room.messageListeners, event, undefined);
  }

  /**
   * Changes are not de-duplicated: applying one twice changes nothing. A deleted answer that was
   * streaming here ends first (stopped, with no text), and nothing more of it is delivered: its
   * last deltas may still be on their way from the instance that ran it.
   */
  private deliverChange(room: Room, change: MessageChange): void {
    if (change.kind === 'deleted') {
      const open = room.openAnswers.get(change.messageId);
      if (open) {
        const { chatId, messageId } = change;
        this.deliverBot(room, { chatId, messageId, chunk: '', isComplete: true, fullResponse: '', stopped: true, createdAt: open.createdAt });
      } else {
        room.completedAnswers.add(change.messageId);
      }
    }
    this.deliverTo(room.changeListeners, change, undefined);
  }

  private deliverBot(room: Room, event: BotStreamEvent): void {
    // An answer written again (regenerate) streams under its id once more.
    if (event.regenerating && !event.isComplete) room.completedAnswers.delete(event.messageId);
    if (room.completedAnswers.has(event.messageId)) return;
    let textSoFar: string;
    if (event.isComplete) {
      textSoFar = event.fullResponse ?? room.openAnswers.get(event.messageId)?.text ?? '';
      room.openAnswers.delete(event.messageId);
      room.completedAnswers.add(event.messageId);
    } else {
      textSoFar = (room.openAnswers.get(event.messageId)?.text ?? '') + event.chunk;
      const { createdAt, assistantId, assistantName } = event;
      room.openAnswers.set(event.messageId, { text: textSoFar, createdAt, ...(assistantId === undefined ? {} : { assistantId, assistantName }) });
    }
    this.deliverTo(room.botListeners, event, textSoFar);
  }

  /**
   * After an outage: every message stored since it began, every answer that finished since (or
   * that was streaming here when it began), delivered to the rooms' readers unless they already
   * had it, then every edit and deletion made since. One query for each, for all of this process's rooms.
   * Run by OutageRepair, once memberships are checked.
   */
  async repair(since: Date): Promise<void> {
    if (this.rooms.size === 0) return;
    const openAnswers = [...this.rooms.values()].flatMap((room) => [...room.openAnswers.keys()]);
    const from = new Date(since.getTime() - CLOCK_SKEW_MS);
    const rows = await this.db.message.findMany({
      where: {
        chatId: { in: [...this.rooms.keys()] },
        status: { not: 'streaming' },
        OR: [{ createdAt: { gte: from } }, { id: { in: openAnswers } }],
      },
      orderBy: { id: 'asc' },
      take: REPAIR_LIMIT,
      select: messageWithReactionsSelect,
    });
    for (const row of rows) {
      const room = this.rooms.get(row.chatId);
      if (!room) continue;
      if (!row.isBot) {
        if (VISIBLE_STATUSES.includes(row.status)) this.deliverMessage(room, toMessageEvent(row));
        continue;
      }
      this.deliverBot(room, {
        chatId: row.chatId,
        messageId: row.id,
        chunk: '',
        isComplete: true,
        fullResponse: row.content,
        createdAt: row.createdAt,
        ...(row.status === 'failed' ? { error: 'The answer failed while the server was reconnecting' } : {}),
        ...(row.status === 'stopped' || row.status === 'deleted' ? { stopped: true } : {}),
      });
    }
    // Along the (chat_id, change_mark) index: only messages ever changed are read.
    const changed = await this.db.message.findMany({
      where: { chatId: { in: [...this.rooms.keys()] }, changeMark: { not: null }, OR: [{ editedAt: { gte: from } }, { deletedAt: { gte: from } }] },
      orderBy: { changeMark: 'asc' },
      take: REPAIR_LIMIT,
      select: messageWithReactionsSelect,
    });
    for (const row of changed) {
      const room = this.rooms.get(row.chatId);
      if (room) this.deliverChange(room, changeOf(row));
    }
  }

  /**
   * Hands the event to each listener there is now (one added meanwhile waits for the next event). One
   * reader's failure is logged and never keeps the event from the others. No closure per listener: this
   * runs for every subscriber of every event.
   */
  private deliverTo<E, Extra>(listeners: Set<(event: E, extra: Extra) => void>, event: E, extra: Extra): void {
    for (const listener of [...listeners]) {
      try {
        listener(event, extra);
      } catch (error) {
        this.log.error({ err: error }, 'delivering an event failed');
      }
    }
  }
}
