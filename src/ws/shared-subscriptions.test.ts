import { expect, spyOn, test } from 'bun:test';
import * as pothosPrisma from '@pothos/plugin-prisma';
import { Metrics } from '../metrics';
import { captureLogs } from '../../test/support/logs';
import { createEventBus, SlowSubscriberError, SUBSCRIBER_QUEUE_LIMIT } from '../services/pubsub';
import type { TypingEvent } from '../services/pubsub';
import { parse } from 'graphql';
import { schema } from '../schema';
import type { Services } from '../services';
import { messageEvent } from '../../test/support/message-event';
import type { FrameSink, SharedOperation } from './shared-subscriptions';
import { deliverShared, SharedResults, sharedOperation } from './shared-subscriptions';

/** One subscriber's delivery, whose payloads `payloadOf` decides: a string, or a promise as when a query is awaited. */
function delivery(source: AsyncIterator<unknown>, payloadOf: (event: TypingEvent) => string | Promise<string>) {
  const frames: string[] = [];
  const sink: FrameSink = { send: (frame) => frames.push(frame), flush: () => {} };
  const results = { payload: (event: object) => payloadOf(event as TypingEvent) } as unknown as SharedResults;
  const iterator = deliverShared(source, {} as SharedOperation, results, 's1', () => sink);
  const payloads = () => frames.map((frame) => (JSON.parse(frame) as { payload: unknown }).payload);
  return { iterator, payloads };
}

async function typingStream() {
  const { pubsub } = await createEventBus(null, '', captureLogs('error').log, new Metrics());
  const typing = (n: number) => pubsub.publish('chat:typing', 1, { chatId: 1, userId: n, username: `u${n}`, socketId: null });
  return { pubsub, typing, source: pubsub.subscribe('chat:typing', 1) };
}

test('a live stream is forwarded: payloads go out in event order, an awaited one holding back those after it', async () => {
  const { typing, source, pubsub } = await typingStream();
  const slow = Promise.withResolvers<string>();
  const { iterator, payloads } = delivery(source, (event) => (event.userId === 2 ? slow.promise : `${event.userId}`));
  const ended = iterator.next();
  typing(1);
  typing(2);
  typing(3);
  expect(payloads()).toEqual([1]);
  slow.resolve('2');
  await slow.promise;
  await Bun.sleep(0);
  expect(payloads()).toEqual([1, 2, 3]);
  await iterator.return!();
  typing(4);
  expect((await ended).done).toBe(true);
  expect(payloads()).toEqual([1, 2, 3]);
  expect(pubsub.listenerCount()).toBe(0);
});

test('more than SUBSCRIBER_QUEUE_LIMIT awaited payloads end the subscriber as too slow, and release its stream; what it awaited is never sent', async () => {
  const { typing, source, pubsub } = await typingStream();
  const slow = Promise.withResolvers<string>();
  const { iterator, payloads } = delivery(source, () => slow.promise);
  const ended = iterator.next();
  for (let n = 0; n <= SUBSCRIBER_QUEUE_LIMIT; n++) typing(n);
  expect(
    await ended.then(
      () => null,
      (error: unknown) => error,
    ),
  ).toBeInstanceOf(SlowSubscriberError);
  expect(pubsub.listenerCount()).toBe(0);
  // Its error result and complete are on their way: a frame now would come after them.
  slow.resolve('late');
  await slow.promise;
  await Bun.sleep(0);
  expect(payloads()).toEqual([]);
});

test('a payload that fails ends the subscriber with its error, after what came before it', async () => {
  const { typing, source, pubsub } = await typingStream();
  const { iterator, payloads } = delivery(source, (event) => (event.userId === 2 ? Promise.reject(new Error('query failed')) : `${event.userId}`));
  const ended = iterator.next();
  typing(1);
  typing(2);
  expect(
    await ended.then(
      () => null,
      (error: unknown) => (error as Error).message,
    ),
  ).toBe('query failed');
  expect(payloads()).toEqual([1]);
  expect(pubsub.listenerCount()).toBe(0);
});

