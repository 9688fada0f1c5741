import { builder } from '../schema/builder';
import { MessageSearchConnectionRef } from '../schema/search';

builder.queryField('searchMessages', (t) =>
  t.field({
    type: MessageSearchConnectionRef,
    description:
      'Searches the messages of your chats (or of `chatId`): every word must match, in any script, ignoring case and Latin accents; ' +
      '`"quoted words"` must follow each other; `word*` matches words that start so. Best matches first, then newest. ' +
      'AND, OR, NOT and NEAR in capitals, `-word`, an unclosed quote, a prefix under 2 characters or more than 16 words are BAD_USER_INPUT. ' +
      'Pages: `first` (1–100, default 20), then `after` = the last edge’s cursor.',
    args: { query: t.arg.string({ required: true }), chatId: t.arg.id(), first: t.arg.int(), after: t.arg.string() },
    resolve: async (_root, args, context) => {
      const page = await context.services.search.search(await context.viewer(), {
        q: args.query,
        chat_id: args.chatId ?? undefined,
        limit: args.first ?? undefined,
        before: args.after ?? undefined,
      });
      const edges = page.hits.map((hit) => ({ cursor: String(hit.id), node: hit }));
      return {
        edges,
        pageInfo: { hasNextPage: page.hasMore, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
      };
    },
  }),
);
