import type { Server, ServerWebSocket } from 'bun';
import type { Services } from '../services';
import type { PublicUser } from '../services/auth.service';
import { AppError, RateLimitedError } from '../services/errors';
import type { CatchUpEvent, HistoryGap } from '../services/message.service';
import { isHistoryGap } from '../services/message.service';
import type { BotStreamEvent, Listening, MessageEvent } from '../services/pubsub';
import { TokenBucket } from '../services/rate-limit';
import type { WsFrame } from '../services/validation';
import { parseInput, wsFrame } from '../services/validation';
import type { SocketClose, SocketSession } from './socket-session';
import { authenticateSocket, CLOSE, holdSocket } from './socket-session';

/** What a `/ws` socket carries from its upgrade: the authenticated user, or null to refuse it. */
export interface ChatSocketData {
  kind: 'chat';
  user: PublicUser | null;
  /** When its token expires (ms since the epoch); the socket is closed then. */
  expiresAt: number;
  /** Why a socket without a user is closed as soon as it opens: bad credentials, or a server fault. */
  refusal: SocketClose | null;
  /** Gives back what the open socket holds (see `holdSocket`); called when it closes. */
  release: (() => void) | null;
  socketId: string;
  rooms: Set<number>;
  bucket: TokenBucket;
  /** The catch-up stream of each room joined with `after`, ended when the socket leaves the room. */
  catchUps: Map<number, AsyncIterableIterator<CatchUpEvent>>;
  /** Catch-ups waiting for the socket's send buffer to drain; resumed on drain, leave and close. */
  drainWaiters: (() => void)[];
  /** Settles when this socket's last join or leave has; later frames wait for it. */
  membershipChange: Promise<unknown>;
}

type ChatSocket = ServerWebSocket<ChatSocketData>;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// Bun topics of a room: messages and bot streams apart, since a reconnecting socket takes its
// messages from a catch-up stream instead.
const messagesTopic = (chatId: number) => `chat:${chatId}:messages`;
const botTopic = (chatId: number) => `chat:${chatId}:bot`;

/** The original service's frames, built once per event and shared by every socket in the room. */
export const frames = {
  message: (event: MessageEvent) =>
    JSON.stringify({
      type: 'message',
      chat_id: event.chatId,
      message_id: event.id,
      username: event.username,
      content: event.content,
      is_bot: event.isBot,
      created_at: event.createdAt.toISOString(),
    }),
  botStream: (event: BotStreamEvent) =>
    JSON.stringify({
      type: 'bot_stream',
      chat_id: event.chatId,
      message_id: event.messageId,
      chunk: event.chunk,
      is_complete: event.isComplete,
      ...(event.isComplete ? { full_response: event.fullResponse ?? '' } : {}),
      ...(event.error ? { error: event.error } : {}),
      ...(event.stopped ? { stopped: true } : {}),
    }),
  historyGap: (gap: HistoryGap) => JSON.stringify({ type: 'history_gap', chat_id: gap.chatId, after: gap.after, before: gap.before }),
  error: (error: string) => JSON.stringify({ type: 'error', error }),
};

/** A catch-up pauses while this much is queued for its socket, instead of overrunning the backpressure limit. */
const CATCH_UP_BUFFER_BYTES = 256 * 1024;

interface Room {
  sockets: Set<ChatSocket>;
  registrations: Listening[];
  /** Settles once every registration is confirmed by the bus. */
  ready: Promise<unknown>;
}

/**
 * The `/ws` protocol of the original service. A room's pub/sub topics are bridged once per
 * process while any socket here has joined it; messages and bot streams go out through Bun's
 * native topic publish, serialized once per event.
 */
export class ChatSocketHub {
  private readonly rooms = new Map<number, Room>();
  private readonly invitees = new Map<number, { sockets: Set<ChatSocket>; registration: Listening }>();
  private server: Server<unknown> | undefined;

  constructor(
    private readonly services: Services,
    private readonly rateLimitPerSecond: number,
  ) {}

  /**
   * Authenticates `?token=` before upgrading. A bad token still upgrades, to be closed with 1008;
   * a token that could not be checked (the database down), with 1011.
   */
  async upgrade(request: Request, url: URL, server: Server<unknown>): Promise<Response | undefined> {
    this.server ??= server;
    let session: SocketSession | null = null;
    let refusal: SocketClose | null = null;
    try {
      session = await authenticateSocket(this.services.auth, url.searchParams.get('token'));
      if (!session) refusal = CLOSE.badCredentials;
    } catch (error) {
      console.error('/ws authentication failed', error);
      refusal = CLOSE.internalError;
    }
    const data: ChatSocketData = {
      kind: 'chat',
      user: session?.user ?? null,
      expiresAt: session?.expiresAt ?? 0,
      refusal,
      release: null,
      socketId: crypto.randomUUID(),
      rooms: new Set(),
      membershipChange: Promise.resolve(),
      catchUps: new Map(),
      drainWaiters: [],
      bucket: new TokenBucket(this.rateLimitPerSecond, Math.max(1, this.rateLimitPerSecond)),
    };
    return server.upgrade(request, { data }) ? undefined : new Response('Upgrade Required', { status: 426 });
  }

