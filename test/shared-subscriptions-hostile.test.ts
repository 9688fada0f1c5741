import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { beforeAll, describe, expect, test } from 'bun:test';
import { MAX_CONTENT_LENGTH } from '../src/services/validation';
import type { TestUser } from './support/app';
import { signUp } from './support/app';
import type { ChatClient, Frame } from './support/sockets';
import { captureLogs } from './support/logs';
import { groupRoom, storeMessages } from './support/rooms';
import { servedTestApp, withDeadline } from './support/sockets';

/**
 * Unlucky and hostile graphql-ws clients against subscriptions with shared results
 * (src/ws/shared-subscriptions.ts), over real sockets and the raw protocol, so that ids,
 * completes and closes land exactly where a test wants them.
 */

let executions = 0;
const logs = captureLogs('error');
const served = servedTestApp({}, { onSharedExecution: () => executions++, log: logs.log });

let owner: TestUser;
let member: TestUser;
beforeAll(async () => {
  [owner, member] = await Promise.all([signUp(served.t), signUp(served.t)]);
});

const room = (name: string) => groupRoom(served.t, owner, [member], name);
/** Stores `count` messages from owner at once (one group commit) and returns their ids in order. */
const fill = (chatId: number, count: number, content?: (i: number) => string) => storeMessages(served.t, owner, chatId, count, content);

/** A graphql-ws socket driven frame by frame, acknowledged. */
async function rawGraphql(user: TestUser): Promise<ChatClient> {
  const socket = served.kit.chat(null, { path: '/graphql' });
  await socket.opened;
  socket.send({ type: 'connection_init', payload: { authorization: `Bearer ${user.token}` } });
  await socket.next('connection_ack');
  return socket;
}

/** Subscribes `id` on `socket` and waits until its message listener is registered. */
async function subscribed(socket: ChatClient, id: string, chatId: number, query: string, extra: Record<string, unknown> = {}): Promise<void> {
  const listening = served.kit.subscribed('chat:message', chatId);
  socket.send({ id, type: 'subscribe', payload: { query, variables: { chatId }, ...extra } });
  await listening;
}

const framesOf = (socket: ChatClient, id: string): Frame[] => socket.frames.filter((frame) => frame.id === id);
const nextIds = (socket: ChatClient, id: string): number[] =>
  framesOf(socket, id)
    .map((frame) => (frame.payload as { data?: { messageAdded: { id: string } } | null } | undefined)?.data?.messageAdded.id)
    .filter((id) => id !== undefined)
    .map(Number);

async function listenersBackTo(expected: number): Promise<void> {
  const { pubsub } = served.t.app.services;
  const released = (async () => {
    while (pubsub.listenerCount() !== expected) await new Promise((resolve) => setImmediate(resolve));
  })();
  await withDeadline(released, () => `listeners still held: ${pubsub.listenerCount()}, expected ${expected}`);
}

const PLAIN = 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id content } }';
const WITH_RECEIPTS = 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id readBy { username } } }';

