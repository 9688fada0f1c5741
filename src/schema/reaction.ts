import type { ReactionEvent, ReactionSummary } from '../services/pubsub';
import { builder } from './builder';

export const ReactionSummaryRef = builder.objectRef<ReactionSummary>('ReactionSummary').implement({
  description: "One emoji's reactions to a message.",
  fields: (t) => ({
    emoji: t.exposeString('emoji'),
    count: t.exposeInt('count'),
    userIds: t.exposeIDList('userIds', { description: 'Who reacted with it, in the order they did.' }),
  }),
});

const ReactionActionRef = builder.enumType('ReactionAction', {
  values: { ADDED: { value: 'added' }, REMOVED: { value: 'removed' } } as const,
});

export const ReactionEventRef = builder.objectRef<ReactionEvent>('ReactionEvent').implement({
  description: 'Someone added or removed a reaction: what changed, and the reactions of the message after it.',
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    messageId: t.exposeID('messageId'),
    emoji: t.exposeString('emoji'),
    userId: t.exposeID('userId'),
    username: t.exposeString('username'),
    action: t.expose('action', { type: ReactionActionRef }),
    reactions: t.field({ type: [ReactionSummaryRef], resolve: (event) => event.reactions }),
  }),
});