test('a stream that cannot forward (a replay) is pulled, in the same order', async () => {
  const events = [1, 2, 3].map((userId) => ({ chatId: 1, userId, username: `u${userId}`, socketId: null }));
  const replay: AsyncIterator<unknown> = {
    next: () => Promise.resolve(events.length > 0 ? { done: false, value: events.shift() } : { done: true, value: undefined }),
  };
  const slow = Promise.withResolvers<string>();
  const { iterator, payloads } = delivery(replay, (event) => (event.userId === 1 ? slow.promise : `${event.userId}`));
  const ended = iterator.next();
  slow.resolve('1');
  expect((await ended).done).toBe(true);
  expect(payloads()).toEqual([1, 2, 3]);
});

test("a chat client's selection of a new message executes synchronously: what the event carries needs no promise, for a person's message or the bot's", () => {
  const query = `subscription($c: ID!) { messageAdded(chatId: $c) {
    id chatId content username createdAt isBot user { id username } reactions { emoji count } attachments { id } } }`;
  const operation = sharedOperation(schema, parse(query), null, query, { c: '1' })!;
  const results = new SharedResults({ messages: { botName: 'helper-bot' } } as unknown as Services, (error) => error as Error, undefined);
  const message = messageEvent(1, { reactions: [{ emoji: '👍', count: 1, userIds: [1] }] });
  const answer = messageEvent(2, { userId: null, username: null, user: null, isBot: true, replyToId: 1 });
  for (const event of [message, answer]) {
    const payload = results.payload(event, operation);
    expect(typeof payload).toBe('string');
    expect(JSON.parse(payload as string)).not.toHaveProperty('errors');
  }
  const answerResult = JSON.parse(results.payload(answer, operation) as string) as { data: { messageAdded: { username: string } } };
  expect(answerResult.data.messageAdded.username).toBe('helper-bot');
});

test("a shared operation's Prisma query is planned on its first event only: later events reuse the plan, each with its own rows", async () => {
  const plans = spyOn(pothosPrisma, 'queryFromInfo');
  const reloads: number[] = [];
  // Read receipts are not carried by the event: the message is reloaded, once per event, with the planned query.
  const reload = (id: number, query: { include?: object; select?: object }) => {
    reloads.push(id);
    expect(JSON.stringify(query)).toContain('participants');
    return Promise.resolve({ ...messageEvent(id), content: `reloaded ${id}`, chat: { participants: [] } });
  };
  const services = { messages: { botName: 'helper-bot', reload } } as unknown as Services;
  const results = new SharedResults(services, (error) => error as Error, undefined);
  const shared = (query: string) => sharedOperation(schema, parse(query), null, query, { c: '1' })!;
  const carried = shared('subscription($c: ID!) { messageAdded(chatId: $c) { id content username user { username } } }');
  const receipts = shared('subscription($c: ID!) { messageAdded(chatId: $c) { id content readBy { username } } }');
  const edits = shared('subscription($c: ID!) { messageChanged(chatId: $c) { ... on MessageUpdatedEvent { message { id content username } } } }');
  try {
    const payloads = [1, 2, 3].map((id) => ({
      carried: results.payload(messageEvent(id, { username: `u${id}`, user: { ...messageEvent(id).user!, username: `u${id}` } }), carried),
      receipts: results.payload(messageEvent(id), receipts),
      edit: results.payload({ kind: 'updated', message: messageEvent(id, { content: `edited ${id}` }) }, edits),
    }));
    expect(plans).toHaveBeenCalledTimes(3);
    expect(payloads.map((payload) => JSON.parse(payload.carried as string) as unknown)).toEqual(
      [1, 2, 3].map((id) => ({ data: { messageAdded: { id: String(id), content: `message ${id}`, username: `u${id}`, user: { username: `u${id}` } } } })),
    );
    expect(payloads.map((payload) => JSON.parse(payload.edit as string) as unknown)).toEqual(
      [1, 2, 3].map((id) => ({ data: { messageChanged: { message: { id: String(id), content: `edited ${id}`, username: 'ana' } } } })),
    );
    expect(reloads).toEqual([1, 2, 3]);
    expect(await Promise.all(payloads.map(async (payload) => JSON.parse(await payload.receipts) as unknown))).toEqual(
      [1, 2, 3].map((id) => ({ data: { messageAdded: { id: String(id), content: `reloaded ${id}`, readBy: [] } } })),
    );
  } finally {
    plans.mockRestore();
  }
});
