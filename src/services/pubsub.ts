import type { AttachmentView } from './attachments/attachment.service';
import type { Redis } from 'ioredis';
import { redact } from '../config';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import { AppError } from './errors';
import { settleWithin } from './timeout';
import { removeFirst } from './lists';
import type { PublicUser } from './auth.service';

/** One emoji's reactions to a message: who reacted with it, oldest first. */
export interface ReactionSummary {
  emoji: string;
  count: number;
  userIds: number[];
}

/** A stored message as every transport delivers it. */
export interface MessageEvent {
  id: number;
  chatId: number;
  userId: number | null;
  username: string | null;
  /** The author's public columns, so GraphQL resolves `user { … }` and `username` from the event with no query. */
  user: PublicUser | null;
  content: string;
  isBot: boolean;
  status: string;
  replyToId: number | null;
  /** A `/bot` ask no answer has started for yet. */
  askPending: boolean;
  createdAt: Date;
  /** When its author last edited it; null if never. */
  editedAt: Date | null;
  /** Every column travels, as GraphQL's Message needs: null here, a deletion travels as a MessageChange. */
  deletedAt: Date | null;
  /** The chat's newest message id at its last edit (see MessageChangeService.changesSince); null if never edited. */
  changeMark: number | null;
  /** For a message posted through an incoming hook: the hook's name, which is also its `username`. */
  senderName: string | null;
  /** An ask: the assistant it addresses; an answer: the assistant that wrote it (null: the built-in bot). */
  assistantId: number | null;
  /** That assistant's display name, which an answer shows as its author. */
  assistant: { name: string } | null;
  /** Asked (or answered) under this earlier message. */
  threadId: number | null;
  /** A grounded answer's sources as stored (JSON); null when it has none. */
  sources: string | null;
  /** Grouped by emoji in first-use order; a message just sent has none, so its event costs no query for them. */
  reactions: ReactionSummary[];
  /** The files sent with it, in the order they were sent. */
  attachments: AttachmentView[];
}

/** A stored message read without its reactions and attachments (the chat list's last message): GraphQL loads them if asked. */
export type StoredMessage = Omit<MessageEvent, 'reactions' | 'attachments'>;

/**
 * An edit or a deletion of a stored message, delivered to everyone in its chat. An update carries
 * the whole message as it is now, so applying one twice changes nothing; a deletion is final.
 */
export type MessageChange = { kind: 'updated'; message: MessageEvent } | { kind: 'deleted'; chatId: number; messageId: number };

export const isMessageChange = (event: object): event is MessageChange => 'kind' in event;

export interface TypingEvent {
  chatId: number;
  userId: number;
  username: string;
  /** The `/ws` socket it came from, which does not hear its own typing; null from GraphQL. */
  socketId: string | null;
}

/** One step of a bot answer: deltas while `isComplete` is false, then one completion. */
export interface BotStreamEvent {
  chatId: number;
  messageId: number;
  chunk: string;
  isComplete: boolean;
  fullResponse?: string;
  error?: string;
  stopped?: boolean;
  /** When the answer began (its message's `created_at`). */
  createdAt: Date;
  /** The room's assistant writing it; absent for the built-in bot. */
  assistantId?: number;
  /** Its display name, the author of the nested message (BOT_NAME for the built-in bot). */
  assistantName?: string;
  /** On a grounded answer's completion: the sources it drew on. */
  sources?: AnswerSource[];
  /** The answer is being written again (regenerate): its earlier text is a version now. */
  regenerating?: boolean;
}

/** A source a grounded answer drew on. */
export interface AnswerSource {
  title: string;
  url: string;
}

