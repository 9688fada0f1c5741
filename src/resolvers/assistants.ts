import { AnswerVersionRef, AssistantEventRef, AssistantInputRef, AssistantMemoryRef, AssistantRef, UsageReportRef } from '../schema/assistant';
import { builder } from '../schema/builder';
import { SHARED_RESULTS } from '../schema/shared-results';

type AssistantInput = typeof AssistantInputRef.$inferInput;

/** GraphQL's camelCase settings as the service's (REST's) input: only the fields given. */
const settings = (input: AssistantInput) => {
  const fields = {
    name: input.name,
    instructions: input.instructions,
    model: input.model,
    temperature: input.temperature,
    answers_mentions: input.answersMentions,
    grounding: input.grounding,
    is_default: input.isDefault,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
};

const assistantRef = { chatId: { required: true }, assistantId: { required: true } } as const;

builder.queryFields((t) => ({
  assistants: t.field({
    type: [AssistantRef],
    description: "The chat's assistants, oldest first. Without any, /bot is answered by the built-in bot.",
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => context.services.assistants.list(await context.viewer(), args.chatId),
  }),
  assistantMemory: t.field({
    type: AssistantMemoryRef,
    args: { chatId: t.arg.id(assistantRef.chatId), assistantId: t.arg.id(assistantRef.assistantId) },
    resolve: async (_root, args, context) => context.services.assistants.memory(await context.viewer(), args.chatId, args.assistantId),
  }),
  chatUsage: t.field({
    type: UsageReportRef,
    description: "What the chat's bot calls cost from `from` (inclusive) to `to` (exclusive); this month (UTC) by default.",
    args: { chatId: t.arg.id({ required: true }), from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: async (_root, args, context) =>
      context.services.usage.report(await context.viewer(), args.chatId, {
        ...(args.from ? { from: args.from.toISOString() } : {}),
        ...(args.to ? { to: args.to.toISOString() } : {}),
      }),
  }),
  answerVersions: t.field({
    type: [AnswerVersionRef],
    description: "An answer's versions, oldest first; the last is the one the history shows.",
    args: { chatId: t.arg.id({ required: true }), messageId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => context.services.bot.versions(await context.viewer(), args.chatId, args.messageId),
  }),
}));

builder.mutationFields((t) => ({
  createAssistant: t.field({
    type: AssistantRef,
    description: 'Adds an assistant to a chat you own; everyone in it hears of it on assistantChanged.',
    args: { chatId: t.arg.id({ required: true }), input: t.arg({ type: AssistantInputRef, required: true }) },
    resolve: async (_root, args, context) => context.services.assistants.create(await context.viewer(), args.chatId, settings(args.input)),
  }),
  updateAssistant: t.field({
    type: AssistantRef,
    description: 'Changes the given settings of an assistant of a chat you own; the next answer uses them.',
    args: {
      ...{ chatId: t.arg.id(assistantRef.chatId), assistantId: t.arg.id(assistantRef.assistantId) },
      input: t.arg({ type: AssistantInputRef, required: true }),
    },
    resolve: async (_root, args, context) => context.services.assistants.update(await context.viewer(), args.chatId, args.assistantId, settings(args.input)),
  }),
  deleteAssistant: t.boolean({
    description: 'Deletes an assistant of a chat you own; its answers stay, shown as BOT_NAME.',
    args: { chatId: t.arg.id(assistantRef.chatId), assistantId: t.arg.id(assistantRef.assistantId) },
    resolve: async (_root, args, context) => {
      await context.services.assistants.remove(await context.viewer(), args.chatId, args.assistantId);
      return true;
    },
  }),
  clearAssistantMemory: t.boolean({
    description: "Forgets an assistant's summary (the chat's owner only).",
    args: { chatId: t.arg.id(assistantRef.chatId), assistantId: t.arg.id(assistantRef.assistantId) },
    resolve: async (_root, args, context) => {
      await context.services.assistants.clearMemory(await context.viewer(), args.chatId, args.assistantId);
      return true;
    },
  }),
  regenerateAnswer: t.boolean({
    description:
      'Asks for an answer again (any member): it is written anew under the same message id, streamed on botStream with `regenerating`, its earlier text kept as a version.',
    args: { chatId: t.arg.id({ required: true }), messageId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.bot.regenerate(await context.viewer(), args.chatId, args.messageId);
      return true;
    },
  }),
}));

builder.subscriptionField('assistantChanged', (t) =>
  t.field({
    type: AssistantEventRef,
    description: "Changes to a chat's assistants, until you are no longer in it.",
    args: { chatId: t.arg.id({ required: true }) },
    extensions: SHARED_RESULTS,
    subscribe: async (_root, args, context) => context.services.assistants.subscribe(await context.viewer(), args.chatId),
    resolve: (event) => event,
  }),
);
