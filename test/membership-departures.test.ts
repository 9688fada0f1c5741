import { afterAll, beforeAll, expect, test } from 'bun:test';
import { Memberships } from '../src/services/memberships';
import { createTestApp, signUp, type TestApp } from './support/app';

/**
 * A membership checked now is acted on later (a subscription starts listening at its first read, a
 * join adds the socket to the room): a removal heard in between makes the "yes" stale.
 * `Memberships.leftSince` tells, for a check made after a mark, whether a removal since covers the
 * membership, and only then (or when the removals since are too many to be remembered).
 */

let t: TestApp;
let memberships: Memberships;
let userId: number;
let chatId: number;

beforeAll(async () => {
  t = await createTestApp();
  memberships = new Memberships(t.app.services.db, { pubsub: t.app.services.pubsub, available: () => true });
  const alice = await signUp(t);
  userId = alice.id;
  const chat = (await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'departures' } })).json()) as { id: number };
  chatId = chat.id;
});
afterAll(() => t.cleanup());

/** Whether the membership checked after `mark` is stale now. */
const leftSinceCheck = (mark: number) => memberships.leftSince(mark, userId, chatId);

test('removals since the check that do not cover the membership leave the answer standing', () => {
  const mark = memberships.mark();
  memberships.forget({ userId, chatId: chatId + 1 });
  memberships.forget({ userId: userId + 1, chatId });
  memberships.forget({ chatId: chatId + 1 });
  expect(leftSinceCheck(mark)).toBe(false);
});

test.each([
  ['the user in this chat', () => ({ userId, chatId })],
  ['the user in every chat', () => ({ userId })],
  ['everyone in this chat', () => ({ chatId })],
])('a removal since the check of %s makes the answer stale', (_label, scope) => {
  const mark = memberships.mark();
  memberships.forget({ userId: userId + 1, chatId: chatId + 1 });
  memberships.forget(scope());
  expect(leftSinceCheck(mark)).toBe(true);
  // A check made after the removal counts from after it.
  expect(leftSinceCheck(memberships.mark())).toBe(false);
});

test('more removals since the check than are remembered make it stale too: none may be missed', () => {
  const mark = memberships.mark();
  for (let other = 1; other <= 1_001; other++) memberships.forget({ userId: userId + other, chatId: chatId + other });
  expect(leftSinceCheck(mark)).toBe(true);
  const later = memberships.mark();
  for (let other = 1; other <= 999; other++) memberships.forget({ userId: userId + other, chatId: chatId + other });
  expect(leftSinceCheck(later)).toBe(false);
});

test('dropping every cached answer after a Redis outage removes no one: checks made before it stay good, and a removal after it still counts', async () => {
  const cached = await memberships.require(userId, chatId);
  const mark = memberships.mark();
  memberships.forgetEverythingHere();
  expect(leftSinceCheck(mark)).toBe(false);
  memberships.forget({ userId, chatId });
  expect(leftSinceCheck(mark)).toBe(true);
  // The cache was dropped: the answer is read again (the row is still there).
  expect(await memberships.require(userId, chatId)).toEqual(cached);
});