  open(ws: ChatSocket): void {
    const { user, expiresAt, refusal } = ws.data;
    if (!user) {
      const { code, reason } = refusal ?? CLOSE.badCredentials;
      ws.close(code, reason);
      return;
    }
    ws.data.release = holdSocket(this.services.sockets, { user, expiresAt }, ws);
    if (!ws.data.release) return;
    let invitee = this.invitees.get(user.id);
    if (!invitee) {
      const sockets = new Set<ChatSocket>();
      const registration = this.services.pubsub.on('user:event', user.id, (event) => {
        if (event.type !== 'chat_invite') return;
        const frame = JSON.stringify({ type: 'chat_invite', chat_id: event.chat.id, chat_name: event.chat.name, invited_by: event.invitedBy });
        for (const socket of sockets) socket.send(frame);
      });
      invitee = { sockets, registration };
      this.invitees.set(user.id, invitee);
    }
    invitee.sockets.add(ws);
  }

  async message(ws: ChatSocket, raw: string | Buffer): Promise<void> {
    const user = ws.data.user;
    if (!user) return;
    try {
      if (!ws.data.bucket.take()) {
        throw new RateLimitedError('Rate limit exceeded: slow down', ws.data.bucket.secondsUntilNext());
      }
      let parsed: unknown;
      try {
        // A binary frame is read as UTF-8 JSON too, strictly: invalid bytes are refused, never
        // stored as U+FFFD in their place.
        parsed = JSON.parse(typeof raw === 'string' ? raw : strictUtf8.decode(raw));
      } catch {
        throw new AppError('BAD_USER_INPUT', 'Invalid JSON');
      }
      const frame = parseInput(wsFrame, parsed);
      // Bun does not wait for one frame before the next: a `message` sent right after `join` must
      // still see the join done, while messages themselves may overlap.
      const previous = ws.data.membershipChange;
      const handled = previous.then(() => this.handle(ws, user, frame));
      if (frame.type === 'join' || frame.type === 'leave') ws.data.membershipChange = handled.catch(() => {});
      await handled;
    } catch (error) {
      if (error instanceof AppError) {
        ws.send(frames.error(error.message));
      } else {
        console.error('/ws frame failed', error);
        ws.send(frames.error('Internal server error'));
      }
    }
  }

  close(ws: ChatSocket): void {
    const { user } = ws.data;
    if (!user) return;
    for (const chatId of ws.data.rooms) this.leave(ws, user, chatId);
    const invitee = this.invitees.get(user.id);
    invitee?.sockets.delete(ws);
    if (invitee?.sockets.size === 0) {
      invitee.registration.stop();
      this.invitees.delete(user.id);
    }
  }

  private async handle(ws: ChatSocket, user: PublicUser, frame: WsFrame): Promise<void> {
    switch (frame.type) {
      case 'join':
        await this.services.chats.requireParticipant(user.id, frame.chat_id);
        // A socket that closed while the check ran has already left its rooms: joining now would
        // announce a user who is gone and keep the room bridged for a dead socket forever.
        if (ws.readyState !== WebSocket.OPEN || ws.data.rooms.has(frame.chat_id)) return;
        this.join(ws, user, frame.chat_id);
        if (frame.after !== undefined) await this.catchUp(ws, user, frame.chat_id, frame.after);
        else ws.subscribe(messagesTopic(frame.chat_id));
        // Later frames of this socket wait for the join: across instances, until Redis confirmed
        // the room's subscription. While Redis is down the join stands; the outage's repair covers it.
        await this.rooms.get(frame.chat_id)?.ready.catch(() => {});
        return;
      case 'leave':
        if (ws.data.rooms.has(frame.chat_id)) this.leave(ws, user, frame.chat_id);
        return;
      case 'message':
        await this.services.messages.send(user, frame.chat_id, { content: frame.content });
        return;
      case 'typing':
        await this.services.messages.typing(user, frame.chat_id, ws.data.socketId);
        return;
      case 'stop':
        await this.services.bot.stop(user, frame.chat_id);
        return;
    }
  }

