import type { GoogleGenAI } from '@google/genai';
import type { Config } from '../../config';
import type { Database } from '../../db/client';
import type { Logger } from '../../log';
import type { AnswerOutcome, Metrics } from '../../metrics';
import { AnswerReport } from '../answer-report';
import { isGeminiApiError } from '../gemini';
import type { AnswerSource, BotStreamEvent, PubSub } from '../pubsub';
import type { RoomFeeds } from '../room-feed';
import { VISIBLE_STATUSES } from '../room-feed';
import type { Ask, MediaSource } from './answer-context';
import type { WebhookOutbox } from '../webhooks/outbox';
import { botStreamFields } from '../../serializers';
import { answerSettings } from './answer-context';
import type { ModelCall } from './gemini-call';
import { collectSources, ModelDeclined, modelChunks } from './gemini-call';
import type { UsageService } from './usage.service';

/** The part of a running answer already published, for members who join mid-answer. */
export interface AnswerInProgress {
  messageId: number;
  text: string;
}

interface RunningAnswer extends AnswerInProgress {
  controller: AbortController;
}

/** Why an answer ended without the model finishing it; the message is what members see. */
export class AnswerFailure extends Error {}

/** An answer cut short: kept as stopped if it wrote anything. The message says why, '' when a member asked. */
export class AnswerStopped extends Error {}

export const SHUT_DOWN = 'The server shut down before the answer finished';
const LOCK_LOST = 'The answer was interrupted: another server took over the room';
const NOT_STORED = 'The answer could not be stored';

/** The answer's row, and for a regenerated answer the version it replaces (put back should the new one fail). */
interface Claimed {
  id: number;
  createdAt: Date;
  previous: { content: string; sources: string | null; status: string; versionId: number } | null;
}

/**
 * Writes one answer: claims its ask, streams the model's text to the room's `chat:bot` topic,
 * stores it (in place of the earlier version when regenerated) and records its usage.
 */
export class AnswerRunner {
  private readonly running = new Map<number, RunningAnswer>();

  constructor(
    private readonly db: Database,
    private readonly pubsub: PubSub,
    private readonly feeds: RoomFeeds,
    private readonly config: Pick<Config, 'gemini' | 'bot'>,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly usage: UsageService,
    private readonly gemini: (() => Promise<GoogleGenAI>) | null,
    /** Aborts when shutdown begins: no model call starts after. */
    private readonly closing: AbortSignal,
    /** Where `bot.answer.completed` goes for the chat's webhooks. */
    private readonly outbox: Pick<WebhookOutbox, 'record'>,
    private readonly media: MediaSource,
  ) {}

  progress(chatId: number): AnswerInProgress | null {
    const running = this.running.get(chatId);
    return running ? { messageId: running.messageId, text: running.text } : null;
  }

  /** Cuts every running answer short (shutdown's grace is over). */
  stopAll(): void {
    for (const running of this.running.values()) running.controller.abort(new AnswerStopped(SHUT_DOWN));
  }

  /** At start of a single instance, no answer can still be running: any marked streaming died with a process. */
  async failInterrupted(chatId?: number): Promise<void> {
    const interrupted = await this.db.message.findMany({
      where: { status: 'streaming', ...(chatId === undefined ? {} : { chatId }) },
      select: { id: true, chatId: true, content: true, replyToId: true, createdAt: true, versions: { orderBy: { id: 'desc' }, take: 1 } },
    });
    for (const message of interrupted) {
      // A regeneration cut short by a dead process leaves the answer as it was before.
      const earlier = message.versions[0];
      if (earlier) {
        await this.db.message.update({ where: { id: message.id }, data: { status: 'complete', content: earlier.content, sources: earlier.sources } });
        await this.db.messageVersion.delete({ where: { id: earlier.id } });
      } else {
        await this.db.message.update({ where: { id: message.id }, data: { status: 'failed' } });
      }
      // Its ask is answered, if by a failure: the process may have died before clearing its mark (see claim).
      if (message.replyToId !== null) await this.clearPending(message.replyToId);
      this.pubsub.publish('chat:bot', message.chatId, {
        chatId: message.chatId,
        messageId: message.id,
        chunk: '',
        isComplete: true,
        fullResponse: earlier?.content ?? message.content,
        error: 'The answer was interrupted: the server running it stopped',
        createdAt: message.createdAt,
      });
    }
  }

