import type { Config } from '../../config';
import type { Database } from '../../db/client';
import type { Metrics } from '../../metrics';
import type { PublicUser } from '../auth.service';
import type { ChatService } from '../chat.service';
import { AppError } from '../errors';
import { parseChatId, parseInput, usageQuery } from '../validation';

/** One model call's cost as the model reported it. */
export interface CallUsage {
  chatId: number;
  assistantId: number | null;
  messageId: number | null;
  askerId: number | null;
  kind: 'answer' | 'summary';
  model: string;
  promptTokens: number;
  answerTokens: number;
  totalTokens: number;
  durationMs: number;
}

export interface UsageTotals {
  answers: number;
  promptTokens: number;
  answerTokens: number;
  totalTokens: number;
  durationMs: number;
}

export interface UsageReport {
  chatId: number;
  from: Date;
  to: Date;
  total: UsageTotals;
  /** By assistant (null: the built-in bot), most tokens first. */
  byAssistant: (UsageTotals & { assistantId: number | null; name: string | null })[];
  /** By asking user (memory summaries have none: they count in the totals and by assistant only). */
  byUser: (UsageTotals & { userId: number; username: string | null })[];
}

const monthStart = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
const nextMonth = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));

const empty = (): UsageTotals => ({ answers: 0, promptTokens: 0, answerTokens: 0, totalTokens: 0, durationMs: 0 });

/**
 * What the room's bot calls cost: each call's reported token counts and duration are stored, summed
 * for a period by assistant and by asker, and held against BOT_ROOM_MONTHLY_TOKENS.
 */
export class UsageService {
  constructor(
    private readonly db: Database,
    private readonly chats: ChatService,
    private readonly config: Pick<Config, 'bot'>,
    private readonly metrics: Metrics,
  ) {}

  async record(usage: CallUsage): Promise<void> {
    await this.db.botUsage.create({ data: { ...usage, durationMs: Math.round(usage.durationMs) } });
    this.metrics.botUsageTokens.inc({ model: usage.model, purpose: usage.kind }, usage.totalTokens);
  }

  /** Refuses an ask once the room has used its month's BOT_ROOM_MONTHLY_TOKENS. */
  async checkBudget(chatId: number, now = new Date()): Promise<void> {
    const budget = this.config.bot.roomMonthlyTokens;
    if (budget === 0) return;
    const used = await this.db.botUsage.aggregate({ where: { chatId, createdAt: { gte: monthStart(now) } }, _sum: { totalTokens: true } });
    if ((used._sum.totalTokens ?? 0) < budget) return;
    this.metrics.refused('bot_budget');
    const renews = nextMonth(now);
    throw new AppError(
      'RATE_LIMITED',
      `This chat has used its ${budget} bot tokens for this month (BOT_ROOM_MONTHLY_TOKENS): the bot answers again from ${renews.toISOString().slice(0, 10)}`,
      undefined,
      Math.ceil((renews.getTime() - now.getTime()) / 1000),
    );
  }

  /** The room's usage from `from` (inclusive) to `to` (exclusive): this month by default. For any member. */
  async report(user: PublicUser, chatId: unknown, query: unknown): Promise<UsageReport> {
    const id = parseChatId(chatId);
    const period = parseInput(usageQuery, query, 'query');
    await this.chats.requireParticipant(user.id, id);
    const now = new Date();
    const from = period.from ? new Date(period.from) : monthStart(now);
    const to = period.to ? new Date(period.to) : nextMonth(now);
    const rows = await this.db.botUsage.findMany({
      where: { chatId: id, createdAt: { gte: from, lt: to } },
      select: { assistantId: true, askerId: true, kind: true, promptTokens: true, answerTokens: true, totalTokens: true, durationMs: true },
    });
    const total = empty();
    const byAssistant = new Map<number | null, UsageTotals>();
    const byUser = new Map<number, UsageTotals>();
    for (const row of rows) {
      const targets = [total, slot(byAssistant, row.assistantId)];
      if (row.askerId !== null) targets.push(slot(byUser, row.askerId));
      for (const totals of targets) {
        if (row.kind === 'answer') totals.answers++;
        totals.promptTokens += row.promptTokens;
        totals.answerTokens += row.answerTokens;
        totals.totalTokens += row.totalTokens;
        totals.durationMs += row.durationMs;
      }
    }
    const assistantIds = [...byAssistant.keys()].filter((key): key is number => key !== null);
    const userIds = [...byUser.keys()];
    const [assistants, users] = await Promise.all([
      this.db.assistant.findMany({ where: { id: { in: assistantIds } }, select: { id: true, name: true } }),
      this.db.user.findMany({ where: { id: { in: userIds } }, select: { id: true, username: true } }),
    ]);
    const names = new Map(assistants.map((row) => [row.id, row.name]));
    const usernames = new Map(users.map((row) => [row.id, row.username]));
    const byTokens = (a: UsageTotals, b: UsageTotals) => b.totalTokens - a.totalTokens;
    return {
      chatId: id,
      from,
      to,
      total,
      byAssistant: [...byAssistant]
        .map(([assistantId, totals]) => ({ assistantId, name: assistantId === null ? null : (names.get(assistantId) ?? null), ...totals }))
        .sort(byTokens),
      byUser: [...byUser].map(([userId, totals]) => ({ userId, username: usernames.get(userId) ?? null, ...totals })).sort(byTokens),
    };
  }
}

function slot<K>(map: Map<K, UsageTotals>, key: K): UsageTotals {
  let totals = map.get(key);
  if (!totals) map.set(key, (totals = empty()));
  return totals;
}