/** A room's assistant as members see it. */
export interface AssistantView {
  id: number;
  chatId: number;
  name: string;
  instructions: string;
  model: string;
  temperature: number | null;
  answersMentions: boolean;
  grounding: boolean;
  isDefault: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** The owner changed the room's assistants: one was created or changed (as it is now), deleted, or its memory cleared. */
export type AssistantEvent =
  | { chatId: number; kind: 'updated'; assistant: AssistantView }
  | { chatId: number; kind: 'deleted'; assistantId: number }
  | { chatId: number; kind: 'memory_cleared'; assistantId: number };

/** Someone added or removed a reaction: what changed, and the message's reactions after the change. */
export interface ReactionEvent {
  chatId: number;
  messageId: number;
  emoji: string;
  userId: number;
  username: string;
  action: 'added' | 'removed';
  reactions: ReactionSummary[];
}

/**
 * Someone's `/ws` socket joined or left a room (the `user_joined`/`user_left` notices); `socketId`
 * lets that socket skip its own notice. Not whether a user is online: that is `UserPresenceEvent`.
 */
export interface RoomPresenceEvent {
  chatId: number;
  username: string;
  kind: 'joined' | 'left';
  socketId: string;
}

export type PresenceStatus = 'online' | 'offline';

/**
 * A user came online (their first socket anywhere opened) or went offline (their last one has been
 * closed for PRESENCE_GRACE_MS), told to everyone who shares a chat with them.
 */
export interface UserPresenceEvent {
  type: 'presence';
  userId: number;
  username: string;
  status: PresenceStatus;
  /** When their last socket closed; null while they are online. */
  lastSeenAt: Date | null;
  /**
   * Orders one user's changes, which different instances may announce: a receiver drops a change
   * older than one it has already passed on (see PresenceService.isCurrent).
   */
  version: number;
}

/** A chat as user events carry it. */
export interface ChatSummary {
  id: number;
  name: string | null;
  ownerId: number;
  isGroup: boolean;
  createdAt: Date;
}

/** Who has read which of a chat's recent messages, by message id (as a string key), oldest read first. */
export type ReadReceipts = Record<string, { userId: number; username: string; readAt: Date }[]>;

/**
 * Something that happened to one user's chats, published to that user's topic: every transport
 * turns it into a push (a `/ws` frame, a GraphQL viewer event), and the `/ws` hub follows the
 * user's memberships with it.
 */
export type UserEvent =
  /** Added to a chat when it was created. */
  | { type: 'chat_created'; chat: ChatSummary; addedBy: string }
  /** The user created the chat (from this or another session): their sockets start receiving it. */
  | { type: 'joined_chat'; chat: ChatSummary }
  | { type: 'chat_invite'; chat: ChatSummary; invitedBy: string }
  /** Removed from the chat by its owner. */
  | { type: 'removed_from_chat'; chatId: number; chatName: string | null; removedBy: string }
  /** The user left the chat themselves (their other sockets stop receiving it). */
  | { type: 'left_chat'; chatId: number }
  | { type: 'chat_deleted'; chatId: number; chatName: string | null; deletedBy: string }
  /** Someone else is no longer in one of the user's chats. */
  | { type: 'user_left'; chatId: number; chatName: string | null; userId: number; username: string; how: 'removed' | 'left' }
  | { type: 'read_receipts_updated'; chatId: number; receipts: ReadReceipts }
  /** Someone who shares a chat with the user came online or went offline. */
  | UserPresenceEvent
  /** The user, or someone who shares a chat with them, changed their display name, bio or avatar. */
  | { type: 'user_updated'; user: PublicUser };

/** The chat the user is in after the event: one they were added to, invited into, or created. */
export const startsMembership = (event: UserEvent): number | null =>
  event.type === 'chat_created' || event.type === 'chat_invite' || event.type === 'joined_chat' ? event.chat.id : null;

/** The user events after which the user is no longer in `chatId`. */
export const endsMembership = (event: UserEvent): number | null =>
  event.type === 'removed_from_chat' || event.type === 'left_chat' || event.type === 'chat_deleted' ? event.chatId : null;

/**
 * The typed topics every transport subscribes to, scoped by chat (or user) id. Services publish
 * after they write; `/ws` and graphql-ws only subscribe and translate.
 */
export type Events = {
  'chat:message': [chatId: number, event: MessageEvent];
  'chat:change': [chatId: number, event: MessageChange];
  'chat:typing': [chatId: number, event: TypingEvent];
  'chat:room-presence': [chatId: number, event: RoomPresenceEvent];
  'chat:bot': [chatId: number, event: BotStreamEvent];
  'chat:reaction': [chatId: number, event: ReactionEvent];
  'chat:assistant': [chatId: number, event: AssistantEvent];
  /** Asks whichever instance runs that answer to stop it. */
  'chat:stop': [chatId: number, request: { chatId: number; messageId: number }];
  'user:event': [userId: number, event: UserEvent];
  /** Drops cached memberships on every instance after someone left a chat; one channel (id 0) for the whole cluster. */
  'membership:forget': [cluster: 0, scope: { userId?: number; chatId?: number; origin: string }];
  /** Drops a user's cached columns on every instance after their profile changed; one channel (id 0) for the whole cluster. */
  'user:forget': [cluster: 0, change: { userId: number; origin: string }];
};

export type Topic = keyof Events;

/** Every topic, to read a channel's name off Redis (a Record, so a topic added to Events must be added here). */
const TOPICS = new Set(
  Object.keys({
    'chat:message': true,
    'chat:change': true,
    'chat:typing': true,
    'chat:room-presence': true,
    'chat:bot': true,
    'chat:reaction': true,
    'chat:assistant': true,
    'chat:stop': true,
    'user:event': true,
    'membership:forget': true,
    'user:forget': true,
  } satisfies Record<Topic, true>),
);

export type Payload<K extends Topic> = Events[K][1];

/** One listener's registration on a topic; `stop()` releases it and is safe to call twice. */
export interface Listening {
  /**
   * Settles once the bus delivers to this listener: at once in memory; across instances once
   * Redis has confirmed the SUBSCRIBE. Rejects while Redis is unreachable (the listener stays
   * registered and is subscribed again when Redis returns).
   */
  ready: Promise<void>;
  /** A method, not a field: lint refuses passing it around detached from its registration. */
  stop(): void;
}

/** A subscriber that let this many events queue up unread is ended rather than allowed to grow memory. */
export const SUBSCRIBER_QUEUE_LIMIT = 1000;

/** Ends a subscription whose reader fell `SUBSCRIBER_QUEUE_LIMIT` events behind; it may resubscribe with `after`. */
export class SlowSubscriberError extends AppError {
  override name = 'SlowSubscriberError';
  constructor() {
    super('SLOW_SUBSCRIBER', `Subscription ended: more than ${SUBSCRIBER_QUEUE_LIMIT} events were waiting unread`);
  }
}

/**
 * Where events travel: memory for one process, Redis between instances. A channel is a topic and an
 * id; only Redis needs it as one string, so memory never builds one.
 */
interface Transport {
  /** Sends `payload` to every instance's listeners of the channel (this one's included). */
  publish(topic: Topic, id: number, payload: unknown): void;
  /** First local listener of the channel: start receiving it; null when that is done at once (memory). */
  open(topic: Topic, id: number): Promise<void> | null;
  /** Last local listener of the channel gone. */
  close(topic: Topic, id: number): void;
}

type Deliver = (topic: Topic, id: number, payload: unknown) => void;

/** What a listener is called with: the event, and the id of the channel it came on (see PubSub.listen). */
export type Listener<K extends Topic> = (payload: Payload<K>, id: number) => void;

interface Channel {
  /**
   * An array, not a set: most channels (a user's events) have one listener, and a set holding one
   * takes some 260 bytes where an array takes some 50, on every connected user.
   */
  listeners: ((payload: never, id: number) => void)[];
  ready: Promise<void>;
}

/** Every channel opened at once shares it: a socket's channel costs no promise of its own. */
const OPEN: Promise<void> = Promise.resolve();

/** One listener on one channel (see PubSub.on): an object, not closures. */
class Registration<K extends Topic> implements Listening {
  private stopped = false;

