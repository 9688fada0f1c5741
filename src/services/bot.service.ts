import type { Content, GoogleGenAI } from '@google/genai';
import { isGeminiApiError, lazyGemini } from './gemini';
import type { Config } from '../config';
import type { Database } from '../db/client';
import type { Logger } from '../log';
import { outsideRequest } from '../log';
import type { AnswerOutcome, Metrics } from '../metrics';
import { AnswerReport } from './answer-report';
import type { PublicUser } from './auth.service';
import { buildContents, chooseMedia, contextWindow, systemInstruction } from './bot-context';
import type { ChatService } from './chat.service';
import { AppError } from './errors';
import type { BotStreamEvent, PubSub } from './pubsub';
import { boundedStream, whileMember } from './pubsub';
import { KeyedRateLimiter } from './rate-limit';
import type { RoomFeeds } from './room-feed';
import { VISIBLE_STATUSES } from './room-feed';
import { settleWithin } from './timeout';
import type { RoomLock } from './room-lock';
import { publicUserSelect } from './auth.service';
import { parseChatId } from './validation';

const BOT_PREFIX = /^\/bot(?:\s|$)/;

/** The question of a `/bot …` message, '' for a bare `/bot`, or null when it is no bot command. */
export function botPrompt(content: string): string | null {
  return BOT_PREFIX.test(content) ? content.slice(4).trim() : null;
}

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

/** The part of a running answer already published, for members who join mid-answer. */
export interface AnswerInProgress {
  messageId: number;
  text: string;
}

interface RunningAnswer extends AnswerInProgress {
  controller: AbortController;
}

/** Why an answer ended without the model finishing it; the message is what members see. */
class AnswerFailure extends Error {}

/** An answer cut short: kept as stopped if it wrote anything. The message says why, '' when a member asked. */
class AnswerStopped extends Error {}

const SHUT_DOWN = 'The server shut down before the answer finished';
const LOCK_LOST = 'The answer was interrupted: another server took over the room';
const NOT_STORED = 'The answer could not be stored';

/**
 * The room's AI. `/bot` asks are answered one at a time per room, in order; rooms run in
 * parallel up to a per-process cap on model calls. Each answer gets its message id when it starts,
 * streams deltas to the room's `chat:bot` topic, and is stored whole whoever is still listening.
 */
