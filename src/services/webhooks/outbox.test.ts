import { describe, expect, test } from 'bun:test';
import type { Database } from '../../db/client';
import { NO_WEBHOOK_MEMORY_MS, WebhookOutbox } from './outbox';

/** A database stand-in that counts the outbox's lookups and has the webhooks a test gives it. */
function countingDb(webhookIds: () => number[]) {
  const calls = { lookups: 0, inserts: 0 };
  const db = {
    $queryRaw: () => {
      calls.lookups++;
      return Promise.resolve(webhookIds().map((id) => ({ id })));
    },
    $executeRaw: () => {
      calls.inserts++;
      return Promise.resolve(1);
    },
  } as unknown as Database;
  return { db, calls };
}

describe('WebhookOutbox', () => {
  test('a chat without a webhook for the event is looked up once, not once per event, until the memory lapses', async () => {
    let now = 0;
    const { db, calls } = countingDb(() => []);
    const outbox = new WebhookOutbox(db, () => now);
    for (let i = 0; i < 5; i++) await outbox.record(1, 'message.created', () => ({ i }));
    expect(calls.lookups).toBe(1);
    await outbox.record(1, 'message.deleted', () => ({}));
    await outbox.record(2, 'message.created', () => ({}));
    expect(calls.lookups).toBe(3);
    now += NO_WEBHOOK_MEMORY_MS;
    await outbox.record(1, 'message.created', () => ({}));
    expect(calls.lookups).toBe(4);
  });

  test('a webhook created on this instance is told of the very next event', async () => {
    let hooks: number[] = [];
    const { db, calls } = countingDb(() => hooks);
    const outbox = new WebhookOutbox(db, () => 0);
    await outbox.record(1, 'message.created', () => ({}));
    hooks = [7];
    outbox.forgetChat(1);
    await outbox.record(1, 'message.created', () => ({}));
    expect(calls).toEqual({ lookups: 2, inserts: 1 });
  });

  test('a chat with webhooks is looked up for every event', async () => {
    const { db, calls } = countingDb(() => [7]);
    const outbox = new WebhookOutbox(db, () => 0);
    for (let i = 0; i < 3; i++) await outbox.record(1, 'message.created', () => ({ i }));
    expect(calls).toEqual({ lookups: 3, inserts: 3 });
  });
});
