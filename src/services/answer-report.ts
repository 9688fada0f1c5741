import type { GenerateContentResponseUsageMetadata } from '@google/genai';
import type { Logger } from '../log';
import type { AnswerOutcome, Metrics } from '../metrics';

/** The answer a report is about. */
export interface AnswerIdentity {
  chatId: number;
  messageId: number;
  model: string;
}

const milliseconds = (ms: number) => Math.round(ms * 10) / 10;

/**
 * One bot answer's timings and token counts, reported once when it ends: one log line and the bot
 * metrics. Times run from the answer's start (its message claimed, just before the model is called).
 */
export class AnswerReport {
  private readonly startedAt = performance.now();
  private firstTextAt: number | null = null;
  private usage: GenerateContentResponseUsageMetadata | undefined;

  constructor(
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly answer: AnswerIdentity,
  ) {}

  /** The model's text arrived: the first call ends the wait for the first token. */
  text(): void {
    this.firstTextAt ??= performance.now();
  }

  /** The usage a chunk reported: Gemini's counts are totals so far (sent on the last chunk), so the last one stands. */
  tokens(usage: GenerateContentResponseUsageMetadata | undefined): void {
    if (usage) this.usage = usage;
  }

  /** The token counts the model reported (0 for what it did not), and the time since the answer started. */
  get totals(): { promptTokens: number; answerTokens: number; totalTokens: number; durationMs: number } {
    const { promptTokenCount = 0, candidatesTokenCount = 0, totalTokenCount } = this.usage ?? {};
    return {
      promptTokens: promptTokenCount,
      answerTokens: candidatesTokenCount,
      totalTokens: totalTokenCount ?? promptTokenCount + candidatesTokenCount,
      durationMs: performance.now() - this.startedAt,
    };
  }

  /** Logs the answer's line and counts it; `error` is what its members were told, when it did not complete. */
  end(outcome: AnswerOutcome, error: string | undefined): void {
    const durationMs = performance.now() - this.startedAt;
    const ttftMs = this.firstTextAt === null ? null : this.firstTextAt - this.startedAt;
    const { promptTokenCount, candidatesTokenCount, totalTokenCount } = this.usage ?? {};
    this.metrics.botAnswers.inc({ outcome });
    this.metrics.botAnswerDuration.observe(durationMs / 1000);
    if (ttftMs !== null) this.metrics.botTimeToFirstToken.observe(ttftMs / 1000);
    if (promptTokenCount) this.metrics.botTokens.inc({ kind: 'prompt' }, promptTokenCount);
    if (candidatesTokenCount) this.metrics.botTokens.inc({ kind: 'candidates' }, candidatesTokenCount);
    const line = {
      ...this.answer,
      outcome,
      ttftMs: ttftMs === null ? null : milliseconds(ttftMs),
      durationMs: milliseconds(durationMs),
      ...(this.usage ? { promptTokens: promptTokenCount ?? null, candidatesTokens: candidatesTokenCount ?? null, totalTokens: totalTokenCount ?? null } : {}),
      ...(error ? { error } : {}),
    };
    if (outcome === 'failed') this.log.warn(line, 'bot answer');
    else this.log.info(line, 'bot answer');
  }
}
