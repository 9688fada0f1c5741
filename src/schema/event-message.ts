import { createContextCache } from '@pothos/core';
import { queryFromInfo } from '@pothos/plugin-prisma';
import type { GraphQLResolveInfo } from 'graphql';
import type { Message } from '../generated/sqlite/client';
import type { MessageEvent } from '../services/pubsub';
import type { MessageQuery } from '../services/message.service';
import type { Context } from './context';
import { eventRowHolds } from './event-rows';

/**
 * The Prisma query each field resolving an event's message plans, by where it is in the document,
 * per Pothos context cache. A context executes one document with one set of variables, so a field
 * at one path plans the same query every time: planning it once records its loader mappings once,
 * and every later event finds them. The contexts of a shared operation's executions share one cache
 * (SharedResults), so a room's events plan once per operation, not once per event.
 */
const plannedQueries = createContextCache(() => new Map<string, MessageQuery>());

/** `info.path` without list indices, as Pothos keys its loader mappings. */
function responseKey(path: GraphQLResolveInfo['path'] | undefined): string {
  let key = '';
  for (let link = path; link; link = link.prev) if (typeof link.key === 'string') key = key ? `${link.key}.${key}` : link.key;
  return key;
}

/**
 * The message an event carries when it holds all the document asks of it, else the message
 * reloaded with what the document asks (read receipts, say): a field resolving to an event's
 * message answers with no query for what the event already carries.
 */
export function eventMessage(message: MessageEvent, context: Context, info: GraphQLResolveInfo): MessageEvent | Promise<Message> {
  const queries = plannedQueries(context);
  const key = `${info.parentType.name}@${responseKey(info.path)}`;
  let query = queries.get(key);
  if (!query) queries.set(key, (query = queryFromInfo({ context, info }) as MessageQuery));
  return eventRowHolds(message, query) ? message : context.services.messages.reload(message.id, query);
}