  constructor(
    private readonly pubsub: PubSub,
    private readonly topic: K,
    private readonly id: number,
    private readonly listener: Listener<K>,
    readonly ready: Promise<void>,
  ) {}

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.pubsub.unlisten(this.topic, this.id, this.listener);
  }
}

const unavailable = () => new AppError('SERVICE_UNAVAILABLE', 'Real-time delivery is unavailable right now (Redis is unreachable): try again shortly');

/**
 * The typed pub/sub. Every listener runs isolated (one that throws is logged, never stops the
 * others or the publisher), and an iterator subscriber has a bounded queue, so neither a bug nor a
 * reader that stopped reading can take the process down or grow its memory.
 */
export class PubSub {
  /** Each topic's channels by id: numbers as keys, no string built per channel or per event. */
  private readonly channels = new Map<Topic, Map<number, Channel>>();
  private readonly transport: Transport;

  constructor(
    makeTransport: (deliver: Deliver) => Transport,
    private readonly log: Logger,
  ) {
    this.transport = makeTransport((topic, id, payload) => this.deliver(topic, id, payload));
  }

  publish<K extends Topic>(topic: K, id: number, payload: Payload<K>): void {
    this.transport.publish(topic, id, payload);
  }

  /** Calls `listener` with each event of the topic until `stop()`. */
  on<K extends Topic>(topic: K, id: number, listener: Listener<K>): Listening {
    return new Registration(this, topic, id, listener, this.listen(topic, id, listener));
  }

