import { z } from '@hono/zod-openapi';
import { answerVersionJson, assistantJson, assistantMemoryJson, usageJson } from '../serializers';
import { assistantRefInput, chatIdInput, createAssistantInput, messageRefInput, updateAssistantInput, usageQuery } from '../services/validation';
import { json, readBody } from './http';
import type { RestRoute } from './routes';
import { authenticatedRoute, chatNotFound, jsonBody, notInChat } from './routes';
import {
  answerVersionSchema,
  assistantMemorySchema,
  assistantSchema,
  detailResponse,
  jsonResponse,
  messageResultSchema,
  retryLaterResponse,
  tooLargeResponse,
  usageSchema,
  validationErrorResponse,
} from './schemas';

const ownerOnly = detailResponse('"Only the chat\'s owner can change its assistants", or "Not authorized" (not in the chat)');
const assistantNotFound = detailResponse('"Chat not found" or "Assistant not found"');

/** A room's assistants, their memory, its usage, and regenerating answers. */
export const assistantRoutes: RestRoute[] = [
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/assistants',
      tags: ['assistants'],
      summary: "The chat's assistants",
      description: 'Oldest first. Without any, `/bot` is answered by the built-in bot (BOT_NAME, GEMINI_MODEL).',
      request: { params: chatIdInput },
      responses: { 200: jsonResponse(z.array(assistantSchema), 'The assistants'), 403: notInChat, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json((await services.assistants.list(user, params.chat_id)).map(assistantJson)),
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/assistants',
      tags: ['assistants'],
      summary: 'Add an assistant to a chat you own',
      description:
        '`/bot …` asks the default assistant, `/bot @name …` the one named, and `@name …` one with `answers_mentions`. Every participant is pushed `assistant_updated`.',
      request: { params: chatIdInput, body: jsonBody(createAssistantInput) },
      responses: {
        200: jsonResponse(assistantSchema, 'The new assistant'),
        400: detailResponse('"A chat has at most 10 assistants"'),
        403: ownerOnly,
        404: chatNotFound,
        413: tooLargeResponse,
        422: validationErrorResponse,
      },
    },
    async ({ request, params, services }, user) => json(assistantJson(await services.assistants.create(user, params.chat_id, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/assistants/{assistant_id}',
      tags: ['assistants'],
      summary: 'One assistant',
      request: { params: assistantRefInput },
      responses: { 200: jsonResponse(assistantSchema, 'The assistant'), 403: notInChat, 404: assistantNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json(assistantJson(await services.assistants.get(user, params.chat_id, params.assistant_id))),
  ),
  authenticatedRoute(
    {
      method: 'put',
      path: '/api/chats/{chat_id}/assistants/{assistant_id}',
      tags: ['assistants'],
      summary: "Change an assistant's settings",
      description: 'The fields given change, the others stay. Every participant is pushed `assistant_updated`; the next answer uses the new settings.',
      request: { params: assistantRefInput, body: jsonBody(updateAssistantInput) },
      responses: {
        200: jsonResponse(assistantSchema, 'The assistant as it is now'),
        403: ownerOnly,
        404: assistantNotFound,
        413: tooLargeResponse,
        422: validationErrorResponse,
      },
    },
    async ({ request, params, services }, user) =>
      json(assistantJson(await services.assistants.update(user, params.chat_id, params.assistant_id, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/assistants/{assistant_id}',
      tags: ['assistants'],
      summary: 'Delete an assistant',
      description: 'Its answers stay, shown as BOT_NAME. Every participant is pushed `assistant_deleted`.',
      request: { params: assistantRefInput },
      responses: {
        200: jsonResponse(messageResultSchema('Assistant deleted'), 'Deleted'),
        403: ownerOnly,
        404: assistantNotFound,
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.assistants.remove(user, params.chat_id, params.assistant_id);
      return json({ message: 'Assistant deleted' });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/assistants/{assistant_id}/memory',
      tags: ['assistants'],
      summary: "An assistant's long memory",
      description:
        "Once the chat holds more than BOT_CONTEXT_MESSAGES messages, the older ones are summarised by the assistant's model after its answers; the summary leads its later contexts.",
      request: { params: assistantRefInput },
      responses: { 200: jsonResponse(assistantMemorySchema, 'The summary'), 403: notInChat, 404: assistantNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json(assistantMemoryJson(await services.assistants.memory(user, params.chat_id, params.assistant_id))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/assistants/{assistant_id}/memory',
      tags: ['assistants'],
      summary: "Clear an assistant's memory (the chat's owner)",
      request: { params: assistantRefInput },
      responses: { 200: jsonResponse(messageResultSchema('Memory cleared'), 'Cleared'), 403: ownerOnly, 404: assistantNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => {
      await services.assistants.clearMemory(user, params.chat_id, params.assistant_id);
      return json({ message: 'Memory cleared' });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/usage',
      tags: ['assistants'],
      summary: "What the chat's bot answers cost",
      description: 'Token counts as the model reported them, and durations, from `from` (inclusive) to `to` (exclusive); this month (UTC) by default.',
      request: { params: chatIdInput, query: usageQuery },
      responses: { 200: jsonResponse(usageSchema, 'Totals, by assistant and by asking user'), 403: notInChat, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ url, params, services }, user) => json(usageJson(await services.usage.report(user, params.chat_id, Object.fromEntries(url.searchParams)))),
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/messages/{message_id}/regenerate',
      tags: ['assistants'],
      summary: 'Ask for an answer again',
      description:
        'Any participant. The answer is written again under the same message id (streamed as `bot_stream` with `regenerating`), replacing the old text in the history and in later contexts; the old text is kept as a version. Stop works as for any answer.',
      request: { params: messageRefInput },
      responses: {
        200: jsonResponse(messageResultSchema('Regenerating'), 'The answer is queued'),
        400: detailResponse('"Only an answer to an ask that is still in the chat can be asked again" or "This answer is already being written again"'),
        403: notInChat,
        404: detailResponse('"Chat not found" or "Message not found" (no answer of that id in the chat\'s history)'),
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many /bot requests: …" (BOT_RATE_LIMIT) or the chat\'s BOT_ROOM_MONTHLY_TOKENS are used up'),
      },
    },
    async ({ params, services }, user) => {
      await services.bot.regenerate(user, params.chat_id, params.message_id);
      return json({ message: 'Regenerating' });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/messages/{message_id}/versions',
      tags: ['assistants'],
      summary: "An answer's versions",
      description: 'Oldest first; the last is the one the history shows.',
      request: { params: messageRefInput },
      responses: {
        200: jsonResponse(z.array(answerVersionSchema), 'The versions'),
        403: notInChat,
        404: detailResponse('"Chat not found" or "Message not found"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => json((await services.bot.versions(user, params.chat_id, params.message_id)).map(answerVersionJson)),
  ),
];
