import type { ReactionSummary } from './pubsub';

/** A message's reaction rows as summaries are made from them, oldest first: ids order first use. */
export const reactionRowsSelect = { orderBy: { id: 'asc' }, select: { emoji: true, userId: true } } as const;

export interface ReactionRow {
  emoji: string;
  userId: number;
}

/**
 * Groups a message's reaction rows, oldest first, by emoji: the emoji in first-use order (the order
 * of each one's oldest remaining row), each with its users in the order they reacted.
 * @example summarizeReactions([{ emoji: '👍', userId: 2 }, { emoji: '🎉', userId: 1 }, { emoji: '👍', userId: 1 }])
 * // [{ emoji: '👍', count: 2, userIds: [2, 1] }, { emoji: '🎉', count: 1, userIds: [1] }]
 */
export function summarizeReactions(rows: readonly ReactionRow[]): ReactionSummary[] {
  const byEmoji = new Map<string, number[]>();
  for (const { emoji, userId } of rows) {
    const userIds = byEmoji.get(emoji);
    if (userIds) userIds.push(userId);
    else byEmoji.set(emoji, [userId]);
  }
  return [...byEmoji].map(([emoji, userIds]) => ({ emoji, count: userIds.length, userIds }));
}