  /**
   * Calls `listener` with each event of the topic's `id`, and the id, until `unlisten` with the same
   * three. One listener can serve every id (each connected user's events, say) with no object per id,
   * where `on` makes a registration each. Returns what `Listening.ready` is.
   */
  listen<K extends Topic>(topic: K, id: number, listener: Listener<K>): Promise<void> {
    let byId = this.channels.get(topic);
    if (!byId) {
      byId = new Map();
      this.channels.set(topic, byId);
    }
    let channel = byId.get(id);
    if (!channel) {
      channel = { listeners: [], ready: this.open(topic, id) };
      byId.set(id, channel);
    }
    channel.listeners.push(listener);
    return channel.ready;
  }

  /** Ends one `listen` of `listener`: the channel closes with its last listener. */
  unlisten<K extends Topic>(topic: K, id: number, listener: Listener<K>): void {
    const byId = this.channels.get(topic);
    const channel = byId?.get(id);
    if (!channel || !removeFirst(channel.listeners, listener as Channel['listeners'][number]) || channel.listeners.length > 0) return;
    byId!.delete(id);
    this.transport.close(topic, id);
  }

  /**
   * The topic's events as an async iterator for GraphQL subscriptions. It listens from its first
   * `next()` until `return()` (even one called before any event), and ends with
   * SlowSubscriberError when its reader falls `SUBSCRIBER_QUEUE_LIMIT` events behind.
   */
  subscribe<K extends Topic>(topic: K, id: number, endWhen?: EndWhen): EventStream<Payload<K>> {
    return boundedStream((push) => this.on(topic, id, push), endWhen);
  }

  /** How many listeners this process holds: what metrics report and what tests check is released. */
  listenerCount(): number {
    let count = 0;
    for (const byId of this.channels.values()) for (const channel of byId.values()) count += channel.listeners.length;
    return count;
  }

  /** Subscribes again to every channel a listener holds, after Redis lost them; settles when all are confirmed. */
  async resubscribeAll(): Promise<void> {
    const reopened: Promise<void>[] = [];
    for (const [topic, byId] of this.channels) {
      for (const [id, channel] of byId) reopened.push((channel.ready = this.open(topic, id)));
    }
    await Promise.all(reopened);
  }

  private open(topic: Topic, id: number): Promise<void> {
    const opening = this.transport.open(topic, id);
    if (!opening) return OPEN;
    return readiness(
      opening.catch(() => {
        throw unavailable();
      }),
    );
  }

  private deliver(topic: Topic, id: number, payload: unknown): void {
    const channel = this.channels.get(topic)?.get(id);
    if (!channel) return;
    for (const listener of channel.listeners.slice()) {
      try {
        listener(payload as never, id);
      } catch (error) {
        this.log.error({ err: error, channel: channelName(topic, id) }, 'a pub/sub listener failed');
      }
    }
  }
}

