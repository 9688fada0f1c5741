import type { Server, WebSocketHandler } from 'bun';
import type { ExecutionResult, FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import type { Client } from 'graphql-ws';
import { createClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll } from 'bun:test';
import type { TestApp } from './app';
import { createTestApp } from './app';
import type { AppOptions } from '../../src/app';
import type { Services } from '../../src/services';
import type { Listening, Topic } from '../../src/services/pubsub';

/**
 * Real-socket helpers for `/ws` and graphql-ws tests. Everything here synchronises on events
 * (frames, close events, subscription start-up), never on timers; the only timer is a failure
 * deadline that turns a hang into a readable error.
 */

/** How long a helper waits for an event before failing with what it saw instead: generous for a loaded machine, under the suite's 20 s test timeout. */
export const EVENT_DEADLINE_MS = 10_000;

export interface Frame {
  type: string;
  [key: string]: unknown;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

type Predicate<T> = (value: T) => boolean;

interface Waiter<T> {
  predicate: Predicate<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
  description: string;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * An ordered log of received values where `next(predicate)` hands out each value at most once:
 * the earliest unclaimed match, whether it arrived before or after the call.
 */
export class EventLog<T> {
  readonly all: T[] = [];
  private readonly claimed = new Set<number>();
  private readonly waiters = new Set<Waiter<T>>();
  private ended: Error | null = null;

  constructor(private readonly describe: () => string) {}

  push(value: T): void {
    const index = this.all.length;
    this.all.push(value);
    for (const waiter of this.waiters) {
      if (!waiter.predicate(value)) continue;
      this.claimed.add(index);
      this.settle(waiter);
      waiter.resolve(value);
      return;
    }
  }

  next(predicate: Predicate<T>, description: string): Promise<T> {
    const index = this.all.findIndex((value, i) => !this.claimed.has(i) && predicate(value));
    if (index !== -1) {
      this.claimed.add(index);
      return Promise.resolve(this.all[index]!);
    }
    if (this.ended) return Promise.reject(new Error(`${this.ended.message} before ${description}; ${this.describe()}`));
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        predicate,
        resolve,
        reject,
        description,
        timer: setTimeout(() => {
          this.settle(waiter);
          reject(new Error(`no ${description} within ${EVENT_DEADLINE_MS} ms; ${this.describe()}`));
        }, EVENT_DEADLINE_MS),
      };
      this.waiters.add(waiter);
    });
  }

  /** No more values will come: every pending `next` fails with `reason`. */
  end(reason: string): void {
    this.ended = new Error(reason);
    for (const waiter of this.waiters) {
      this.settle(waiter);
      waiter.reject(new Error(`${reason} before ${waiter.description}; ${this.describe()}`));
    }
  }

  private settle(waiter: Waiter<T>): void {
    clearTimeout(waiter.timer);
    this.waiters.delete(waiter);
  }
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with `message` if `promise` has not settled by the deadline. */
export function withDeadline<T>(promise: Promise<T>, message: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message()} (after ${EVENT_DEADLINE_MS} ms)`)), EVENT_DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A chat id no test creates: frames about it are answered "Chat not found". */
export const MISSING_CHAT_ID = 2_147_483_647;

export interface ChatClient {
  readonly ws: WebSocket;
  /** Every frame received, parsed, in arrival order. */
  readonly frames: Frame[];
  /** Resolves when the socket opened; rejects if it closed first. */
  readonly opened: Promise<void>;
  /** Resolves with the close code and reason, whoever closed. */
  readonly closed: Promise<CloseInfo>;
  readonly isClosed: () => boolean;
  /** Sends `frame` as JSON, or as is when it is a string. */
  send(frame: unknown): void;
  /**
   * The earliest not yet claimed frame matching `predicate` (already received or still to come).
   * Fails clearly if the socket closes first.
   */
  next(predicate: Predicate<Frame> | string, description?: string): Promise<Frame>;
  /** The next error frame. */
  nextError(): Promise<Frame>;
  /**
   * Waits until every frame sent so far has been handled as far as joins and leaves go: sends a
   * `typing` frame for a missing chat, which the server answers only after the socket's last
   * join/leave has settled, and awaits its "Chat not found" error.
   */
  sync(): Promise<void>;
  /** Sends `join` and waits until it has taken effect (see `sync`). */
  join(chatId: number): Promise<void>;
  leave(chatId: number): Promise<void>;
  /** Closes from the client side and waits for the close handshake. */
  close(code?: number, reason?: string): Promise<CloseInfo>;
}

export interface GraphqlSubscription<T = any> {
  /** Every result received, in order. */
  readonly results: FormattedExecutionResult<Record<string, T>>[];
  /** The `data[field]` of every result that had data. */
  readonly events: T[];
  /** Errors of results and of the error sink, flattened. */
  readonly errors: GraphQLFormattedError[];
  /** Resolves when the server has registered the pub/sub listener (only when `ready` was asked for). */
  readonly ready: Promise<void>;
  /** Settles when the operation completes or errors: never rejects. */
  readonly done: Promise<{ kind: 'complete' } | { kind: 'error'; error: unknown }>;
  /** The earliest not yet claimed event matching `predicate`. */
  next(predicate: Predicate<T>, description?: string): Promise<T>;
  unsubscribe(): void;
}

export interface GraphqlClient {
  readonly client: Client;
  /** The first time the server acknowledged `connection_init` (the client connects on its first subscription). */
  readonly connected: Promise<void>;
  /** The first time the client's socket closed. */
  readonly closed: Promise<CloseInfo>;
  /**
   * Starts a subscription whose result has one root `field`. With `ready: [topic, id]`, its
   * `ready` resolves once the server is listening to that pub/sub topic, so a publish after it
   * cannot be missed.
   */
  subscribe<T = any>(
    query: string,
    variables: Record<string, unknown>,
    options: { field: string; ready?: [topic: string, id: number] },
  ): GraphqlSubscription<T>;
}

/** The parts of the service layer where the app registers its listeners. */
export type Listeners = Pick<Services, 'pubsub' | 'feeds'>;

/**
 * Watches an app's listener registrations: `next(topic, id)` resolves when the next listener of
 * that topic and id has registered and the bus confirmed it (a Repeater listens only once its
 * first `next()` is called). Messages, their changes and bot streams register through the room
 * feeds, everything else on the pub/sub. Call it before starting the subscription it waits for.
 */
export function watchSubscriptions(listeners: Listeners | null) {
  const waiters: { key: string; resolve: () => void }[] = [];
  const notify = (key: string) => {
    const index = waiters.findIndex((waiter) => waiter.key === key);
    if (index !== -1) waiters.splice(index, 1)[0]!.resolve();
  };
  const watched = (key: string, listening: Listening) => {
    listening.ready.then(
      () => notify(key),
      () => {},
    );
    return listening;
  };
  const next = (topic: string, id: number): Promise<void> => {
    const { promise, resolve } = deferred<void>();
    waiters.push({ key: `${topic}:${id}`, resolve });
    return withDeadline(promise, () => `no subscription to ${topic}:${id} started`);
  };
  // An app in another process cannot be watched: its subscriptions are confirmed by what they receive.
  if (!listeners) return { next, restore: () => {} };
  const { pubsub, feeds } = listeners;
  const { on } = pubsub;
  const { onMessage, onChange, onBot } = feeds;
  // A room feed's own registration on the bus is not a reader: counted, it would answer a waiter
  // before that waiter's subscriber had registered.
  const feedTopics: Topic[] = ['chat:message', 'chat:change', 'chat:bot'];
  pubsub.on = (topic: Topic, id: number, listener: never) => {
    const listening = on.call(pubsub, topic, id, listener);
    return feedTopics.includes(topic) ? listening : watched(`${topic}:${id}`, listening);
  };
  feeds.onMessage = (chatId, listener) => watched(`chat:message:${chatId}`, onMessage.call(feeds, chatId, listener));
  feeds.onChange = (chatId, listener) => watched(`chat:change:${chatId}`, onChange.call(feeds, chatId, listener));
  feeds.onBot = (chatId, listener, options) => watched(`chat:bot:${chatId}`, onBot.call(feeds, chatId, listener, options));
  return {
    next,
    restore() {
      pubsub.on = on;
      feeds.onMessage = onMessage;
      feeds.onChange = onChange;
      feeds.onBot = onBot;
    },
  };
}

/**
 * Counts the sockets the server has finished closing (its close handler ran), whoever closed them:
 * install it on `app.websocket` before serving the app. `closed(n)` resolves once n have closed.
 */
export function watchServerCloses(handler: WebSocketHandler<any>) {
  const original = handler.close!;
  let count = 0;
  const waiters = new Set<{ count: number; resolve: () => void }>();
  handler.close = (...args) => {
    const result = original(...args);
    count++;
    for (const waiter of waiters) {
      if (count < waiter.count) continue;
      waiters.delete(waiter);
      waiter.resolve();
    }
    return result;
  };
  return {
    get count() {
      return count;
    },
    closed(total: number): Promise<void> {
      if (count >= total) return Promise.resolve();
      const { promise, resolve } = deferred<void>();
      waiters.add({ count: total, resolve });
      return withDeadline(promise, () => `the server closed ${count} sockets, not ${total}`);
    },
  };
}

/**
 * Socket factory for one served app: `chat(token)` opens `/ws?token=…`, `graphql(token)` a
 * graphql-ws client. `closeAll()` closes everything opened so far (call it in afterEach).
 */
export function socketKit(server: Server<unknown>, listeners: Listeners | null) {
  const base = `ws://${server.hostname}:${server.port}`;
  const chats = new Set<ChatClient>();
  const graphqls = new Set<{ client: Client; opened: () => boolean; closed: Promise<CloseInfo>; subscriptions: Set<GraphqlSubscription> }>();
  const subscriptions = watchSubscriptions(listeners);

  function chat(token: string | null, { path = '/ws' }: { path?: string } = {}): ChatClient {
    const url = token === null ? `${base}${path}` : `${base}${path}?token=${encodeURIComponent(token)}`;
    const ws = new WebSocket(url);
    let closeInfo: CloseInfo | null = null;
    const frames: EventLog<Frame> = new EventLog<Frame>(
      () => `socket ${closeInfo ? `closed ${closeInfo.code} ${JSON.stringify(closeInfo.reason)}` : 'open'}; frames so far: ${JSON.stringify(frames.all)}`,
    );
    const opened = deferred<void>();
    const closed = deferred<CloseInfo>();
    opened.promise.catch(() => {});
    ws.addEventListener('open', () => opened.resolve());
    ws.addEventListener('message', (event) => {
      const data = typeof event.data === 'string' ? event.data : new TextDecoder().decode(event.data as ArrayBuffer);
      let frame: Frame;
      try {
        frame = JSON.parse(data) as Frame;
      } catch {
        frame = { type: '<not JSON>', raw: data };
      }
      frames.push(frame);
    });
    ws.addEventListener('close', (event) => {
      closeInfo = { code: event.code, reason: event.reason };
      opened.reject(new Error(`socket closed ${event.code} before it opened`));
      frames.end(`socket closed with ${event.code} ${JSON.stringify(event.reason)}`);
      closed.resolve(closeInfo);
    });

    const client: ChatClient = {
      ws,
      frames: frames.all,
      opened: opened.promise,
      closed: closed.promise,
      isClosed: () => closeInfo !== null,
      send(frame) {
        ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
      },
      next(predicate, description) {
        if (typeof predicate === 'string') {
          const type = predicate;
          return frames.next((frame) => frame.type === type, description ?? `a "${type}" frame`);
        }
        return frames.next(predicate, description ?? 'a matching frame');
      },
      nextError() {
        return frames.next((frame) => frame.type === 'error', 'an error frame');
      },
      async sync() {
        client.send({ type: 'typing', chat_id: MISSING_CHAT_ID });
        await frames.next((frame) => frame.type === 'error' && frame.error === 'Chat not found', 'the sync answer ("Chat not found")');
      },
      async join(chatId) {
        client.send({ type: 'join', chat_id: chatId });
        await client.sync();
      },
      async leave(chatId) {
        client.send({ type: 'leave', chat_id: chatId });
        await client.sync();
      },
      async close(code = 1000, reason = '') {
        if (!closeInfo) ws.close(code, reason);
        return withDeadline(closed.promise, () => 'the socket did not close');
      },
    };
    chats.add(client);
    return client;
  }

  function graphql(token: string | null, { connectionParams }: { connectionParams?: Record<string, unknown> } = {}): GraphqlClient {
    const closed = deferred<CloseInfo>();
    const connected = deferred<void>();
    connected.promise.catch(() => {});
    let isOpen = false;
    const client = createClient({
      url: `${base}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: connectionParams ?? (token === null ? {} : { authorization: `Bearer ${token}` }),
      retryAttempts: 0,
      lazy: true,
      on: {
        opened: () => {
          isOpen = true;
        },
        connected: () => connected.resolve(),
        closed: (event) => {
          isOpen = false;
          const { code, reason } = event as CloseEvent;
          connected.reject(new Error(`graphql-ws socket closed ${code} ${JSON.stringify(reason)} before it was acknowledged`));
          closed.resolve({ code, reason });
        },
      },
    });
    const owned = { client, opened: () => isOpen, closed: closed.promise, subscriptions: new Set<GraphqlSubscription>() };
    graphqls.add(owned);

    return {
      client,
      connected: connected.promise,
      closed: closed.promise,
      subscribe<T>(query: string, variables: Record<string, unknown>, options: { field: string; ready?: [string, number] }) {
        const ready = options.ready ? subscriptions.next(...options.ready) : Promise.resolve();
        ready.catch(() => {});
        const done = deferred<{ kind: 'complete' } | { kind: 'error'; error: unknown }>();
        const results: FormattedExecutionResult<Record<string, T>>[] = [];
        const errors: GraphQLFormattedError[] = [];
        let ended = false;
        const events: EventLog<T> = new EventLog<T>(
          () => `subscription ${ended ? 'ended' : 'open'}; results so far: ${JSON.stringify(results)}; errors: ${JSON.stringify(errors)}`,
        );
        const unsubscribe = client.subscribe<Record<string, T>>(
          { query, variables },
          {
            next(result: ExecutionResult<Record<string, T>> | FormattedExecutionResult<Record<string, T>>) {
              const formatted = result as FormattedExecutionResult<Record<string, T>>;
              results.push(formatted);
              if (formatted.errors) errors.push(...formatted.errors);
              const data = formatted.data?.[options.field];
              if (data !== undefined && data !== null) events.push(data);
            },
            error(error) {
              ended = true;
              if (Array.isArray(error)) errors.push(...(error as GraphQLFormattedError[]));
              else if (error instanceof Error) errors.push({ message: error.message });
              events.end('subscription errored');
              done.resolve({ kind: 'error', error });
            },
            complete() {
              ended = true;
              events.end('subscription completed');
              done.resolve({ kind: 'complete' });
            },
          },
        );
        const subscription: GraphqlSubscription<T> = {
          results,
          events: events.all,
          errors,
          ready,
          done: done.promise,
          next: (predicate, description = 'a matching event') => events.next(predicate, description),
          unsubscribe,
        };
        owned.subscriptions.add(subscription);
        return subscription;
      },
    };
  }

  async function closeAll(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const socket of chats) waits.push(socket.close());
    chats.clear();
    for (const owned of graphqls) {
      for (const subscription of owned.subscriptions) subscription.unsubscribe();
      const wasOpen = owned.opened();
      await owned.client.dispose();
      if (wasOpen) waits.push(withDeadline(owned.closed, () => 'a graphql-ws client did not close'));
    }
    graphqls.clear();
    await Promise.all(waits);
  }

  return {
    chat,
    graphql,
    closeAll,
    /** Resolves when the next subscription to `topic` for `id` has started listening. */
    subscribed: subscriptions.next,
    /** Closes everything and puts the pub/sub bus back as it was. */
    async dispose() {
      await closeAll();
      subscriptions.restore();
    },
  };
}

export type SocketKit = ReturnType<typeof socketKit>;

export interface ServedTestApp {
  t: TestApp;
  server: Server<unknown>;
  kit: SocketKit;
  /** The sockets the server has finished closing (see `watchServerCloses`). */
  closes: ReturnType<typeof watchServerCloses>;
}

/**
 * A test app on a real port with its socket kit, for the describe block (or file) that calls it:
 * made in its `beforeAll`, every socket closed after each test, and all of it released in `afterAll`.
 */
export function servedTestApp(env: Record<string, string> | (() => Record<string, string>) = {}, options: AppOptions = {}): ServedTestApp {
  const served = {} as ServedTestApp;
  beforeAll(async () => {
    // A function when the settings are known only once an earlier `beforeAll` ran (a fake Gemini's URL).
    served.t = await createTestApp(typeof env === 'function' ? env() : env, options);
    served.closes = watchServerCloses(served.t.app.websocket);
    served.server = served.t.listen();
    served.kit = socketKit(served.server, served.t.app.services);
  });
  afterEach(() => served.kit.closeAll());
  afterAll(async () => {
    await served.kit.dispose();
    await served.server.stop(true);
    await served.t.cleanup();
  });
  return served;
}