describe('operations the shared path must answer as graphql-ws would', () => {
  test('a root field skipped by @skip or @include answers with an error, and the socket and the process carry on', async () => {
    const chatId = await room('skipped root');
    const socket = await rawGraphql(member);
    // graphql-js throws for both, from execution (a literal) and from validation (a variable).
    socket.send({
      id: 'skipped',
      type: 'subscribe',
      payload: { query: 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) @skip(if: true) { id } }', variables: { chatId } },
    });
    const byVariable = 'subscription ($chatId: ID!, $on: Boolean!) { messageAdded(chatId: $chatId) @include(if: $on) { id } }';
    socket.send({ id: 'by variable', type: 'subscribe', payload: { query: byVariable, variables: { chatId, on: false } } });
    const skipped = await socket.next((frame) => frame.id === 'skipped' && frame.type === 'next');
    expect(skipped.payload).toEqual({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
    await socket.next((frame) => frame.id === 'skipped' && frame.type === 'complete');
    const refused = await socket.next((frame) => frame.id === 'by variable');
    expect(refused.type).toBe('error');

    await subscribed(socket, 'kept', chatId, PLAIN);
    const [id] = await fill(chatId, 1);
    await socket.next((frame) => frame.id === 'kept' && frame.type === 'next');
    expect(nextIds(socket, 'kept')).toEqual([id!]);
  });
});

/** Holds every `messages.reload` (the query behind `readBy`) until `open()`; `reached` resolves when one waits. */
function gateReloads() {
  const { messages } = served.t.app.services;
  const original = messages.reload;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  let reached!: () => void;
  const waiting = new Promise<void>((resolve) => (reached = resolve));
  messages.reload = async (...args) => {
    reached();
    await opened;
    return original.apply(messages, args);
  };
  return {
    reached: waiting,
    open: () => {
      messages.reload = original;
      open();
    },
  };
}

describe('completes, closes and ids', () => {
  test('a subscription completed while its event is loaded gets no frame for it; its neighbour on the socket does', async () => {
    const chatId = await room('complete while loading');
    const socket = await rawGraphql(member);
    await subscribed(socket, 'completed', chatId, WITH_RECEIPTS);
    await subscribed(socket, 'kept', chatId, WITH_RECEIPTS);
    const gate = gateReloads();
    const [first] = await fill(chatId, 1);
    await gate.reached;
    socket.send({ id: 'completed', type: 'complete' });
    // The complete is handled before a later subscribe on the same socket registers.
    await subscribed(socket, 'witness', chatId, PLAIN);
    gate.open();
    const [second] = await fill(chatId, 1);
    await socket.next((frame) => frame.id === 'witness' && frame.type === 'next');
    await socket.next((frame) => frame.id === 'kept' && frame.type === 'next' && nextIds(socket, 'kept').includes(second!));
    expect(framesOf(socket, 'completed')).toEqual([]);
    expect(nextIds(socket, 'kept')).toEqual([first!, second!]);
  });

  test('one id on many sockets, many ids on one socket, an id reused after complete: each frame carries its own id', async () => {
    const chatId = await room('ids');
    const baseline = served.t.app.services.pubsub.listenerCount();
    const sockets = await Promise.all([rawGraphql(member), rawGraphql(owner), rawGraphql(member)]);
    for (const socket of sockets) await subscribed(socket, 'same', chatId, PLAIN);
    const many = sockets[0];
    for (const id of ['a', 'b', 'c']) await subscribed(many, id, chatId, PLAIN);
    many.send({ id: 'a', type: 'complete' });
    await subscribed(many, 'a', chatId, PLAIN);
    executions = 0;
    const ids = await fill(chatId, 3);
    for (const socket of sockets) await socket.next((frame) => frame.id === 'same' && nextIds(socket, 'same').length === ids.length);
    await many.next(() => ['a', 'b', 'c'].every((id) => nextIds(many, id).length === ids.length));
    expect(executions).toBe(ids.length);
    for (const socket of sockets) expect(nextIds(socket, 'same')).toEqual(ids);
    for (const id of ['a', 'b', 'c']) expect(framesOf(many, id).map((frame) => frame.type)).toEqual(['next', 'next', 'next']);

    await Promise.all(sockets.map((socket) => socket.close()));
    await listenersBackTo(baseline);
  });

  test('an id completed and subscribed again while its first subscribe is still starting: the second is refused, the first released', async () => {
    const chatId = await room('same id race');
    const baseline = served.t.app.services.pubsub.listenerCount();
    const socket = await rawGraphql(member);
    // The first subscribe is held while it is authorized, until the complete and the second subscribe have been answered.
    const { messages } = served.t.app.services;
    const original = messages.subscribe;
    const answered = Promise.withResolvers<void>();
    messages.subscribe = async (...args) => {
      messages.subscribe = original;
      await answered.promise;
      return original.apply(messages, args);
    };
    const subscribe = { id: 'raced', type: 'subscribe', payload: { query: PLAIN, variables: { chatId } } };
    socket.send(subscribe);
    socket.send({ id: 'raced', type: 'complete' });
    socket.send(subscribe);
    const refused = await socket.next((frame) => frame.id === 'raced');
    expect(refused).toMatchObject({ type: 'error', payload: [{ extensions: { code: 'BAD_REQUEST' } }] });
    answered.resolve();

    await subscribed(socket, 'witness', chatId, PLAIN);
    const [id] = await fill(chatId, 1);
    await socket.next((frame) => frame.id === 'witness' && frame.type === 'next');
    expect(nextIds(socket, 'witness')).toEqual([id!]);
    expect(framesOf(socket, 'raced')).toEqual([refused]);
    await socket.close();
    await listenersBackTo(baseline);
  });

  test('clients that reconnect in a loop, closing mid-burst, leave no listener behind', async () => {
    const chatId = await room('reconnect loop');
    const baseline = served.t.app.services.pubsub.listenerCount();
    const steady = await rawGraphql(owner);
    await subscribed(steady, 'steady', chatId, WITH_RECEIPTS);
    const sent: number[] = [];
    for (let round = 0; round < 10; round++) {
      const socket = await rawGraphql(member);
      await subscribed(socket, 'flaky', chatId, round % 2 === 0 ? PLAIN : WITH_RECEIPTS);
      const burst = fill(chatId, 5);
      await socket.next((frame) => frame.id === 'flaky' && frame.type === 'next');
      // Dropped, not closed politely: the rest of the burst is still being delivered.
      (socket.ws as WebSocket & { terminate: () => void }).terminate();
      sent.push(...(await burst));
    }
    await steady.next((frame) => frame.id === 'steady' && nextIds(steady, 'steady').length === sent.length);
    expect(nextIds(steady, 'steady')).toEqual(sent.sort((a, b) => a - b));
    await steady.close();
    await listenersBackTo(baseline);
  });
});

describe('order', () => {
  test('a member removed right after a burst gets every next it is sent before its complete, in order', async () => {
    const chatId = await room('removed after a burst');
    const socket = await rawGraphql(member);
    await subscribed(socket, 'receipts', chatId, WITH_RECEIPTS);
    await subscribed(socket, 'plain', chatId, PLAIN);
    const burst = fill(chatId, 20);
    await served.t.request(`/api/chats/${chatId}/participants/${member.id}`, { method: 'DELETE', token: owner.token });
    const ids = await burst;
    for (const id of ['receipts', 'plain']) {
      await socket.next((frame) => frame.id === id && frame.type === 'complete');
      const types = framesOf(socket, id).map((frame) => frame.type);
      expect(types.indexOf('complete')).toBe(types.length - 1);
      const delivered = nextIds(socket, id);
      expect(delivered).toEqual(ids.slice(0, delivered.length));
    }
  });
});

describe('errors', () => {
  test('an event whose result fails gives every subscriber of the selection the same error result, and the streams go on', async () => {
    const chatId = await room('failing event');
    const sockets = await Promise.all([rawGraphql(member), rawGraphql(owner)]);
    for (const socket of sockets) await subscribed(socket, 'receipts', chatId, WITH_RECEIPTS);
    const { messages } = served.t.app.services;
    const original = messages.reload;
    messages.reload = async () => {
      messages.reload = original;
      throw new Error('the database went away for one query');
    };
    executions = 0;
    const [failed] = await fill(chatId, 1);
    const [next] = await fill(chatId, 1);
    for (const socket of sockets) {
      await socket.next((frame) => frame.id === 'receipts' && nextIds(socket, 'receipts').includes(next!));
      const payloads = framesOf(socket, 'receipts').map((frame) => frame.payload);
      expect(payloads[0]).toEqual({
        data: null,
        errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
      });
      expect(payloads[1]).toEqual({ data: { messageAdded: { id: String(next), readBy: [] } } });
    }
    expect(failed).toBeLessThan(next!);
    expect(executions).toBe(2);
    // Masked for the clients, logged once for the operators: one execution failed.
    const logged = logs.lines().filter((line) => line.msg === 'a subscription failed');
    expect(logged.filter((line) => (line.err as { message?: string }).message === 'the database went away for one query')).toHaveLength(1);
  });
});

describe('what sets subscribers apart', () => {
  test('selections, variables, aliases, fragments, directives and operation names in one room: each subscriber gets its own shape', async () => {
    const chatId = await room('shapes');
    const TWO = `
      subscription Plain($chatId: ID!) { messageAdded(chatId: $chatId) { id } }
      subscription Detailed($chatId: ID!, $withContent: Boolean!) { messageAdded(chatId: $chatId) { id ...Parts } }
      fragment Parts on Message { text: content @include(if: $withContent) isBot @skip(if: $withContent) __typename }`;
    const cases: { operationName?: string; query: string; variables?: Record<string, unknown>; expected: (id: number) => unknown }[] = [
      { query: PLAIN, expected: (id) => ({ id: String(id), content: 'shaped' }) },
      { operationName: 'Plain', query: TWO, expected: (id) => ({ id: String(id) }) },
      {
        operationName: 'Detailed',
        query: TWO,
        variables: { withContent: true },
        expected: (id) => ({ id: String(id), text: 'shaped', __typename: 'Message' }),
      },
      { operationName: 'Detailed', query: TWO, variables: { withContent: false }, expected: (id) => ({ id: String(id), isBot: false, __typename: 'Message' }) },
      {
        query: 'subscription ($chatId: ID!, $after: ID) { added: messageAdded(chatId: $chatId, after: $after) { key: id } }',
        variables: { after: null },
        expected: (id) => ({ key: String(id) }),
      },
    ];
    const socket = await rawGraphql(member);
    for (const [index, { operationName, query, variables }] of cases.entries()) {
      await subscribed(socket, String(index), chatId, query, { operationName, variables: { chatId, ...variables } });
    }
    executions = 0;
    const [id] = await fill(chatId, 1, () => 'shaped');
    await socket.next(() => cases.every((_, index) => framesOf(socket, String(index)).length === 1));
    for (const [index, { expected }] of cases.entries()) {
      const [frame] = framesOf(socket, String(index));
      const data = (frame!.payload as { data: Record<string, unknown> }).data;
      expect(Object.values(data)).toEqual([expected(id!)]);
    }
    expect(executions).toBe(cases.length);
  });
});

/**
 * A graphql-ws client on a raw TCP socket, acknowledged and subscribed to `ids`, that then stops
 * reading: what the server sends piles up in the kernel's buffers, then in Bun's backpressure.
 */
async function stalledReader(user: TestUser, chatId: number, ids: string[]): Promise<Socket> {
  const port = served.server.port!;
  const raw = connect(port, '127.0.0.1');
  // Client frames must be masked; an all-zero mask leaves the text as it is.
  const frame = (text: string) => {
    const body = Buffer.from(text);
    const length = body.length < 126 ? [0x80 | body.length] : [0x80 | 126, body.length >> 8, body.length & 255];
    return Buffer.concat([Buffer.from([0x81, ...length]), Buffer.alloc(4), body]);
  };
  let received = '';
  raw.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  raw.write(
    'GET /graphql HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
  );
  raw.write(frame(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${user.token}` } })));
  await withDeadline(
    (async () => {
      while (!received.includes('connection_ack')) await new Promise((resolve) => raw.once('data', resolve));
    })(),
    () => `no connection_ack; received ${JSON.stringify(received)}`,
  );
  for (const id of ids) {
    const listening = served.kit.subscribed('chat:message', chatId);
    raw.write(frame(JSON.stringify({ id, type: 'subscribe', payload: { query: PLAIN, variables: { chatId } } })));
    await listening;
  }
  raw.pause();
  return raw;
}

describe('a slow reader in a busy room', () => {
  test('is closed once it falls behind, holding nothing; the others get every message of the largest size, executed once each', async () => {
    const chatId = await room('slow reader');
    const baseline = served.t.app.services.pubsub.listenerCount();
    const readers = await Promise.all([rawGraphql(owner), rawGraphql(member)]);
    for (const reader of readers) await subscribed(reader, 'reader', chatId, PLAIN);
    const withReaders = served.t.app.services.pubsub.listenerCount();
    const stalled = await stalledReader(member, chatId, ['1', '2', '3', '4']);
    executions = 0;
    // 400 × 4 frames of 10,000 characters: far past the kernel's buffers and Bun's 1 MiB backpressure limit.
    const ids = await fill(chatId, 400, (i) => `${i} `.padEnd(MAX_CONTENT_LENGTH, 'x'));
    await listenersBackTo(withReaders);
    for (const reader of readers) {
      await reader.next(() => nextIds(reader, 'reader').length === ids.length);
      expect(nextIds(reader, 'reader')).toEqual(ids);
      expect(framesOf(reader, 'reader').every((frame) => JSON.stringify(frame).length > MAX_CONTENT_LENGTH)).toBe(true);
    }
    expect(executions).toBe(ids.length);
    stalled.destroy();
    await Promise.all(readers.map((reader) => reader.close()));
    await listenersBackTo(baseline);
  });
});