/**
 * `ready` as a Listening's `ready`: its rejection (Redis unreachable) is reported to whoever awaits it
 * and is no failure when nobody does; the registration itself stands until Redis is back.
 */
export function readiness<T>(ready: Promise<T>): Promise<T> {
  ready.catch(() => {});
  return ready;
}

/** A channel as Redis names it (after the prefix): `chat:message:12`. */
const channelName = (topic: Topic, id: number) => `${topic}:${id}`;

/** The topic and id of a channel Redis names, or null for one that is not ours. */
function parseChannel(name: string): { topic: Topic; id: number } | null {
  const separator = name.lastIndexOf(':');
  const topic = name.slice(0, separator);
  const id = Number(name.slice(separator + 1));
  return TOPICS.has(topic) && Number.isSafeInteger(id) ? { topic: topic as Topic, id } : null;
}

/**
 * Ends a subscription from outside: `watch(end)` registers a listener that calls `end()` when the
 * subscription must stop (its reader left the chat, say); released with the subscription.
 */
export type EndWhen = (end: () => void) => Listening;

/**
 * An async iterator fed by `listen`, whose registration it releases when the reader returns or
 * falls SUBSCRIBER_QUEUE_LIMIT events behind (then, after what was queued, it throws
 * SlowSubscriberError), or when `endWhen` fires. It listens from its first `next()`: one returned
 * before that never listens.
 */
export function boundedStream<T>(listen: (push: (value: T) => void) => Listening, endWhen?: EndWhen): EventStream<T> {
  return new BoundedListener(listen, endWhen);
}

/** A subscriber's events; `return()` releases what it holds. */
export interface EventStream<T> extends AsyncIterableIterator<T> {
  return(): Promise<IteratorResult<T>>;
}

/** A stream that can also hand its events on as they come, without a promise per event (see BoundedListener.forward). */
export interface ForwardingStream<T> extends EventStream<T> {
  forward(onEvent: (value: T) => void, onEnd: (failure: Error | null) => void): void;
}

export const canForward = <T>(stream: AsyncIterator<T>): stream is ForwardingStream<T> =>
  typeof (stream as Partial<ForwardingStream<T>>).forward === 'function';

const DONE: IteratorResult<never> = { done: true, value: undefined };

/**
 * A plain queue rather than a Repeater: it sits on every delivery to every subscriber, where a
 * Repeater's push and next cost about 1.9 µs an event and this about 0.3 µs (measured with Bun 1.4.5).
 */
class BoundedListener<T> implements ForwardingStream<T> {
  private readonly queue: T[] = [];
  /** A reader waiting in `next()` (only while the queue is empty). */
  private waiting: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | null = null;
  /** A reader that takes events as they come instead of through `next()`. */
  private forwarding: { onEvent: (value: T) => void; onEnd: (failure: Error | null) => void } | null = null;
  private state: 'idle' | 'listening' | 'ended' = 'idle';
  /** Thrown to the reader once the queue is read, when the listener ended with an error. */
  private failure: Error | null = null;
  private registrations: Listening[] = [];

  constructor(
    private readonly listen: (push: (value: T) => void) => Listening,
    private readonly endWhen: EndWhen | undefined,
  ) {}

