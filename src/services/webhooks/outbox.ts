import type { Database } from '../../db/client';
import { Prisma } from '../../generated/sqlite/client';

import type { WEBHOOK_EVENTS } from '../validation';

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/**
 * The write side of webhook delivery: an event becomes one row per enabled webhook of its chat that
 * wants it, in the database, before the change that made it is acknowledged. The delivery worker
 * sends what is written here; a restart or a crash loses none of it.
 */
export class WebhookOutbox {
  private readonly listeners = new Set<() => void>();

  constructor(private readonly db: Database) {}

  /**
   * Stores `event` with its `data` (the fields of the matching `/ws` frame) for each webhook of the
   * chat that subscribed to it. One statement; none when no webhook of the chat wants it.
   * @example await outbox.record(chatId, 'message.created', messageFrameFields(message, attachments))
   */
  async record(chatId: number, event: WebhookEvent, data: object, at = new Date()): Promise<void> {
    const payload = JSON.stringify(data);
    // A read first: most chats have no webhook, and a read takes no write lock.
    const hooks = await this.db.$queryRaw<{ id: number }[]>`
      SELECT id FROM webhooks WHERE chat_id = ${chatId} AND disabled_at IS NULL AND events LIKE ${`%,${event},%`}`;
    if (hooks.length === 0) return;
    const rows = Prisma.join(hooks.map((hook) => Prisma.sql`(${hook.id}, ${event}, ${payload}, ${at}, ${at})`));
    await this.db.$executeRaw`INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, next_attempt_at) VALUES ${rows}`;
    for (const listener of this.listeners) listener();
  }

  /** Called after each write, so this instance's worker sends at once instead of at its next poll. */
  onRecorded(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
