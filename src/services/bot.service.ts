import type { GoogleGenAI } from '@google/genai';
import { lazyGemini } from './gemini';
import type { Config } from '../config';
import type { Database } from '../db/client';
import type { Logger } from '../log';
import { outsideRequest } from '../log';
import type { Metrics } from '../metrics';
import type { PublicUser } from './auth.service';
import { publicUserSelect } from './auth.service';
import { addressedAssistant, parseAddress } from './bot/addressing';
import type { Ask, MediaSource } from './bot/answer-context';
import type { AnswerInProgress } from './bot/answer-runner';
import { AnswerRunner } from './bot/answer-runner';
import type { AnswerVersion } from './bot/answer-versions';
import { AnswerVersions } from './bot/answer-versions';
import { MemoryKeeper } from './bot/memory';
import { UsageService } from './bot/usage.service';
import type { ChatService } from './chat.service';
import { AppError } from './errors';
import type { BotStreamEvent, PubSub } from './pubsub';
import { boundedStream } from './pubsub';
import { KeyedRateLimiter } from './rate-limit';
import type { RoomFeeds } from './room-feed';
import { settleWithin } from './timeout';
import type { RoomLock } from './room-lock';
import { parseChatId } from './validation';
import type { WebhookOutbox } from './webhooks/outbox';

export { botPrompt } from './bot/addressing';
export type { AnswerInProgress } from './bot/answer-runner';
export type { AnswerVersion } from './bot/answer-versions';

/**
 * Asks whichever instance runs the room's answer (with `answering`, the answer to that ask) to stop
 * it: the answer may run on another instance, so the request travels over the pub/sub. False when
 * none is running.
 */
export async function requestStop(db: Database, pubsub: PubSub, chatId: number, answering?: number): Promise<boolean> {
  const streaming = await db.message.findFirst({
    where: { chatId, status: 'streaming', ...(answering === undefined ? {} : { replyToId: answering }) },
    select: { id: true },
  });
  if (!streaming) return false;
  pubsub.publish('chat:stop', chatId, { chatId, messageId: streaming.id });
  return true;
}

/** A message that asks the room's bot: the assistant it addresses (null: the built-in bot). */
export interface BotAsk {
  assistantId: number | null;
}

/**
 * The room's AI. Asks (`/bot …`, `@name …`) are answered one at a time per room, in order; rooms
 * run in parallel up to a per-process cap on model calls. Each answer gets its message id when it
 * starts, streams deltas to the room's `chat:bot` topic, and is stored whole whoever is still
 * listening (see AnswerRunner); afterwards the room's assistants bring their memory up to date.
 */
