import { builder } from '../schema/builder';
import { CreatedIncomingHookRef, CreatedWebhookRef, IncomingHookRef, WebhookEventRef, WebhookRef } from '../schema/webhook';

builder.queryFields((t) => ({
  webhooks: t.field({
    type: [WebhookRef],
    description: "A chat's outgoing webhooks, oldest first (its owner only: FORBIDDEN for anyone else).",
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => context.services.webhooks.list(await context.viewer(), args.chatId),
  }),
  incomingHooks: t.field({
    type: [IncomingHookRef],
    description: "A chat's incoming hooks, oldest first, without their tokens (its owner only).",
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => context.services.incomingHooks.list(await context.viewer(), args.chatId),
  }),
}));

builder.mutationFields((t) => ({
  createWebhook: t.field({
    type: CreatedWebhookRef,
    description:
      'Adds an outgoing webhook to a chat you own: each of `events` is POSTed to `url`, signed with the secret answered here once. Only https, ' +
      'never to loopback, private, link-local or metadata addresses (BAD_USER_INPUT), unless the server runs with WEBHOOK_ALLOW_PRIVATE=1.',
    args: { chatId: t.arg.id({ required: true }), url: t.arg.string({ required: true }), events: t.arg({ type: [WebhookEventRef], required: true }) },
    resolve: async (_root, args, context) => context.services.webhooks.create(await context.viewer(), args.chatId, { url: args.url, events: args.events }),
  }),
  deleteWebhook: t.boolean({
    description: 'Deletes a webhook of a chat you own: nothing more is sent to it.',
    args: { chatId: t.arg.id({ required: true }), webhookId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.webhooks.delete(await context.viewer(), args.chatId, args.webhookId);
      return true;
    },
  }),
  createIncomingHook: t.field({
    type: CreatedIncomingHookRef,
    description: 'Creates an incoming hook for a chat you own; its token (answered here once) posts into the chat under `name`.',
    args: { chatId: t.arg.id({ required: true }), name: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) => context.services.incomingHooks.create(await context.viewer(), args.chatId, { name: args.name }),
  }),
  revokeIncomingHook: t.boolean({
    description: 'Revokes an incoming hook of a chat you own: its token posts nothing more.',
    args: { chatId: t.arg.id({ required: true }), hookId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.incomingHooks.revoke(await context.viewer(), args.chatId, args.hookId);
      return true;
    },
  }),
}));
