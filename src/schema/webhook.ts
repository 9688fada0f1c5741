import type { CreatedIncomingHook, IncomingHookView } from '../services/webhooks/incoming-hook.service';
import type { CreatedWebhook, WebhookDeliveryView, WebhookView } from '../services/webhooks/webhook.service';
import { builder } from './builder';

export const WebhookEventRef = builder.enumType('WebhookEvent', {
  description: 'What an outgoing webhook can be told of; deliveries name it as the value in lower case with a dot (`message.created`).',
  values: {
    MESSAGE_CREATED: { value: 'message.created' },
    MESSAGE_UPDATED: { value: 'message.updated' },
    MESSAGE_DELETED: { value: 'message.deleted' },
    BOT_ANSWER_COMPLETED: { value: 'bot.answer.completed' },
    MEMBER_JOINED: { value: 'member.joined' },
    MEMBER_LEFT: { value: 'member.left' },
  } as const,
});

const WebhookDeliveryStatusRef = builder.enumType('WebhookDeliveryStatus', {
  values: { PENDING: { value: 'pending' }, DELIVERED: { value: 'delivered' }, FAILED: { value: 'failed' } } as const,
});

export const WebhookDeliveryRef = builder.objectRef<WebhookDeliveryView>('WebhookDelivery').implement({
  description: 'One event sent (or being sent) to a webhook.',
  fields: (t) => ({
    id: t.exposeID('id', { description: "The delivery id: the body's `id` and the `X-Webhook-Id` header." }),
    event: t.field({ type: WebhookEventRef, resolve: (delivery) => delivery.event as (typeof WebhookEventRef)['$inferType'] }),
    status: t.field({ type: WebhookDeliveryStatusRef, resolve: (delivery) => delivery.status as 'pending' | 'delivered' | 'failed' }),
    attempts: t.exposeInt('attempts'),
    responseStatus: t.exposeInt('responseStatus', { nullable: true, description: "The last attempt's HTTP status; null when it got no answer." }),
    lastError: t.exposeString('lastError', { nullable: true, description: 'What went wrong with the last attempt.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    nextAttemptAt: t.expose('nextAttemptAt', { type: 'DateTime', nullable: true, description: 'When it will be tried again; null unless pending.' }),
    deliveredAt: t.expose('deliveredAt', { type: 'DateTime', nullable: true }),
  }),
});

export const WebhookRef = builder.objectRef<WebhookView>('Webhook').implement({
  description: "An outgoing webhook of a chat (its owner's only). Its secret is shown once, by createWebhook.",
  fields: (t) => ({
    id: t.exposeID('id'),
    chatId: t.exposeID('chatId'),
    url: t.exposeString('url'),
    events: t.field({ type: [WebhookEventRef], resolve: (webhook) => webhook.events }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    enabled: t.boolean({ description: 'False once it was disabled for failing: it receives nothing more.', resolve: (webhook) => webhook.disabledAt === null }),
    disabledAt: t.expose('disabledAt', { type: 'DateTime', nullable: true }),
    disabledReason: t.exposeString('disabledReason', { nullable: true, description: 'Why it was disabled; null while enabled.' }),
    deliveries: t.field({
      type: [WebhookDeliveryRef],
      description: 'Its latest deliveries, newest first: `limit` (1–200, default 50), `before` a delivery id.',
      args: { limit: t.arg.int(), before: t.arg.id() },
      resolve: async (webhook, args, context) =>
        (
          await context.services.webhooks.deliveries(await context.viewer(), webhook.chatId, webhook.id, {
            ...(args.limit != null ? { limit: args.limit } : {}),
            ...(args.before != null ? { before: args.before } : {}),
          })
        ).deliveries,
    }),
  }),
});

export const CreatedWebhookRef = builder.objectRef<CreatedWebhook>('CreatedWebhook').implement({
  description: 'A new webhook and its secret, which is shown this once.',
  fields: (t) => ({
    webhook: t.field({ type: WebhookRef, resolve: (created) => created }),
    secret: t.exposeString('secret', { description: 'The key deliveries are signed with (HMAC-SHA256): keep it.' }),
  }),
});

export const IncomingHookRef = builder.objectRef<IncomingHookView>('IncomingHook').implement({
  description: 'A token that posts into a chat under `name` (`POST /api/hooks/{token}`), until revoked.',
  fields: (t) => ({
    id: t.exposeID('id'),
    chatId: t.exposeID('chatId'),
    name: t.exposeString('name'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

export const CreatedIncomingHookRef = builder.objectRef<CreatedIncomingHook>('CreatedIncomingHook').implement({
  description: 'A new incoming hook and its token, which is shown this once.',
  fields: (t) => ({
    hook: t.field({ type: IncomingHookRef, resolve: (created) => created }),
    token: t.exposeString('token', { description: 'Keep it secret: whoever holds it posts into the chat.' }),
    path: t.string({ description: 'Where to POST `{"content": …}`.', resolve: (created) => `/api/hooks/${created.token}` }),
  }),
});