  [Symbol.asyncIterator](): EventStream<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.state === 'idle') this.start();
    if (this.queue.length > 0) return Promise.resolve({ value: this.queue.shift()!, done: false });
    if (this.state === 'ended') {
      const failure = this.failure;
      this.failure = null;
      return failure ? Promise.reject(failure) : Promise.resolve(DONE);
    }
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.queue.length = 0;
    this.end(null);
    this.failure = null;
    return Promise.resolve(DONE);
  }

  /**
   * Hands each event to `onEvent` as it is pushed, instead of through `next()`: for a reader that only
   * passes events on, the promise and the resumption per event were its cost. What is queued goes
   * first; `onEnd` hears the end once, with the error it ended with, if any. The reader then keeps no
   * queue here: bounding what it has not delivered is its own concern.
   */
  forward(onEvent: (value: T) => void, onEnd: (failure: Error | null) => void): void {
    this.forwarding = { onEvent, onEnd };
    if (this.state === 'idle') this.start();
    for (const value of this.queue.splice(0)) onEvent(value);
    if (this.state === 'ended') this.endForwarding();
  }

  private endForwarding(): void {
    const forwarding = this.forwarding;
    this.forwarding = null;
    const failure = this.failure;
    this.failure = null;
    forwarding?.onEnd(failure);
  }

  private start(): void {
    this.state = 'listening';
    this.registrations.push(this.listen((value) => this.push(value)));
    if (this.endWhen) this.registrations.push(this.endWhen(() => this.end(null)));
    // Ended while registering (a departure already known): what was registered goes now.
    if (this.isEnded()) this.release();
  }

  private push(value: T): void {
    if (this.state !== 'listening') return;
    if (this.forwarding) {
      this.forwarding.onEvent(value);
    } else if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve({ value, done: false });
    } else if (this.queue.length >= SUBSCRIBER_QUEUE_LIMIT) {
      this.end(new SlowSubscriberError());
    } else {
      this.queue.push(value);
    }
  }

  private end(failure: Error | null): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.failure = failure;
    this.release();
    if (this.forwarding) return this.endForwarding();
    if (!this.waiting) return;
    const { resolve, reject } = this.waiting;
    this.waiting = null;
    this.failure = null;
    if (failure) reject(failure);
    else resolve(DONE);
  }

  private isEnded(): boolean {
    return this.state === 'ended';
  }

  private release(): void {
    for (const registration of this.registrations.splice(0)) registration.stop();
  }
}

/**
 * Pushes into a Repeater, counting what waits unread: past `limit()` the Repeater is ended with
 * SlowSubscriberError instead of reaching Repeater's own overflow error, which would throw inside
 * the publisher.
 */
export function countedPush<T>(
  push: (value: T) => Promise<unknown>,
  stop: (error: Error) => unknown,
  limit: () => number = () => SUBSCRIBER_QUEUE_LIMIT,
): (value: T) => void {
  let unread = 0;
  return (value) => {
    if (unread >= limit()) {
      stop(new SlowSubscriberError());
      return;
    }
    unread++;
    // The push settles when the reader takes the value, or rejects once the Repeater is stopped with an error.
    push(value).then(
      () => unread--,
      () => {},
    );
  };
}

/** An EndWhen for a reader of `chatId`: the subscription ends once `userId` is no longer in the chat. */
export const whileMember =
  (pubsub: PubSub, userId: number, chatId: number): EndWhen =>
  (end) =>
    pubsub.on('user:event', userId, (event) => {
      if (endsMembership(event) === chatId) end();
    });

/** Events carry Dates (`createdAt`, …); JSON turns them into strings, so they are revived here. */
const DATE_KEYS = new Set(['createdAt', 'readAt', 'editedAt', 'deletedAt', 'lastSeenAt', 'updatedAt', 'memoryUpdatedAt']);
const reviveDates = (key: string, value: unknown): unknown => (DATE_KEYS.has(key) && typeof value === 'string' ? new Date(value) : value);

/** What `/health` says of the bus: `local` (one process), `ready`, or why Redis cannot be used. */
export type BusState = 'local' | 'ready' | 'connecting' | 'unreachable';

export interface EventBus {
  pubsub: PubSub;
  /** The Redis connection for commands (the cluster-wide bot lock), when there is one. */
  redis?: Redis;
  state: () => BusState;
  /** Whether an event published now reaches every instance. */
  available: () => boolean;
  /**
   * Calls `listener` each time Redis is usable again after an outage, with the time the outage
   * began (events published since may have been lost to this instance's listeners). The events that
   * arrive from then on are held until the promise it returns settles (see RESUME_HOLD_MS), so
   * nothing published after what it reads from the database is delivered before it is done.
   */
  onResume: (listener: (since: Date) => Promise<void> | void) => void;
  close: () => Promise<void>;
}

