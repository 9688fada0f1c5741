import type { BotStreamEvent, TypingEvent } from '../services/pubsub';
import { builder } from './builder';

export const TypingEventRef = builder.objectRef<TypingEvent>('TypingEvent').implement({
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    username: t.exposeString('username'),
  }),
});

export const BotStreamEventRef = builder.objectRef<BotStreamEvent>('BotStreamEvent').implement({
  description: 'One step of a bot answer: deltas while isComplete is false, then one completion.',
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    messageId: t.exposeID('messageId'),
    chunk: t.exposeString('chunk'),
    isComplete: t.exposeBoolean('isComplete'),
    fullResponse: t.exposeString('fullResponse', { nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    stopped: t.boolean({ resolve: (event) => event.stopped ?? false }),
  }),
});