export class BotService {
  private readonly gemini: (() => Promise<GoogleGenAI>) | null;
  private readonly roomQueues = new Map<number, Promise<void>>();
  private readonly running = new Map<number, RunningAnswer>();
  private readonly askLimit: KeyedRateLimiter<number>;
  /** Answers waiting for a model-call slot; each is told whether it got one (false: shutting down). */
  private readonly waitingForSlot: ((granted: boolean) => void)[] = [];
  private activeCalls = 0;
  /** Aborts when shutdown begins: from then on no lock is waited for, no ask taken, no model call started. */
  private readonly closing = new AbortController();

  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly pubsub: PubSub,
    private readonly config: Pick<Config, 'gemini' | 'bot' | 'limits'>,
    private readonly roomLock: RoomLock,
    private readonly feeds: RoomFeeds,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** The bytes of the files in a bot's context (base64, by attachment id); none without it. */
    private readonly media: { dataOf(ids: number[]): Promise<Map<number, string>> } = { dataOf: () => Promise.resolve(new Map()) },
  ) {
    this.gemini = lazyGemini(config.gemini);
    const perMinute = config.limits.botPerMinute;
    this.askLimit = new KeyedRateLimiter({
      ratePerSecond: perMinute / 60,
      burst: perMinute,
      message: `Too many /bot requests: at most ${perMinute} a minute`,
      onRefused: () => metrics.refused('bot'),
    });
  }

  /**
   * Checks a `/bot` ask before its message is stored: a question is required, and each user has
   * `BOT_RATE_LIMIT` asks a minute.
   */
  admit(asker: PublicUser, prompt: string): void {
    if (this.closing.signal.aborted) throw new AppError('SERVICE_UNAVAILABLE', 'The server is shutting down: ask again in a moment');
    if (prompt === '') throw new AppError('BAD_USER_INPUT', 'Ask the bot something: /bot <question>');
    this.askLimit.take(asker.id);
  }

  /**
   * Makes sure the room's stored `/bot` asks get answered, after its earlier ones. Whoever holds
   * the room's lock (on any instance) answers every pending ask in id order, so each is
   * answered once and in order however the asks were spread over instances.
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
    const rooms = await this.db.message.groupBy({ by: ['chatId'], where: { askPending: true } });
    for (const { chatId } of rooms) void this.answer(chatId);
  }

  /** At start of a single instance, no answer can still be running: any marked streaming died with a process. */
  async failInterruptedAnswers(chatId?: number): Promise<void> {
    const interrupted = await this.db.message.findMany({
      where: { status: 'streaming', ...(chatId === undefined ? {} : { chatId }) },
      select: { id: true, chatId: true, content: true, replyToId: true, createdAt: true },
    });
    for (const message of interrupted) {
      await this.db.message.update({ where: { id: message.id }, data: { status: 'failed' } });
      // Its ask is answered, if by a failure: the process may have died before clearing its mark (see claim).
      if (message.replyToId !== null) await this.clearPending(message.replyToId);
      this.pubsub.publish('chat:bot', message.chatId, {
        chatId: message.chatId,
        messageId: message.id,
        chunk: '',
        isComplete: true,
        fullResponse: message.content,
        error: 'The answer was interrupted: the server running it stopped',
        createdAt: message.createdAt,
      });
    }
  }

  progress(chatId: number): AnswerInProgress | null {
    const running = this.running.get(chatId);
    return running ? { messageId: running.messageId, text: running.text } : null;
  }

  /** Bot stream events for a participant, starting with the text so far of a running answer. */
  async subscribe(reader: PublicUser, chatId: unknown): Promise<AsyncIterableIterator<BotStreamEvent>> {
    const id = parseChatId(chatId);
    await this.chats.requireParticipant(reader.id, id);
    return boundedStream((onEvent) => this.feeds.onBot(id, onEvent, { textSoFar: true }), whileMember(this.pubsub, reader.id, id));
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
    for (const running of this.running.values()) running.controller.abort(new AnswerStopped(SHUT_DOWN));
    await this.idle();
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
   */
  private async answerPending(chatId: number, lost: AbortSignal): Promise<void> {
    await this.failInterruptedAnswers(chatId);
    while (!this.closing.signal.aborted && !lost.aborted) {
      const ask = await this.nextPendingAsk(chatId);
      if (!ask) return;
      // An ask whose author is gone has nobody to answer: it stays in the history, unanswered.
      if (!ask.user) await this.clearPending(ask.id);
      else await this.withCallSlot(() => this.run(chatId, ask.id, ask.user!, lost));
    }
  }

  /**
   * The room's oldest pending ask: an index lookup (ask_pending, chat_id, id), whatever the room's
   * history. By mark, not by "after the last answered id": on PostgreSQL two asks can commit out of
   * id order, and the later id answered first must not hide the earlier one.
   */
  private nextPendingAsk(chatId: number) {
    return this.db.message.findFirst({
      where: { askPending: true, chatId },
      orderBy: { id: 'asc' },
      select: { id: true, user: { select: publicUserSelect } },
    });
  }

  /**
   * Creates the answer's row, then takes the ask's pending mark: the ask is answered by whoever
   * took the mark (another instance, were this one's lock lost meanwhile), and a row that lost the
   * race goes. Not one transaction: on SQLite every query of the process shares one connection, so
   * a transaction would take in (and a rollback undo) other requests' writes made meanwhile. Should
   * the process die between the two, the next lock holder marks the row failed and clears the mark.
   * Returns the answer's id, or null when the ask was not pending any more.
   */
  private async claim(chatId: number, askMessageId: number): Promise<{ id: number; createdAt: Date } | null> {
    const answer = await this.db.message.create({
      data: { chatId, isBot: true, content: '', status: 'streaming', replyToId: askMessageId },
      select: { id: true, createdAt: true },
    });
    if (await this.clearPending(askMessageId)) return answer;
    await this.db.message.delete({ where: { id: answer.id } });
    return null;
  }

  /** Takes the ask's pending mark; false if it was already gone. */
  private async clearPending(askMessageId: number): Promise<boolean> {
    const { count } = await this.db.message.updateMany({ where: { id: askMessageId, askPending: true }, data: { askPending: false } });
    return count === 1;
  }

  /** Answers one ask: claims it, streams the model's answer to the room, stores it, and always publishes its completion. */
  private async run(chatId: number, askMessageId: number, asker: PublicUser, lost: AbortSignal): Promise<void> {
    const chat = await this.db.chat.findUnique({ where: { id: chatId }, select: { name: true } });
    const history = await this.history(chatId, askMessageId);
    // Shutdown began or the lock went while those were read: the ask stays pending.
    if (this.closing.signal.aborted || lost.aborted) return;
    const claimed = await this.claim(chatId, askMessageId);
    if (claimed === null) return;
    const { id: messageId, createdAt } = claimed;
    const report = new AnswerReport(this.log, this.metrics, { chatId, messageId, model: this.config.gemini.model });
    const answer: RunningAnswer = { messageId, text: '', controller: new AbortController() };
    this.running.set(chatId, answer);
    // Keeps the room's feed open while the answer runs, so a reader arriving mid-answer (on any
    // instance's bus) is given the text so far exactly as it was delivered, then the rest.
    const roomFeed = this.feeds.onBot(chatId, () => {});
    await roomFeed.ready.catch(() => {});
    const stopRequests = this.pubsub.on('chat:stop', chatId, (request) => {
      if (request.messageId === messageId) answer.controller.abort(new AnswerStopped());
    });
    const onLockLost = () => answer.controller.abort(new AnswerFailure(LOCK_LOST));
    if (lost.aborted) onLockLost();
    else lost.addEventListener('abort', onLockLost, { once: true });
    const publish = (event: Omit<BotStreamEvent, 'chatId' | 'messageId' | 'createdAt'>) =>
      this.pubsub.publish('chat:bot', chatId, { chatId, messageId, createdAt, ...event });

    let status: 'complete' | 'stopped' | 'failed' = 'complete';
    let error: string | undefined;
    let cutShort = false;
    let deleted = false;
    try {
      const instruction = systemInstruction(chat?.name ?? null, asker.username);
      // The newest images, audio and PDFs that fit BOT_CONTEXT_BYTES go as data; older ones as a note.
      const chosen = chooseMedia(contextWindow(history, this.budget), this.config.bot.contextBytes);
      const media = await this.media.dataOf(chosen.map((attachment) => attachment.id));
      for await (const chunk of this.stream(buildContents(history, this.budget, media), instruction, answer.controller, report)) {
        answer.text += chunk;
        publish({ chunk, isComplete: false });
      }
    } catch (caught) {
      // An abort's reason says why; the SDK's own error only says that it was aborted.
      const why: unknown = answer.controller.signal.aborted ? answer.controller.signal.reason : caught;
      if (why instanceof AnswerStopped) {
        cutShort = true;
        // Stopped before a word was written: nothing to keep in the history.
        status = answer.text === '' ? 'failed' : 'stopped';
        error = why.message || undefined;
      } else {
        status = 'failed';
        error = describeFailure(why);
        if (!(why instanceof AnswerFailure) && !isGeminiApiError(why)) this.log.error({ err: caught, chatId, messageId }, 'a bot answer failed unexpectedly');
      }
    } finally {
      this.running.delete(chatId);
      stopRequests.stop();
      lost.removeEventListener('abort', onLockLost);
    }
    try {
      // updateMany: the chat may have been deleted meanwhile (its answer stopped), taking this row
      // with it; or the answer itself, whose tombstone stays.
      const { count } = await this.db.message.updateMany({ where: { id: messageId, status: { not: 'deleted' } }, data: { content: answer.text, status } });
      if (count === 0) {
        deleted = (await this.db.message.findUnique({ where: { id: messageId }, select: { status: true } }))?.status === 'deleted';
        // Otherwise the row went with its chat: nothing is wrong, but nothing was stored either.
        if (!deleted) {
          status = 'failed';
          error = NOT_STORED;
        }
      }
    } catch (storeError) {
      // The room still learns that the answer is over, and that it is not in the history.
      this.log.error({ err: storeError, chatId, messageId }, 'a bot answer could not be stored');
      status = 'failed';
      error = NOT_STORED;
    } finally {
      // A deleted answer ends with nothing to show, like the end its readers were given when the deletion reached them.
      if (deleted) publish({ chunk: '', isComplete: true, fullResponse: '', stopped: true });
      else publish({ chunk: '', isComplete: true, fullResponse: answer.text, error, stopped: status === 'stopped' || undefined });
      roomFeed.stop();
      const outcome: AnswerOutcome = status === 'complete' ? 'completed' : cutShort ? 'stopped' : 'failed';
      report.end(outcome, error);
    }
  }

  private get budget() {
    return { messages: this.config.bot.contextMessages, chars: this.config.bot.contextChars };
  }

  /**
   * The room up to the asking message, oldest first, as its history shows it: deleted messages are
   * left out, edited ones read as they are now. Each earlier answer sits right after the ask it
   * replied to, wherever its id fell, so queued answers keep the conversation's order.
   */
  private async history(chatId: number, askMessageId: number) {
    const rows = await this.db.message.findMany({
      where: {
        chatId,
        status: { in: VISIBLE_STATUSES },
        OR: [
          { isBot: false, id: { lte: askMessageId } },
          { isBot: true, replyToId: { lt: askMessageId } },
        ],
      },
      orderBy: { id: 'desc' },
      take: this.config.bot.contextMessages * 2,
      select: {
        id: true,
        content: true,
        isBot: true,
        replyToId: true,
        user: { select: { username: true } },
        attachments: { select: { id: true, filename: true, contentType: true, size: true }, orderBy: { id: 'asc' } },
      },
    });
    const position = (row: (typeof rows)[number]) => (row.isBot && row.replyToId !== null ? row.replyToId + 0.5 : row.id);
    return rows
      .sort((a, b) => position(a) - position(b))
      .map((row) => ({ id: row.id, content: row.content, isBot: row.isBot, username: row.user?.username ?? null, attachments: row.attachments }));
  }

  /** The answer's text deltas; throws AnswerFailure with a readable reason when there is none to give. */
  private async *stream(contents: Content[], instruction: string, controller: AbortController, report: AnswerReport): AsyncGenerator<string> {
    if (!this.gemini) throw new AnswerFailure('Gemini is not configured: set GEMINI_API_KEY');
    // Shutdown began after this answer was claimed: no model call starts any more.
    if (this.closing.signal.aborted) throw new AnswerStopped(SHUT_DOWN);
    const { timeoutMs } = this.config.gemini;
    let silence: Timer | undefined;
    // The timeout bounds each silence (before the first chunk and between chunks), not the answer.
    const armSilenceTimer = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(new AnswerFailure(`Gemini did not answer within ${timeoutMs / 1000}s`)), timeoutMs);
    };
    armSilenceTimer();
    try {
      const response = await (
        await this.gemini()
      ).models.generateContentStream({
        model: this.config.gemini.model,
        contents,
        config: { systemInstruction: instruction, abortSignal: controller.signal },
      });
      for await (const chunk of response) {
        armSilenceTimer();
        report.tokens(chunk.usageMetadata);
        const blocked = chunk.promptFeedback?.blockReason ?? blockedFinish(chunk.candidates?.[0]?.finishReason);
        if (blocked) throw new AnswerFailure(`Gemini declined to answer (${blocked})`);
        const text = chunk.text;
        if (text) {
          report.text();
          yield text;
        }
      }
    } finally {
      clearTimeout(silence);
    }
  }
}

const BLOCKING_FINISH_REASONS = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII']);
const blockedFinish = (reason: string | undefined) => (reason && BLOCKING_FINISH_REASONS.has(reason) ? reason : undefined);

function describeFailure(error: unknown): string {
  if (error instanceof AnswerFailure) return error.message;
  if (isGeminiApiError(error)) return `Gemini answered with an error (HTTP ${error.status}): ${geminiMessage(error.message)}`;
  return 'Gemini could not be reached or sent an unreadable answer';
}

/** Gemini's own error text, out of the JSON body the SDK puts in its message. */
function geminiMessage(raw: string): string {
  const json = raw.indexOf('{');
  if (json >= 0) {
    try {
      const body = JSON.parse(raw.slice(json)) as { error?: { message?: string } };
      if (body.error?.message) return body.error.message;
    } catch {
      // not JSON: fall through to the raw text
    }
  }
  return raw.slice(0, 200);
}