/** How often each instance checks that Redis answers, and how long it waits: a stalled Redis is found within twice this. */
const HEARTBEAT_MS = 1_000;
/** A Redis command that takes longer than this counts as Redis being unreachable. */
const COMMAND_TIMEOUT_MS = 2_000;
/**
 * After an outage, events from Redis are held while the resume listeners bring this instance's
 * memberships up to date (see onResume): at most this long, and at most RESUME_HOLD_EVENTS events,
 * then they are delivered whatever the listeners' progress.
 */
const RESUME_HOLD_MS = 5_000;
const RESUME_HOLD_EVENTS = 10_000;

/**
 * In one process the pub/sub is in memory. With REDIS_URL it runs on Redis through two clients
 * (one is held in subscriber mode), so an event published on any instance reaches every instance.
 * The server starts and serves while Redis is down (reported by `/health`), and joins the cluster
 * when Redis answers.
 */
export async function createEventBus(redisUrl: string | null, prefix: string, log: Logger, metrics: Metrics): Promise<EventBus> {
  const busLog = log.child({ component: 'pubsub' });
  if (!redisUrl) {
    const pubsub = new PubSub(
      (deliver) => ({
        publish: (topic, id, payload) => deliver(topic, id, payload),
        open: () => null,
        close: () => {},
      }),
      busLog,
    );
    metrics.pubsubUp.set({ mode: 'local' }, 1);
    return { pubsub, state: () => 'local', available: () => true, onResume: () => {}, close: async () => {} };
  }
  return redisEventBus(redisUrl, prefix, busLog, metrics);
}

