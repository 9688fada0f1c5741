import type { MessageSearchHit } from '../services/search/message-search.service';
import { builder } from './builder';

export const MessageSearchHitRef = builder.objectRef<MessageSearchHit>('MessageSearchHit').implement({
  description: 'A message that matched a search.',
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    messageId: t.exposeID('id'),
    username: t.exposeString('username', { nullable: true, description: "The author's username; for bot messages, the bot's name (BOT_NAME)." }),
    content: t.exposeString('content', { description: 'The whole message, as sent.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    snippet: t.exposeString('snippet', {
      description: 'The text around the first match, HTML-escaped, each match between `<mark>` and `</mark>`, `…` where text was cut.',
    }),
  }),
});

/** A page of hits; an edge's cursor is its message id, which `after` takes to fetch the next page. */
export const MessageSearchConnectionRef = builder.connectionObject({ type: MessageSearchHitRef, name: 'MessageSearchConnection' });
