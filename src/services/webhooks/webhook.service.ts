import type { Database } from '../../db/client';
import type { Config } from '../../config';
import type { PublicUser } from '../auth.service';
import { AppError, ChatNotFoundError } from '../errors';
import type { ValidationIssue } from '../validation';
import { createWebhookInput, historyQuery, parseChatId, parseInput, parseWebhookId } from '../validation';
import { refusedUrl } from './address-safety';
import type { WebhookEvent, WebhookOutbox } from './outbox';
import { newWebhookSecret } from './signing';

export interface WebhookView {
  id: number;
  chatId: number;
  url: string;
  events: WebhookEvent[];
  createdAt: Date;
  /** When it was disabled for failing, and why; null while it receives events. */
  disabledAt: Date | null;
  disabledReason: string | null;
}

/** A webhook as its creation answers it: the only time its secret is shown. */
export type CreatedWebhook = WebhookView & { secret: string };

export interface WebhookDeliveryView {
  id: number;
  event: string;
  /** pending | delivered | failed */
  status: string;
  attempts: number;
  responseStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
}

const webhookSelect = { id: true, chatId: true, url: true, events: true, createdAt: true, disabledAt: true, disabledReason: true } as const;

const toView = (row: { events: string } & Omit<WebhookView, 'events'>): WebhookView => ({
  ...row,
  events: row.events.split(',').filter(Boolean) as WebhookEvent[],
});

const webhookNotFound = () => new AppError('NOT_FOUND', 'Webhook not found');

/** Each event is sent to every webhook of its chat: a cap keeps one message from fanning out without end. */
export const MAX_WEBHOOKS_PER_CHAT = 20;

/**
 * Outgoing webhooks of a chat, managed by its owner only: another participant is refused (403), as
 * for removing people. What they receive is written by the services (see WebhookOutbox) and sent by
 * the WebhookDeliveryWorker.
 */
export class WebhookService {
  constructor(
    private readonly db: Database,
    private readonly settings: Pick<Config['webhooks'], 'allowPrivate'>,
    private readonly outbox: Pick<WebhookOutbox, 'forgetChat'>,
  ) {}

  /**
   * Creates a webhook: `url` (https; http too with WEBHOOK_ALLOW_PRIVATE) receives the `events` named.
   * @example await webhooks.create(owner, chatId, { url: 'https://ci.example.com/hook', events: ['message.created'] })
   */
  async create(owner: PublicUser, chatId: unknown, input: unknown): Promise<CreatedWebhook> {
    const id = parseChatId(chatId);
    const { url, events } = parseInput(createWebhookInput, input);
    await this.requireOwner(owner, id);
    const refused = refusedUrl(url, this.settings.allowPrivate);
    if (refused) {
      const msg = `The webhook URL is not allowed: ${refused}`;
      const issue: ValidationIssue = { type: 'value_error', loc: ['body', 'url'], msg };
      throw new AppError('BAD_USER_INPUT', msg, [issue]);
    }
    const secret = newWebhookSecret();
    const row = await this.db.$transaction(async (tx) => {
      // The chat's row is locked first, so two creations at once cannot both pass the cap.
      await tx.$executeRaw`UPDATE chats SET owner_id = owner_id WHERE id = ${id}`;
      if ((await tx.webhook.count({ where: { chatId: id } })) >= MAX_WEBHOOKS_PER_CHAT) {
        throw new AppError('CONFLICT', `This chat has ${MAX_WEBHOOKS_PER_CHAT} webhooks already: delete one before adding another`);
      }
      return tx.webhook.create({ data: { chatId: id, url, events: `,${events.join(',')},`, secret }, select: webhookSelect });
    });
    this.outbox.forgetChat(id);
    return { ...toView(row), secret };
  }

  /** The chat's webhooks, oldest first, without their secrets. */
  async list(owner: PublicUser, chatId: unknown): Promise<WebhookView[]> {
    const id = parseChatId(chatId);
    await this.requireOwner(owner, id);
    const rows = await this.db.webhook.findMany({ where: { chatId: id }, orderBy: { id: 'asc' }, select: webhookSelect });
    return rows.map(toView);
  }

  /** Deletes the webhook with its deliveries: nothing more is sent to it. */
  async delete(owner: PublicUser, chatId: unknown, webhookId: unknown): Promise<void> {
    const id = parseChatId(chatId);
    const hookId = parseWebhookId(webhookId);
    await this.requireOwner(owner, id);
    const { count } = await this.db.webhook.deleteMany({ where: { id: hookId, chatId: id } });
    if (count === 0) throw webhookNotFound();
  }

  /** The webhook itself (whether it is disabled, and why) and its latest deliveries, newest first (`limit`, default 50; `before` a delivery id). */
  async deliveries(
    owner: PublicUser,
    chatId: unknown,
    webhookId: unknown,
    query: unknown = {},
  ): Promise<{ webhook: WebhookView; deliveries: WebhookDeliveryView[] }> {
    const id = parseChatId(chatId);
    const hookId = parseWebhookId(webhookId);
    const { limit, before } = parseInput(historyQuery, query, 'query');
    await this.requireOwner(owner, id);
    const webhook = await this.db.webhook.findFirst({ where: { id: hookId, chatId: id }, select: webhookSelect });
    if (!webhook) throw webhookNotFound();
    const rows = await this.db.webhookDelivery.findMany({
      where: { webhookId: hookId, ...(before ? { id: { lt: before } } : {}) },
      orderBy: { id: 'desc' },
      take: limit,
      select: {
        id: true,
        event: true,
        status: true,
        attempts: true,
        responseStatus: true,
        lastError: true,
        createdAt: true,
        nextAttemptAt: true,
        deliveredAt: true,
      },
    });
    return {
      webhook: toView(webhook),
      deliveries: rows.map((row) => ({ ...row, nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt : null })),
    };
  }

  /** 404 when the chat does not exist, 403 for anyone but its owner. */
  private async requireOwner(user: PublicUser, chatId: number): Promise<void> {
    const chat = await this.db.chat.findUnique({ where: { id: chatId }, select: { ownerId: true } });
    if (!chat) throw new ChatNotFoundError();
    if (chat.ownerId !== user.id) throw new AppError('FORBIDDEN', "Only the chat's owner can manage its webhooks");
  }
}