async function redisEventBus(redisUrl: string, prefix: string, log: Logger, metrics: Metrics): Promise<EventBus> {
  // No offline queue: while Redis is down a command fails at once instead of waiting, unbounded, in memory.
  const options = { enableOfflineQueue: false, autoResubscribe: false, commandTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 1 };
  // Loaded only when used: a single process never holds the Redis client's code.
  const { Redis } = await import('ioredis');
  // Commands issued in one turn of the event loop (a committed batch's publishes) go in one write:
  // a third of Redis's CPU per message, measured (BENCHMARKS.md, scale-out).
  const publishClient = new Redis(redisUrl, { ...options, enableAutoPipelining: true });
  const subscribeClient = new Redis(redisUrl, options);
  const where = redact(redisUrl);
  let healthy = false;
  metrics.pubsubUp.set({ mode: 'redis' }, 0);
  let everHealthy = false;
  let outageSince: Date | null = new Date();
  let checking = false;
  let closed = false;
  const resumeListeners: ((since: Date) => Promise<void> | void)[] = [];
  /** Events that came while resume listeners ran, in order; null when events are delivered as they come. */
  let held: [topic: Topic, id: number, payload: unknown][] | null = null;
  /** One token for each resume whose listeners have not settled: events are held while any is left. */
  const holds = new Set<symbol>();
  const deliverHeld = () => {
    const events = held ?? [];
    held = null;
    for (const [topic, id, payload] of events) deliverNow(topic, id, payload);
  };
  const releaseHold = (hold: symbol) => {
    holds.delete(hold);
    if (holds.size === 0) deliverHeld();
  };
  let deliverNow: Deliver = () => {};

  const markDown = (reason: string) => {
    if (closed) return;
    if (healthy) log.error({ reason: redact(reason) }, `Redis at ${where} is unreachable: cross-instance delivery paused`);
    healthy = false;
    metrics.pubsubUp.set({ mode: 'redis' }, 0);
    outageSince ??= new Date(Date.now() - HEARTBEAT_MS);
  };
  // Both connections report errors; the heartbeat below decides what they mean.
  publishClient.on('error', () => {});
  subscribeClient.on('error', () => {});
  publishClient.on('close', () => markDown('connection closed'));
  subscribeClient.on('close', () => markDown('connection closed'));

  const pubsub = new PubSub((deliver) => {
    subscribeClient.on('message', (channel: string, text: string) => {
      if (!channel.startsWith(prefix)) return;
      let payload: unknown;
      try {
        payload = JSON.parse(text, reviveDates);
      } catch (error) {
        log.error({ err: error, channel }, 'an unreadable event came over Redis');
        return;
      }
      const parsed = parseChannel(channel.slice(prefix.length));
      if (!parsed) return;
      if (!held) return deliver(parsed.topic, parsed.id, payload);
      held.push([parsed.topic, parsed.id, payload]);
      if (held.length >= RESUME_HOLD_EVENTS) {
        log.warn(`${RESUME_HOLD_EVENTS} events came while this instance was catching up after the outage: delivering them now`);
        holds.clear();
        deliverHeld();
      }
    });
    deliverNow = deliver;
    return {
      publish: (topic, id, payload) => {
        publishClient.publish(prefix + channelName(topic, id), JSON.stringify(payload)).catch((error: unknown) => {
          metrics.pubsubPublishErrors.inc();
          markDown((error as Error).message);
        });
      },
      open: async (topic, id) => {
        await subscribeClient.subscribe(prefix + channelName(topic, id));
      },
      close: (topic, id) => {
        subscribeClient.unsubscribe(prefix + channelName(topic, id)).catch(() => {});
      },
    };
  }, log);

  /** Pings both connections; after an outage, subscribes again to every channel before announcing the resume. */
  const heartbeat = async () => {
    if (checking || closed) return;
    checking = true;
    try {
      await settleWithin(Promise.all([publishClient.ping(), subscribeClient.ping()]), HEARTBEAT_MS, () => {
        throw new Error('no answer to PING');
      });
      if (!healthy) {
        // Held from before the subscriptions are confirmed: nothing published after the listeners'
        // reads is delivered before they are done, and nothing in between is lost. (Events held may
        // be older than the reads: applying one again changes no membership, at most repeats a notice.)
        const hold = Symbol('resume');
        held ??= [];
        holds.add(hold);
        try {
          await pubsub.resubscribeAll();
        } catch (error) {
          releaseHold(hold);
          throw error;
        }
        const since = outageSince ?? new Date();
        healthy = true;
        metrics.pubsubUp.set({ mode: 'redis' }, 1);
        outageSince = null;
        if (everHealthy) log.info(`Redis at ${where} is reachable again: cross-instance delivery running`);
        everHealthy = true;
        const caughtUp = resumeListeners.map(async (listener) => {
          try {
            await listener(since);
          } catch (error) {
            log.error({ err: error }, 'a Redis resume listener failed');
          }
        });
        void settleWithin(
          Promise.all(caughtUp).then(() => {}),
          RESUME_HOLD_MS,
          () => {
            log.warn(`catching up after the outage took over ${RESUME_HOLD_MS} ms: delivering the events held meanwhile`);
          },
        ).then(() => releaseHold(hold));
      }
    } catch (error) {
      markDown((error as Error).message);
    } finally {
      checking = false;
    }
  };
  // Start-up waits for the first connection attempt (bounded), so a reachable Redis is in use from the first request.
  const connected = (client: Redis) =>
    new Promise<void>((resolve) => {
      if (client.status === 'ready') return resolve();
      const settle = () => {
        client.off('ready', settle);
        client.off('error', settle);
        resolve();
      };
      client.on('ready', settle);
      client.on('error', settle);
    });
  await settleWithin(
    Promise.all([connected(publishClient), connected(subscribeClient)]).then(() => {}),
    COMMAND_TIMEOUT_MS,
    () => {},
  );
  await heartbeat();
  if (!healthy) log.error(`Redis at ${where} is unreachable: serving without cross-instance delivery until it answers (/health reports 503 meanwhile)`);
  const timer = setInterval(() => void heartbeat(), HEARTBEAT_MS);

  return {
    pubsub,
    redis: publishClient,
    state: () => (healthy ? 'ready' : publishClient.status === 'ready' || publishClient.status === 'connecting' ? 'connecting' : 'unreachable'),
    available: () => healthy,
    onResume: (listener) => resumeListeners.push(listener),
    close: async () => {
      closed = true;
      clearInterval(timer);
      await Promise.all([publishClient.quit().catch(() => publishClient.disconnect()), subscribeClient.quit().catch(() => subscribeClient.disconnect())]);
    },
  };
}
