import type { Database } from '../../db/client';
import { Prisma } from '../../generated/sqlite/client';

import { LruCache } from '../lru-cache';
import { WEBHOOK_EVENTS } from '../validation';

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** How long a chat found to have no webhook for an event is taken at its word (see WebhookOutbox.withoutWebhook). */
export const NO_WEBHOOK_MEMORY_MS = 1_000;
/** Chats remembered per event. */
const NO_WEBHOOK_MEMORY_ENTRIES = 10_000;

/**
 * The write side of webhook delivery: an event becomes one row per enabled webhook of its chat that
 * wants it, in the database, before the change that made it is acknowledged. The delivery worker
 * sends what is written here; a restart or a crash loses none of it.
 */
export class WebhookOutbox {
  private readonly listeners = new Set<() => void>();
  /**
   * By event, the chats just found to have no webhook for it: most chats have none, and their messages
   * should not each pay a query to learn it. A webhook created here clears its chat at once; one created
   * on another instance is seen here within NO_WEBHOOK_MEMORY_MS, the delay after creation from which a
   * new webhook is sure to receive every event. Keyed by the chat's id, not a string of both: every
   * message looks its chat up here, and a key built for each would be one more string to hash.
   */
  private readonly withoutWebhook: ReadonlyMap<WebhookEvent, LruCache<number, true>>;

  constructor(
    private readonly db: Database,
    now: () => number = Date.now,
  ) {
    this.withoutWebhook = new Map(WEBHOOK_EVENTS.map((event) => [event, new LruCache<number, true>(NO_WEBHOOK_MEMORY_ENTRIES, NO_WEBHOOK_MEMORY_MS, now)]));
  }

  /**
   * Stores `event` with its `data` (the fields of the matching `/ws` frame, built only when a webhook wants them) for each webhook of the
   * chat that subscribed to it. One statement; none when no webhook of the chat wants it.
   * @example await outbox.record(chatId, 'message.created', () => messageFrameFields(message, attachments))
   */
  async record(chatId: number, event: WebhookEvent, data: () => object, at = new Date()): Promise<void> {
    const chatsWithout = this.withoutWebhook.get(event)!;
    if (chatsWithout.get(chatId)) return;
    // A read first: most chats have no webhook, and a read takes no write lock.
    const hooks = await this.db.$queryRaw<{ id: number }[]>`
      SELECT id FROM webhooks WHERE chat_id = ${chatId} AND disabled_at IS NULL AND events LIKE ${`%,${event},%`}`;
    if (hooks.length === 0) {
      chatsWithout.set(chatId, true);
      return;
    }
    const payload = JSON.stringify(data());
    const rows = Prisma.join(hooks.map((hook) => Prisma.sql`(${hook.id}, ${event}, ${payload}, ${at}, ${at})`));
    await this.db.$executeRaw`INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, next_attempt_at) VALUES ${rows}`;
    for (const listener of this.listeners) listener();
  }

  /** A webhook of the chat was created here: its events are looked up again from now on. */
  forgetChat(chatId: number): void {
    for (const chatsWithout of this.withoutWebhook.values()) chatsWithout.delete(chatId);
  }

  /** Called after each write, so this instance's worker sends at once instead of at its next poll. */
  onRecorded(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