  /** Resumes the catch-ups paused on this socket's send buffer. */
  drain(ws: ChatSocket): void {
    for (const resume of ws.data.drainWaiters.splice(0)) resume();
  }

  private join(ws: ChatSocket, user: PublicUser, chatId: number): void {
    ws.data.rooms.add(chatId);
    const room = this.roomFor(chatId);
    room.sockets.add(ws);
    // Someone joining mid-answer first gets the text so far, then the live deltas: both in this tick.
    for (const [messageId, text] of this.services.feeds.answersInProgress(chatId)) {
      ws.send(frames.botStream({ chatId, messageId, chunk: text, isComplete: false }));
    }
    ws.subscribe(botTopic(chatId));
    this.services.pubsub.publish('chat:presence', chatId, { chatId, username: user.username, kind: 'joined', socketId: ws.data.socketId });
  }

  private leave(ws: ChatSocket, user: PublicUser, chatId: number): void {
    ws.data.rooms.delete(chatId);
    // A closing socket has already left its Bun topics.
    if (ws.readyState === WebSocket.OPEN) {
      ws.unsubscribe(messagesTopic(chatId));
      ws.unsubscribe(botTopic(chatId));
    }
    void ws.data.catchUps.get(chatId)?.return?.();
    ws.data.catchUps.delete(chatId);
    this.drain(ws);
    const room = this.rooms.get(chatId);
    room?.sockets.delete(ws);
    this.services.pubsub.publish('chat:presence', chatId, { chatId, username: user.username, kind: 'left', socketId: ws.data.socketId });
    if (room?.sockets.size === 0) {
      for (const registration of room.registrations) registration.stop();
      this.rooms.delete(chatId);
    }
  }

  /**
   * A join with `after`: the messages the socket missed, then live ones, from one deduplicated
   * stream of its own (the service's rule, shared with GraphQL's `messageAdded(after)`). The stream
   * belongs to the socket's room entry: leaving the room or closing the socket ends it.
   */
  private async catchUp(ws: ChatSocket, user: PublicUser, chatId: number, after: number): Promise<void> {
    const events = await this.services.messages.subscribe(user, chatId, after);
    // Left (or closed) while the check ran: the stream never started, so there is nothing to release.
    if (!ws.data.rooms.has(chatId)) return;
    ws.data.catchUps.set(chatId, events);
    void this.pump(ws, events);
  }

  /** Sends a catch-up stream's events to its socket, pausing while the socket's send buffer is full. */
  private async pump(ws: ChatSocket, events: AsyncIterableIterator<CatchUpEvent>): Promise<void> {
    try {
      for await (const event of events) {
        ws.send(isHistoryGap(event) ? frames.historyGap(event) : frames.message(event));
        if (ws.getBufferedAmount() > CATCH_UP_BUFFER_BYTES && ws.readyState === WebSocket.OPEN) {
          await new Promise<void>((resolve) => ws.data.drainWaiters.push(resolve));
        }
      }
    } catch (error) {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (error instanceof AppError) ws.send(frames.error(error.message));
      else {
        console.error('/ws catch-up failed', error);
        ws.send(frames.error('Internal server error'));
      }
    }
  }

  private roomFor(chatId: number): Room {
    const existing = this.rooms.get(chatId);
    if (existing) return existing;
    const sockets = new Set<ChatSocket>();
    const { pubsub, feeds } = this.services;
    // Everyone in the room, the sender included: one serialization, Bun's native fan-out.
    const toRoom = (topic: string, frame: string) => this.server?.publish(topic, frame);
    // Everyone but the socket the event came from.
    const toOthers = (frame: string, socketId: string | null) => {
      for (const socket of sockets) if (socket.data.socketId !== socketId) socket.send(frame);
    };
    const registrations = [
      feeds.onMessage(chatId, (event: MessageEvent) => toRoom(messagesTopic(chatId), frames.message(event))),
      feeds.onBot(chatId, (event: BotStreamEvent) => toRoom(botTopic(chatId), frames.botStream(event))),
      pubsub.on('chat:typing', chatId, (event) => toOthers(JSON.stringify({ type: 'typing', chat_id: chatId, username: event.username }), event.socketId)),
      pubsub.on('chat:presence', chatId, (event) =>
        toOthers(JSON.stringify({ type: event.kind === 'joined' ? 'user_joined' : 'user_left', chat_id: chatId, username: event.username }), event.socketId),
      ),
    ];
    const room = { sockets, registrations, ready: Promise.all(registrations.map((registration) => registration.ready)) };
    this.rooms.set(chatId, room);
    return room;
  }
}