  /** Takes the ask's pending mark; false if it was already gone. */
  async clearPending(askMessageId: number): Promise<boolean> {
    const { count } = await this.db.message.updateMany({ where: { id: askMessageId, askPending: true }, data: { askPending: false } });
    return count === 1;
  }

  /** Answers one ask: claims it, streams the model's answer to the room, stores it, and always publishes its completion. */
  async run(chatId: number, ask: Ask, lost: AbortSignal): Promise<void> {
    const settings = await answerSettings(this.db, this.config, this.media, chatId, ask);
    // Shutdown began or the lock went while those were read: the ask stays pending.
    if (this.closing.aborted || lost.aborted) return;
    const claimed = await this.claim(chatId, ask, settings.assistant?.id ?? null);
    if (claimed === null) return;
    const { id: messageId, createdAt, previous } = claimed;
    const report = new AnswerReport(this.log, this.metrics, { chatId, messageId, model: settings.model });
    const answer: RunningAnswer = { messageId, text: '', controller: new AbortController() };
    const sources: AnswerSource[] = [];
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
    const who = settings.assistant ? { assistantId: settings.assistant.id, assistantName: settings.assistant.name } : {};
    const publish = (event: Omit<BotStreamEvent, 'chatId' | 'messageId' | 'createdAt'>) =>
      this.pubsub.publish('chat:bot', chatId, { chatId, messageId, createdAt, ...who, ...event });

    let status: 'complete' | 'stopped' | 'failed' = 'complete';
    let error: string | undefined;
    let cutShort = false;
    let deleted = false;
    try {
      const call: ModelCall = { ...settings, signal: answer.controller.signal };
      for await (const chunk of this.stream(call, answer.controller, report, sources)) {
        answer.text += chunk;
        publish({ chunk, isComplete: false, ...(previous ? { regenerating: true } : {}) });
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
        if (!(why instanceof AnswerFailure) && !(why instanceof ModelDeclined) && !isGeminiApiError(why)) {
          this.log.error({ err: caught, chatId, messageId }, 'a bot answer failed unexpectedly');
        }
      }
    } finally {
      this.running.delete(chatId);
      stopRequests.stop();
      lost.removeEventListener('abort', onLockLost);
    }
    // A regenerated answer that came to nothing leaves the earlier version in place.
    const restored = previous !== null && status === 'failed';
    const stored = restored
      ? { content: previous.content, sources: previous.sources, status: previous.status }
      : { content: answer.text, sources: sources.length > 0 ? JSON.stringify(sources) : null, status, ...(previous ? { editedAt: new Date() } : {}) };
    try {
      // updateMany: the chat may have been deleted meanwhile (its answer stopped), taking this row
      // with it; or the answer itself, whose tombstone stays.
      const { count } = await this.db.message.updateMany({ where: { id: messageId, status: { not: 'deleted' } }, data: stored });
      if (restored) await this.db.messageVersion.deleteMany({ where: { id: previous.versionId } });
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
      const fullResponse = deleted ? '' : restored ? previous.content : answer.text;
      const withSources = !deleted && !restored && sources.length > 0 ? { sources } : {};
      const completion = deleted
        ? { chunk: '', isComplete: true, fullResponse, stopped: true }
        : { chunk: '', isComplete: true, fullResponse, error, stopped: status === 'stopped' || undefined, ...withSources };
      await this.outbox
        .record(chatId, 'bot.answer.completed', () =>
          botStreamFields({ chatId, messageId, createdAt, ...who, ...completion }, fullResponse, this.config.bot.name),
        )
        .catch((recordError: unknown) => this.log.error({ err: recordError, chatId, messageId }, 'a bot answer could not be written to the webhook outbox'));
      publish(completion);
      roomFeed.stop();
      const outcome: AnswerOutcome = status === 'complete' ? 'completed' : cutShort ? 'stopped' : 'failed';
      report.end(outcome, error);
    }
    await this.recordUsage(chatId, ask, settings.assistant?.id ?? null, messageId, settings.model, report);
  }