export class BotService {
  private readonly roomQueues = new Map<number, Promise<void>>();
  private readonly askLimit: KeyedRateLimiter<number>;
  /** Answers waiting for a model-call slot; each is told whether it got one (false: shutting down). */
  private readonly waitingForSlot: ((granted: boolean) => void)[] = [];
  private activeCalls = 0;
  /** Aborts when shutdown begins: from then on no lock is waited for, no ask taken, no model call started. */
  private readonly closing = new AbortController();
  private readonly runner: AnswerRunner;
  private readonly memory: MemoryKeeper;
  private readonly versionsOf: AnswerVersions;
  /** What the room's answers cost, and BOT_ROOM_MONTHLY_TOKENS. */
  readonly usage: UsageService;

  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly config: Pick<Config, 'gemini' | 'bot' | 'limits'>,
    private readonly roomLock: RoomLock,
    private readonly feeds: RoomFeeds,
    private readonly log: Logger,
    metrics: Metrics,
    /** Where `bot.answer.completed` goes for the chat's webhooks; none in tests that build the bot alone. */
    outbox: Pick<WebhookOutbox, 'record'> = { record: () => Promise.resolve() },
    /** The bytes of the files in a bot's context (base64, by attachment id); none without it. */
    media: MediaSource = { dataOf: () => Promise.resolve(new Map()) },
  ) {
    const gemini: (() => Promise<GoogleGenAI>) | null = lazyGemini(config.gemini);
    this.usage = new UsageService(db, chats, config, metrics);
    this.runner = new AnswerRunner(db, pubsub, feeds, config, log, metrics, this.usage, gemini, this.closing.signal, outbox, media);
    this.memory = new MemoryKeeper(db, config, this.usage, log, gemini);
    this.versionsOf = new AnswerVersions(
      db,
      chats,
      (user, chatId) => this.admit(user, chatId, '-'),
      (chatId) => void this.answer(chatId),
    );
    const perMinute = config.limits.botPerMinute;
    this.askLimit = new KeyedRateLimiter({
      ratePerSecond: perMinute / 60,
      burst: perMinute,
      message: `Too many /bot requests: at most ${perMinute} a minute`,
      onRefused: () => metrics.refused('bot'),
    });
  }

  /**
   * Whether `content` asks the room's bot, and which assistant, checked before the message is
   * stored: `/bot …` asks the room's default assistant (the built-in bot in a room without any),
   * `/bot @name …` the one named, `@name …` an assistant that answers mentions (else it is an
   * ordinary message). A question is required, each user has `BOT_RATE_LIMIT` asks a minute, and
   * the room its BOT_ROOM_MONTHLY_TOKENS. Null when it is no ask.
   */
  async route(asker: Pick<PublicUser, 'id'>, chatId: number, content: string): Promise<BotAsk | null> {
    const address = parseAddress(content);
    if (!address) return null;
    const assistantId = await addressedAssistant(this.db, chatId, address);
    if (assistantId === undefined) return null;
    await this.admit(asker, chatId, address.prompt);
    return { assistantId };
  }

  /** Any member asks for an answer again (see AnswerVersions.regenerate). */
  regenerate(user: PublicUser, chatId: unknown, messageId: unknown): Promise<void> {
    return this.versionsOf.regenerate(user, chatId, messageId);
  }

  /** An answer's versions, oldest first, the current one last. */
  versions(user: PublicUser, chatId: unknown, messageId: unknown): Promise<AnswerVersion[]> {
    return this.versionsOf.list(user, chatId, messageId);
  }

  /**
   * Makes sure the room's stored asks get answered, after its earlier ones. Whoever holds the
   * room's lock (on any instance) answers every pending ask in id order, so each is answered once
   * and in order however the asks were spread over instances.
   */
  answer(chatId: number): Promise<void> {
    // Shutting down: the ask stays pending in the database, for the next start or another instance.
    if (this.closing.signal.aborted) return Promise.resolve();
    const previous = this.roomQueues.get(chatId) ?? Promise.resolve();
    // The answers outlive the request that asked, and answer other asks of the room too: their lines carry no request id.
    const next = outsideRequest(() =>
      previous
        .then(() => this.roomLock.withLock(chatId, (lost) => this.answerPending(chatId, lost), this.closing.signal))
        .catch((error: unknown) => {
          if (error !== this.closing.signal.reason) this.log.error({ err: error, chatId }, 'bot answers could not run');
        }),
    );
    this.roomQueues.set(chatId, next);
    void next.finally(() => {
      if (this.roomQueues.get(chatId) === next) this.roomQueues.delete(chatId);
    });
    return next;
  }

  /** Stops the room's running answer: the model call is aborted and what was written is kept. */
  async stop(user: PublicUser, chatId: unknown): Promise<void> {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(user.id, id);
    if (!(await requestStop(this.db, this.pubsub, id))) throw new AppError('BAD_USER_INPUT', 'No bot answer is running in this chat');
  }

  /**
   * After `message` was deleted: the answer it leaves running (the message itself when it was an
   * answer being written, else the answer to it when it was an ask) is stopped wherever it runs,
   * as a member's stop would. A pending ask needs nothing: its deletion took its pending mark.
   */
  async stopAnswerOf(chatId: number, message: { id: number; isBot: boolean; status: string }): Promise<void> {
    if (message.status === 'streaming') this.pubsub.publish('chat:stop', chatId, { chatId, messageId: message.id });
    else if (!message.isBot) await requestStop(this.db, this.pubsub, chatId, message.id);
  }

  /**
   * Answers every room with a pending ask: at start (asks a stopped or dead instance left) and
   * when the lock's Redis is back. Resolves once they are queued; `idle()` waits for the answers.
   */
  async answerAllPending(): Promise<void> {
    // `WHERE ask_pending` written out, not compared with a bound value: only then may SQLite read the partial index.
    const rooms = await this.db.$queryRaw<{ chat_id: number }[]>`SELECT DISTINCT chat_id FROM messages WHERE ask_pending`;
    for (const { chat_id: chatId } of rooms) void this.answer(chatId);
  }

  /** At start of a single instance, no answer can still be running: any marked streaming died with a process. */
  failInterruptedAnswers(chatId?: number): Promise<void> {
    return this.runner.failInterrupted(chatId);
  }

  progress(chatId: number): AnswerInProgress | null {
    return this.runner.progress(chatId);
  }

  /** Bot stream events for a participant, starting with the text so far of a running answer. */
  async subscribe(reader: PublicUser, chatId: unknown): Promise<AsyncIterableIterator<BotStreamEvent>> {
    const id = parseChatId(chatId);
    const untilLeft = await this.chats.participantUntilLeft(reader.id, id);
    return boundedStream((onEvent) => this.feeds.onBot(id, onEvent, { textSoFar: true }), untilLeft);
  }

  /** Settles when every queued answer has finished: for shutdown and tests. */
  async idle(): Promise<void> {
    while (this.roomQueues.size > 0) await Promise.all(this.roomQueues.values());
  }

  /**
   * A bounded stop. At once: no lock is waited for, no ask taken and no model call started any
   * more (queued asks stay pending, for the next start or another instance). Running answers get
   * `graceMs` to finish, then are aborted and stored as stopped (if they wrote text) or failed.
   * Settles once they are stored.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.closing.abort(new Error('The bot is shutting down'));
    for (const waiter of this.waitingForSlot.splice(0)) waiter(false);
    await settleWithin(this.idle(), graceMs, () => {});
    this.runner.stopAll();
    await this.idle();
  }

  /** The checks every ask makes before it is stored: not shutting down, a question, the asker's rate, the room's budget. */
  private async admit(asker: Pick<PublicUser, 'id'>, chatId: number, prompt: string): Promise<void> {
    if (this.closing.signal.aborted) throw new AppError('SERVICE_UNAVAILABLE', 'The server is shutting down: ask again in a moment');
    if (prompt === '') throw new AppError('BAD_USER_INPUT', 'Ask the bot something: /bot <question>');
    this.askLimit.take(asker.id);
    await this.usage.checkBudget(chatId);
  }

  /** Runs `run` in a model-call slot, or not at all if shutdown begins while it waits for one. */
  private async withCallSlot(run: () => Promise<void>): Promise<void> {
    // A freed slot is handed straight to the longest waiter, still counted as taken: were it given
    // back first, an ask arriving before the waiter resumes could take it too and exceed the cap.
    if (this.activeCalls >= this.config.bot.maxConcurrentCalls) {
      const granted = await new Promise<boolean>((resolve) => this.waitingForSlot.push(resolve));
      if (!granted) return;
    } else {
      this.activeCalls++;
    }
    try {
      await run();
    } finally {
      const next = this.waitingForSlot.shift();
      if (next) next(true);
      else this.activeCalls--;
    }
  }

  /**
   * Under the room's lock: clears an answer a dead instance left, then answers every pending ask in
   * order, until none is left, shutdown begins, or the lock is `lost` (its new holder goes on).
   * Then the assistants that answered bring their long memory up to date.
   */
  private async answerPending(chatId: number, lost: AbortSignal): Promise<void> {
    await this.failInterruptedAnswers(chatId);
    const answered = new Set<number>();
    const stop = AbortSignal.any([this.closing.signal, lost]);
    while (!stop.aborted) {
      const ask = await this.nextPendingAsk(chatId);
      if (!ask) break;
      // An ask whose author is gone has nobody to answer: it stays in the history, unanswered.
      // An incoming hook's ask is answered for the hook, by its name.
      const askerName = ask.user?.username ?? ask.senderName;
      if (askerName === null) await this.runner.clearPending(ask.id);
      else {
        const pending: Ask = { id: ask.id, assistantId: ask.assistantId, threadId: ask.threadId, asker: { id: ask.user?.id ?? null, name: askerName } };
        await this.withCallSlot(() => this.runner.run(chatId, pending, lost));
      }
      if (ask.assistantId !== null) answered.add(ask.assistantId);
    }
    for (const assistantId of answered) {
      if (!stop.aborted) await this.withCallSlot(() => this.memory.refresh(chatId, assistantId, stop));
    }
  }

  /**
   * The room's oldest pending ask: a lookup in the partial index of pending asks, whatever the room's
   * history. By mark, not by "after the last answered id": on PostgreSQL two asks can commit out of
   * id order, and the later id answered first must not hide the earlier one. An ask taken between
   * the two reads is refused by the runner's claim.
   */
  private async nextPendingAsk(chatId: number) {
    // `WHERE ask_pending` written out, as in answerAllPending.
    const [oldest] = await this.db.$queryRaw<{ id: number }[]>`SELECT id FROM messages WHERE ask_pending AND chat_id = ${chatId} ORDER BY id LIMIT 1`;
    if (!oldest) return null;
    return this.db.message.findFirst({
      where: { id: oldest.id, chatId },
      select: { id: true, assistantId: true, threadId: true, senderName: true, user: { select: publicUserSelect } },
    });
  }
}
