import { beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import { Prisma } from '../src/generated/sqlite/client';
import { messageSelect } from '../src/services/room-feed';
import { eventRowHolds } from '../src/schema/event-rows';
import type { TestUser } from './support/app';
import { signUp } from './support/app';
import type { GraphqlSubscription } from './support/sockets';
import { servedTestApp } from './support/sockets';

/**
 * graphql-ws subscribers of one room with the same selection share one execution and one
 * serialized payload per event, and fields the event carries cost no query: counted, not timed.
 */

let executions = 0;
let queries: string[] = [];
const served = servedTestApp({}, { onSharedExecution: () => executions++, logQuery: (query) => queries.push(query) });

const SUBSCRIBERS = 5;
const MESSAGES = 3;
const CARRIED = 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id chatId content username createdAt isBot user { id username } } }';
const WITH_RECEIPTS = 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id content readBy { username } } }';

let owner: TestUser;
let members: TestUser[];
let chatId: number;

beforeAll(async () => {
  const users = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => signUp(served.t)));
  owner = users[0]!;
  members = users.slice(1);
  const chat = await (await served.t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'shared', is_group: true } })).json();
  chatId = chat.id;
  for (const member of members) {
    await served.t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: owner.token, json: { username: member.username } });
  }
});

beforeEach(() => {
  executions = 0;
  queries = [];
});

async function send(content: string, author = owner): Promise<number> {
  const response = await served.t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: author.token, json: { content } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { id: number }).id;
}

/** The SQL statements that sending `count` messages costs by itself, with nobody subscribed. */
async function queriesToSend(count: number): Promise<number> {
  await send('warm-up: membership cached');
  queries = [];
  for (let n = 0; n < count; n++) await send(`unheard ${n}`);
  return queries.length;
}

async function subscribe(user: TestUser, query: string, variables: Record<string, unknown> = { chatId }): Promise<GraphqlSubscription> {
  const subscription = served.kit.graphql(user.token).subscribe(query, variables, { field: 'messageAdded', ready: ['chat:message', chatId] });
  await subscription.ready;
  // The socket's presence is announced after it opens, with a query of its own: done before anything is counted.
  await served.t.app.services.presence.idle();
  return subscription;
}

/** Everyone subscribes, then a first message reaches them all: what setting up costs is behind us. */
async function subscribeAll(users: TestUser[], query: string): Promise<GraphqlSubscription[]> {
  const subscriptions = await Promise.all(users.map((user) => subscribe(user, query)));
  await everyoneGets(subscriptions, [await send('settled')]);
  return subscriptions;
}

async function everyoneGets(subscriptions: GraphqlSubscription[], ids: number[]): Promise<void> {
  await Promise.all(subscriptions.map((subscription) => subscription.next((event) => event.id === String(ids.at(-1)), `message ${ids.at(-1)}`)));
}