  private async recordUsage(chatId: number, ask: Ask, assistantId: number | null, messageId: number, model: string, report: AnswerReport): Promise<void> {
    try {
      await this.usage.record({ chatId, assistantId, messageId, askerId: ask.asker.id, kind: 'answer', model, ...report.totals });
    } catch (error) {
      // The chat went meanwhile, taking its usage with it, or the database failed: the answer stands.
      this.log.warn({ err: error, chatId, messageId }, 'the usage of a bot answer could not be stored');
    }
  }

  /**
   * Creates the answer's row (or, when the ask's answer is regenerated, keeps its text as a version
   * and writes over it), then takes the ask's pending mark: the ask is answered by whoever took the
   * mark, and a row that lost the race goes. Not one transaction: on SQLite every query of the
   * process shares one connection, so a transaction would take in (and a rollback undo) other
   * requests' writes made meanwhile. Should the process die between the two, the next lock holder
   * marks the row failed and clears the mark. Null when the ask was not pending any more.
   */
  private async claim(chatId: number, ask: Ask, assistantId: number | null): Promise<Claimed | null> {
    const earlier = await this.db.message.findFirst({
      where: { chatId, replyToId: ask.id, isBot: true, status: { in: VISIBLE_STATUSES } },
      orderBy: { id: 'desc' },
      select: { id: true, content: true, sources: true, status: true, createdAt: true, editedAt: true },
    });
    if (earlier) {
      if (!(await this.clearPending(ask.id))) return null;
      const version = await this.db.messageVersion.create({
        data: { messageId: earlier.id, content: earlier.content, sources: earlier.sources, createdAt: earlier.editedAt ?? earlier.createdAt },
        select: { id: true },
      });
      await this.db.message.update({ where: { id: earlier.id }, data: { status: 'streaming', content: '', sources: null, assistantId } });
      const { content, sources, status } = earlier;
      return { id: earlier.id, createdAt: earlier.createdAt, previous: { content, sources, status, versionId: version.id } };
    }
    const answer = await this.db.message.create({
      data: { chatId, isBot: true, content: '', status: 'streaming', replyToId: ask.id, assistantId, threadId: ask.threadId },
      select: { id: true, createdAt: true },
    });
    if (await this.clearPending(ask.id)) return { ...answer, previous: null };
    await this.db.message.delete({ where: { id: answer.id } });
    return null;
  }

  /** The answer's text deltas; throws AnswerFailure with a readable reason when there is none to give. */
  private async *stream(call: ModelCall, controller: AbortController, report: AnswerReport, sources: AnswerSource[]): AsyncGenerator<string> {
    if (!this.gemini) throw new AnswerFailure('Gemini is not configured: set GEMINI_API_KEY');
    // Shutdown began after this answer was claimed: no model call starts any more.
    if (this.closing.aborted) throw new AnswerStopped(SHUT_DOWN);
    const { timeoutMs } = this.config.gemini;
    let silence: Timer | undefined;
    // The timeout bounds each silence (before the first chunk and between chunks), not the answer.
    const armSilenceTimer = () => {
      clearTimeout(silence);
      silence = setTimeout(() => controller.abort(new AnswerFailure(`Gemini did not answer within ${timeoutMs / 1000}s`)), timeoutMs);
    };
    armSilenceTimer();
    try {
      for await (const chunk of modelChunks(await this.gemini(), call)) {
        armSilenceTimer();
        report.tokens(chunk.usageMetadata);
        collectSources(chunk, sources);
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

export function describeFailure(error: unknown): string {
  if (error instanceof AnswerFailure || error instanceof ModelDeclined) return error.message;
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
