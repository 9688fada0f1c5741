import { expect, test } from 'bun:test';
import { summarizeReactions } from './reaction-summaries';

test('emoji in first-use order, each with its users in the order they reacted', () => {
  expect(
    summarizeReactions([
      { emoji: '🎉', userId: 3 },
      { emoji: '👍', userId: 1 },
      { emoji: '🎉', userId: 1 },
      { emoji: '❤️', userId: 2 },
      { emoji: '👍', userId: 2 },
    ]),
  ).toEqual([
    { emoji: '🎉', count: 2, userIds: [3, 1] },
    { emoji: '👍', count: 2, userIds: [1, 2] },
    { emoji: '❤️', count: 1, userIds: [2] },
  ]);
});

test('no rows, no reactions', () => {
  expect(summarizeReactions([])).toEqual([]);
});