describe('graphql-ws messageAdded with N subscribers', () => {
  test('one execution per event, and no query for what the event carries (author, username, timestamps)', async () => {
    const sendCost = await queriesToSend(MESSAGES);
    const subscriptions = await subscribeAll([owner, ...members], CARRIED);
    executions = 0;
    queries = [];
    const ids: number[] = [];
    for (let n = 0; n < MESSAGES; n++) ids.push(await send(`hello ${n}`));
    await everyoneGets(subscriptions, ids);

    expect(executions).toBe(MESSAGES);
    expect(queries.length).toBe(sendCost);
    for (const subscription of subscriptions) {
      expect(subscription.errors).toEqual([]);
      expect(subscription.events.slice(1).map((event) => event.id)).toEqual(ids.map(String));
      expect(subscription.events[1]).toEqual({
        id: String(ids[0]),
        chatId: String(chatId),
        content: 'hello 0',
        username: owner.username,
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        isBot: false,
        user: { id: String(owner.id), username: owner.username },
      });
    }
  });

  test('what the event does not carry (read receipts) is loaded once per event, not once per subscriber', async () => {
    /** The statements that MESSAGES messages cost with `subscribers` subscribed to read receipts. */
    const costWith = async (subscribers: TestUser[]) => {
      const subscriptions = await subscribeAll(subscribers, WITH_RECEIPTS);
      executions = 0;
      queries = [];
      const ids: number[] = [];
      for (let n = 0; n < MESSAGES; n++) ids.push(await send(`receipts ${n}`));
      await everyoneGets(subscriptions, ids);
      for (const subscription of subscriptions) {
        expect(subscription.errors).toEqual([]);
        expect(subscription.events.slice(-MESSAGES).map((event) => [event.id, event.readBy])).toEqual(ids.map((id) => [String(id), []]));
        subscription.unsubscribe();
      }
      expect(executions).toBe(MESSAGES);
      return queries.length;
    };
    const sendCost = await queriesToSend(MESSAGES);
    const oneSubscriber = await costWith([owner]);
    expect(oneSubscriber).toBeGreaterThan(sendCost);
    expect(await costWith([owner, ...members])).toBe(oneSubscriber);
  });

  test('another selection executes on its own; the root field’s own variables (after) do not split a group', async () => {
    const last = await send('before the subscriptions');
    const AFTER = 'subscription ($chatId: ID!, $after: ID) { messageAdded(chatId: $chatId, after: $after) { id content } }';
    const plain = await subscribe(owner, AFTER, { chatId });
    const resumed = await subscribe(members[0]!, AFTER, { chatId, after: String(last) });
    const other = await subscribe(members[1]!, 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id isBot } }');
    executions = 0;
    const id = await send('one event');
    await everyoneGets([plain, resumed, other], [id]);

    expect(executions).toBe(2);
    expect(plain.events).toEqual([{ id: String(id), content: 'one event' }]);
    expect(resumed.events).toEqual([{ id: String(id), content: 'one event' }]);
    expect(other.events).toEqual([{ id: String(id), isBot: false }]);
  });

  test('each subscriber is authorized on its own: an outsider is refused, a removed member stops, the rest go on', async () => {
    const outsider = await signUp(served.t);
    const refused = served.kit.graphql(outsider.token).subscribe(CARRIED, { chatId }, { field: 'messageAdded' });
    expect(await refused.done).toEqual({ kind: 'complete' });
    expect(refused.errors.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);

    const removed = await signUp(served.t);
    await served.t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: owner.token, json: { username: removed.username } });
    const [staying, leaving] = await Promise.all([subscribe(owner, CARRIED), subscribe(removed, CARRIED)]);
    await served.t.request(`/api/chats/${chatId}/participants/${removed.id}`, { method: 'DELETE', token: owner.token });
    expect(await leaving.done).toEqual({ kind: 'complete' });
    const id = await send('after the removal');
    await everyoneGets([staying], [id]);
    expect(leaving.events.map((event) => event.id)).not.toContain(String(id));
  });

  test('a removed member’s subscription ends as soon as the removal is stored, before the rest of the removal runs', async () => {
    const removed = await signUp(served.t);
    await served.t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: owner.token, json: { username: removed.username } });
    const leaving = await subscribe(removed, CARRIED);
    // The removal's next step (looking up the removed user's name) waits until the test lets it go on.
    const { db } = served.t.app.services;
    const lookUp = db.user.findUniqueOrThrow;
    const held = Promise.withResolvers<void>();
    const reached = Promise.withResolvers<void>();
    db.user.findUniqueOrThrow = ((args: Parameters<typeof lookUp>[0]) => {
      reached.resolve();
      return held.promise.then(() => lookUp.call(db.user, args));
    }) as unknown as typeof lookUp;
    try {
      const removal = served.t.request(`/api/chats/${chatId}/participants/${removed.id}`, { method: 'DELETE', token: owner.token });
      await reached.promise;
      expect(await leaving.done).toEqual({ kind: 'complete' });
      held.resolve();
      expect((await removal).status).toBe(200);
    } finally {
      db.user.findUniqueOrThrow = lookUp;
      held.resolve();
    }
  });

  test('a subscription the client completes gets nothing more; its neighbour on the same socket does', async () => {
    const client = served.kit.graphql(members[2]!.token);
    const options = { field: 'messageAdded', ready: ['chat:message', chatId] as [string, number] };
    const [completed, kept] = [client.subscribe(CARRIED, { chatId }, options), client.subscribe(CARRIED, { chatId }, options)];
    await Promise.all([completed.ready, kept.ready]);
    const first = await send('both hear this');
    await everyoneGets([completed, kept], [first]);
    completed.unsubscribe();
    const second = await send('only the kept one hears this');
    // Frames of one socket arrive in order: had the completed one been sent this, it would be here by now.
    await everyoneGets([kept], [second]);
    expect(completed.events.map((event) => event.id)).toEqual([String(first)]);
  });
});

describe('eventRowHolds', () => {
  test('a message event carries every column of Message, so an `include` of the event itself needs no query', () => {
    expect(Object.keys(Prisma.MessageScalarFieldEnum).filter((column) => !(column in messageSelect))).toEqual([]);
  });

  test('answers from what the row holds, conservatively', () => {
    const event = { id: 1, content: 'hi', createdAt: new Date(), user: { id: 2, username: 'ana' } };
    expect(eventRowHolds(event, {})).toBe(true);
    expect(eventRowHolds(event, { include: { user: { select: { id: true, username: true } } } })).toBe(true);
    expect(eventRowHolds(event, { include: { user: { select: { email: true } } } })).toBe(false);
    expect(eventRowHolds(event, { include: { user: true } })).toBe(false);
    expect(eventRowHolds(event, { select: { chat: { select: { participants: { where: {}, select: { userId: true } } } } } })).toBe(false);
    expect(eventRowHolds({ ...event, user: null }, { include: { user: { select: { email: true } } } })).toBe(true);
  });
});
