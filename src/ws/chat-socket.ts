import type { Server, ServerWebSocket } from 'bun';
import type { Logger } from '../log';
import type { Services } from '../services';
import type { PublicUser } from '../services/auth.service';
import { AppError, domainError, RateLimitedError } from '../services/errors';
import type { HistoryGap, RoomCatchUpEvent } from '../services/message.service';
import { isHistoryGap } from '../services/message.service';
import type { AttachmentUrls } from '../serializers';
import { assistantJson, botStreamFields, chatJson, messageFrameFields, reactionsJson, readReceiptsJson, userJson } from '../serializers';
import type { AssistantEvent, BotStreamEvent, ChatSummary, Listening, MessageChange, MessageEvent, ReactionEvent, UserEvent } from '../services/pubsub';
import { endsMembership, isMessageChange, readiness, startsMembership } from '../services/pubsub';
import { TokenBucket } from '../services/rate-limit';
import type { WsFrame } from '../services/validation';
import { parseInput, wsFrame } from '../services/validation';
import type { SocketClose, SocketSession, SocketState } from './socket-session';
import { authenticateSocket, CLOSE, holdSocket, openingState } from './socket-session';
import { removeFirst } from '../services/lists';

/** What a `/ws` socket carries from its upgrade: the authenticated user, or null to refuse it. */
export interface ChatSocketData extends SocketState {
  kind: 'chat';
  /** Its user, authenticated at the upgrade (`expiresAt` is then its token's); null to refuse it. */
  user: PublicUser | null;
  /** Why a socket without a user is closed as soon as it opens: bad credentials, or a server fault. */
  refusal: SocketClose | null;
  /**
   * The chats of its user this socket receives messages from, joined or not, each with where the chat's
   * deliveries stood when this socket began receiving them (see RoomFeeds.deliveredSince).
   */
  memberships: Map<number, number>;
  // What follows is made on first use: an idle socket holds none of it, and most sockets are idle.
  /** Tells the rooms it joined or typed in which socket an event came from (see `socketIdOf`). */
  socketId?: string;
  /** The rooms it joined: their bot streams, typing and join/leave notices too. */
  rooms?: Set<number>;
  /** Its frame budget, from its first frame on. */
  bucket?: TokenBucket;
  /** When this socket last told each room its user is typing: keystrokes in between are coalesced. */
  typingAt?: Map<number, number>;
  /** The catch-up stream of each room joined with `after`, ended when the socket leaves the room. */
  catchUps?: Map<number, AsyncIterableIterator<RoomCatchUpEvent>>;
  /** Catch-ups waiting for the socket's send buffer to drain; resumed on drain, leave and close. */
  drainWaiters?: (() => void)[];
  /**
   * Settles when this socket's memberships are loaded and its last join or leave is done; later frames
   * wait for it. Back to SETTLED once it has settled (see changeMemberships).
   */
  membershipChange: Promise<unknown>;
}

type ChatSocket = ServerWebSocket<ChatSocketData>;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** What a socket's `membershipChange` starts as: nothing to wait for. */
const SETTLED: Promise<unknown> = Promise.resolve();

/**
 * Makes `change` what the socket's later frames wait for, until it settles: then SETTLED again, unless a
 * later change took its place. An idle socket holds no settled promise of its own. A failure is the
 * caller's to report: later frames only wait for it to settle.
 */
function changeMemberships(ws: ChatSocket, change: Promise<unknown>): void {
  const settled = change.then(
    () => {},
    () => {},
  );
  ws.data.membershipChange = settled;
  void settled.then(() => {
    if (ws.data.membershipChange === settled) ws.data.membershipChange = SETTLED;
  });
}

/**
 * Calls `visit` for each of `sockets` still open with each chat it receives that its user is not in
 * (`inChat` false), and each chat its user is in that it does not receive, by `inChats`.
 */
function forEachStaleMembership(
  sockets: ChatSocket[],
  inChats: Map<number, Set<number>>,
  visit: (ws: ChatSocket, userId: number, chatId: number, inChat: boolean) => void,
): void {
  for (const ws of sockets) {
    const userId = ws.data.user?.id;
    const chatIds = userId === undefined ? undefined : inChats.get(userId);
    if (ws.readyState !== WebSocket.OPEN || userId === undefined || !chatIds) continue;
    for (const chatId of [...ws.data.memberships.keys()]) if (!chatIds.has(chatId)) visit(ws, userId, chatId, false);
    for (const chatId of chatIds) if (!ws.data.memberships.has(chatId)) visit(ws, userId, chatId, true);
  }
}

/**
 * The socket's id, made when it first joins a room or types: events it causes carry it, so the room
 * tells everyone but the socket they came from. Unique across instances (events travel through Redis).
 */
function socketIdOf(ws: ChatSocket): string {
  return (ws.data.socketId ??= crypto.randomUUID());
}

// Bun topics of a chat: its messages, their edits and deletions reach every socket of its participants;
// its bot streams only the sockets that joined. A socket catching up takes its messages from its catch-up
// stream instead, so what every participant's socket must get whether or not it is catching up
// (reactions) has a topic of its own.
const messagesTopic = (chatId: number) => `chat:${chatId}:messages`;
const botTopic = (chatId: number) => `chat:${chatId}:bot`;
const membersTopic = (chatId: number) => `chat:${chatId}:members`;

/** The frames of both generations of the original service, built once per event and shared by every socket that gets it. */
export const frames = {
  message: (event: MessageEvent, urls: AttachmentUrls) => JSON.stringify(messageFrameFields(event, urls, 'message')),
  /** An edit as the message it made, in the `message` frame's fields; a deletion by ids only. */
  change: (change: MessageChange, urls: AttachmentUrls) =>
    change.kind === 'updated'
      ? JSON.stringify(messageFrameFields(change.message, urls, 'message_updated'))
      : JSON.stringify({ type: 'message_deleted', chat_id: change.chatId, message_id: change.messageId }),
  /** The seed's delta fields, and the later nested message whose content is the whole text so far. */
  botStream: (event: BotStreamEvent, textSoFar: string, botName: string) =>
    JSON.stringify({ type: 'bot_stream', ...botStreamFields(event, textSoFar, botName) }),
  /** The change, and the message's reactions after it. */
  reaction: (event: ReactionEvent) =>
    JSON.stringify({
      type: 'reaction',
      chat_id: event.chatId,
      message_id: event.messageId,
      emoji: event.emoji,
      user_id: event.userId,
      username: event.username,
      action: event.action,
      reactions: reactionsJson(event.reactions),
    }),
  /** A change to the room's assistants: `assistant_updated` (as it is now), `assistant_deleted` or `assistant_memory_cleared`. */
  assistant: (event: AssistantEvent) =>
    JSON.stringify(
      event.kind === 'updated'
        ? { type: 'assistant_updated', chat_id: event.chatId, assistant: assistantJson(event.assistant) }
        : { type: event.kind === 'deleted' ? 'assistant_deleted' : 'assistant_memory_cleared', chat_id: event.chatId, assistant_id: event.assistantId },
    ),
  historyGap: (gap: HistoryGap) => JSON.stringify({ type: 'history_gap', chat_id: gap.chatId, after: gap.after, before: gap.before }),
  /** Pushes about the user's own chats, in the later API's shapes (with the seed's flat `chat_invite` fields kept). */
  userEvent: (event: UserEvent): string | null => {
    switch (event.type) {
      case 'chat_created':
        return JSON.stringify({ type: 'chat_created', chat: chatJson(event.chat), notification: `You've been added to a new chat by ${event.addedBy}` });
      case 'chat_invite':
        return JSON.stringify({
          type: 'chat_invite',
          chat_id: event.chat.id,
          chat_name: event.chat.name,
          invited_by: event.invitedBy,
          chat: chatJson(event.chat),
          notification: `${event.invitedBy} added you to ${event.chat.name ?? 'a chat'}`,
        });
      case 'removed_from_chat':
        return JSON.stringify({
          type: 'removed_from_chat',
          chat_id: event.chatId,
          notification: `You were removed from ${event.chatName ?? 'a chat'} by ${event.removedBy}`,
        });
      case 'chat_deleted':
        return JSON.stringify({ type: 'chat_deleted', chat_id: event.chatId, notification: `${event.chatName ?? 'Chat'} was deleted by ${event.deletedBy}` });
      case 'user_left':
        return JSON.stringify({
          type: 'user_left',
          chat_id: event.chatId,
          user_id: event.userId,
          username: event.username,
          ...(event.how === 'left' ? { notification: `${event.username} left ${event.chatName ?? 'the chat'}` } : {}),
        });
      case 'read_receipts_updated':
        return JSON.stringify({
          type: 'read_receipts_updated',
          chat_id: event.chatId,
          read_receipts: readReceiptsJson(event.receipts),
        });
      case 'presence':
        return JSON.stringify({
          type: 'presence',
          user_id: event.userId,
          username: event.username,
          status: event.status,
          last_seen_at: event.lastSeenAt?.toISOString() ?? null,
        });
      case 'user_updated':
        return JSON.stringify({ type: 'user_updated', user: userJson(event.user) });
      // Membership changes of the user's own doing: the original told its sockets nothing.
      case 'joined_chat':
      case 'left_chat':
        return null;
    }
  },
  /**
   * The frames of the user events an outage of Redis lost, made good from the database (see
   * ChatSocketHub.recheckMemberships): the same types and fields, and a notification that does not
   * name who did it, which is not known any more. The database does not tell a removal from a leave,
   * nor who deleted a chat that is gone: a chat the user is no longer in is `removed_from_chat` while
   * it exists and `chat_deleted` once gone, even when they left or deleted it themselves (the original
   * sent them no frame then); either way their client drops the chat.
   */
  membershipRepair: {
    added: (chat: ChatSummary) => JSON.stringify({ type: 'chat_created', chat: chatJson(chat), notification: `You've been added to ${chat.name ?? 'a chat'}` }),
    removed: (chat: ChatSummary) =>
      JSON.stringify({ type: 'removed_from_chat', chat_id: chat.id, notification: `You are no longer in ${chat.name ?? 'a chat'}` }),
    deleted: (chatId: number) => JSON.stringify({ type: 'chat_deleted', chat_id: chatId, notification: 'Chat was deleted' }),
  },
  error: (error: string) => JSON.stringify({ type: 'error', error }),
};

/** A catch-up pauses while this much is queued for its socket, instead of overrunning the backpressure limit. */
const CATCH_UP_BUFFER_BYTES = 256 * 1024;

/** At most one `typing` notice per socket and room in this long: the rest of a burst of keystrokes is dropped, uncounted. */
const TYPING_EVERY_MS = 1_000;

interface Room {
  /** Sockets of the chat's participants, which receive its messages and reactions. */
  members: Set<ChatSocket>;
  /** Sockets that joined it: bot streams, typing and join/leave notices. */
  joined: Set<ChatSocket>;
  registrations: Listening[];
  /** Settles once every registration is confirmed by the bus. */
  ready: Promise<unknown>;
}

/**
 * The `/ws` protocol of the original service, in both generations. A socket receives the messages
 * (and their edits and deletions) of every chat its user takes part in, joined or not, once each; joining a room adds its bot
 * streams, typing and its join/leave notices (`user_joined`, `user_left`). A chat's pub/sub topics
 * are bridged once per process while any socket here belongs to it; messages and bot streams go out
 * through Bun's native topic publish, serialized once per event. Each user's events (added,
 * invited, removed, chat deleted, receipts, the presence of the people they share a chat with) are
 * pushed to their sockets and keep their memberships current.
 */
export class ChatSocketHub {
  private readonly rooms = new Map<number, Room>();
  /**
   * The open sockets of each user with one here (an array: a user has a few, and a set of one costs five
   * times an array of one). The user's events reach them through one listener shared by every user
   * (onUserEvent): a connected user costs this entry and their channel, no object more.
   */
  private readonly users = new Map<number, ChatSocket[]>();
  /** For each recheck running (see recheckMemberships), the memberships (`userId:chatId`) an event changed meanwhile. */
  private readonly rechecks = new Set<Set<string>>();
  private server: Server<unknown> | undefined;
  private readonly log: Logger;

  constructor(
    private readonly services: Services,
    private readonly rateLimitPerSecond: number,
    /** Shown as the author of bot answers in the later clients' nested message. */
    private readonly botName: string,
  ) {
    this.log = services.log.child({ component: 'ws' });
    services.outageRepair.checkMemberships("bringing /ws sockets' chats up to date", () => this.recheckMemberships());
  }

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
      this.log.error({ err: error }, '/ws authentication failed');
      refusal = CLOSE.internalError;
    }
    const data: ChatSocketData = {
      kind: 'chat',
      user: session?.user ?? null,
      refusal,
      memberships: new Map(),
      membershipChange: SETTLED,
      ...openingState(),
      expiresAt: session?.expiresAt ?? Number.POSITIVE_INFINITY,
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
    if (!holdSocket(this.services, { user, expiresAt }, ws)) return;
    const sockets = this.users.get(user.id);
    if (sockets) sockets.push(ws);
    else {
      this.users.set(user.id, [ws]);
      // Not awaited: while Redis is unreachable the channel stands, and is subscribed again when it returns.
      void this.services.pubsub.listen('user:event', user.id, this.onUserEvent);
    }
    // Listening to the user's events first, then reading their chats: a chat added meanwhile is in one or both.
    changeMemberships(
      ws,
      this.services.chats
        .chatIdsOf(user.id)
        .then((chatIds) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          for (const chatId of chatIds) this.addMembership(ws, chatId);
          // Frames wait until Redis confirmed the rooms (or failed to: the outage's repair covers that).
          return Promise.all(chatIds.map((chatId) => this.roomFor(chatId).ready.catch(() => {})));
        })
        .catch((error: unknown) => {
          this.log.error({ err: error, userId: user.id }, 'loading the chats of a /ws socket failed');
          ws.close(CLOSE.internalError.code, CLOSE.internalError.reason);
        }),
    );
  }

  async message(ws: ChatSocket, raw: string | Buffer): Promise<void> {
    const user = ws.data.user;
    if (!user) return;
    try {
      let parsed: unknown;
      try {
        // A binary frame is read as UTF-8 JSON too, strictly: invalid bytes are refused, never
        // stored as U+FFFD in their place.
        parsed = JSON.parse(typeof raw === 'string' ? raw : strictUtf8.decode(raw));
      } catch {
        this.takeFrameBudget(ws);
        throw new AppError('BAD_USER_INPUT', 'Invalid JSON');
      }
      // Clients send `typing` on every keystroke: a burst costs one notice and none of the budget
      // that lets the socket send messages.
      if (this.coalescedTyping(ws, parsed)) return;
      this.takeFrameBudget(ws);
      const frame = parseInput(wsFrame, parsed);
      // Bun does not wait for one frame before the next: a `message` sent right after `join` must
      // still see the join done, while messages themselves may overlap.
      const previous = ws.data.membershipChange;
      const handled = previous.then(() => this.handle(ws, user, frame, parsed));
      if (frame.type === 'join' || frame.type === 'leave') changeMemberships(ws, handled);
      await handled;
    } catch (error) {
      const domain = domainError(error);
      if (domain) {
        ws.send(frames.error(domain.message));
      } else {
        this.log.error({ err: error, userId: user.id }, 'a /ws frame failed');
        ws.send(frames.error('Internal server error'));
      }
    }
  }

  close(ws: ChatSocket): void {
    const { user } = ws.data;
    if (!user) return;
    for (const chatId of ws.data.rooms ?? []) this.leave(ws, user, chatId);
    for (const chatId of ws.data.memberships.keys()) this.removeMembership(ws, chatId);
    const sockets = this.users.get(user.id);
    if (!sockets) return;
    removeFirst(sockets, ws);
    if (sockets.length === 0) {
      this.services.pubsub.unlisten('user:event', user.id, this.onUserEvent);
      this.users.delete(user.id);
    }
  }

  /** Resumes the catch-ups paused on this socket's send buffer. */
  drain(ws: ChatSocket): void {
    for (const resume of ws.data.drainWaiters?.splice(0) ?? []) resume();
  }

  private takeFrameBudget(ws: ChatSocket): void {
    const bucket = (ws.data.bucket ??= new TokenBucket(this.rateLimitPerSecond, Math.max(1, this.rateLimitPerSecond)));
    if (!bucket.take()) {
      this.services.metrics.refused('ws_frame');
      throw new RateLimitedError('Rate limit exceeded: slow down', bucket.secondsUntilNext());
    }
  }

  /** True when `parsed` is a `typing` frame for a room this socket told of its typing within TYPING_EVERY_MS. */
  private coalescedTyping(ws: ChatSocket, parsed: unknown): boolean {
    if (typeof parsed !== 'object' || parsed === null) return false;
    const { type, chat_id: chatId } = parsed as { type?: unknown; chat_id?: unknown };
    if (type !== 'typing' || typeof chatId !== 'number') return false;
    const last = ws.data.typingAt?.get(chatId);
    return last !== undefined && performance.now() - last < TYPING_EVERY_MS;
  }

  /** `parsed` is the frame as it came: what it carries besides its ids (content, attachments, thread, emoji) is the service's to check. */
  private async handle(ws: ChatSocket, user: PublicUser, frame: WsFrame, parsed: unknown): Promise<void> {
    switch (frame.type) {
      case 'join': {
        // Checked again when a removal heard meanwhile covers it: that removal is handled already, and
        // the join, acting on the "yes" read before it, would add the membership back and with it the
        // chat's messages. The removal dropped the cached answer, so the second check reads the
        // database. Nothing awaits between the last look and the membership being added.
        for (;;) {
          const leftSinceCheck = await this.services.chats.requireParticipantSince(user.id, frame.chat_id);
          if (!leftSinceCheck()) break;
        }
        // A socket that closed while the check ran has already left its rooms: joining now would
        // announce a user who is gone and keep the room bridged for a dead socket forever.
        if (ws.readyState !== WebSocket.OPEN || ws.data.rooms?.has(frame.chat_id)) return;
        this.addMembership(ws, frame.chat_id);
        this.join(ws, user, frame.chat_id);
        if (frame.after !== undefined) await this.catchUp(ws, user, frame.chat_id, frame.after);
        // Later frames of this socket wait for the join: across instances, until Redis confirmed
        // the room's subscription. While Redis is down the join stands; the outage's repair covers it.
        await this.rooms.get(frame.chat_id)?.ready.catch(() => {});
        return;
      }
      case 'leave':
        if (ws.data.rooms?.has(frame.chat_id)) this.leave(ws, user, frame.chat_id);
        return;
      case 'message':
        await this.services.messages.send(user, frame.chat_id, parsed);
        return;
      case 'typing':
        await this.services.messages.typing(user, frame.chat_id, socketIdOf(ws));
        (ws.data.typingAt ??= new Map()).set(frame.chat_id, performance.now());
        return;
      case 'stop':
        await this.services.bot.stop(user, frame.chat_id);
        return;
      case 'regenerate':
        await this.services.bot.regenerate(user, frame.chat_id, frame.message_id);
        return;
      case 'edit':
        await this.services.messageChanges.edit(user, frame.chat_id, frame.message_id, parsed);
        return;
      case 'delete':
        await this.services.messageChanges.delete(user, frame.chat_id, frame.message_id);
        return;
      case 'react':
        await this.services.reactions.add(user, frame.chat_id, frame.message_id, parsed);
        return;
      case 'unreact':
        await this.services.reactions.remove(user, frame.chat_id, frame.message_id, (parsed as { emoji?: unknown }).emoji);
        return;
    }
  }

  /** Pushes a user's event to their sockets here, and follows the memberships it changes. One listener for every user here. */
  private readonly onUserEvent = (event: UserEvent, userId: number): void => {
    const sockets = this.users.get(userId);
    if (!sockets || !this.services.presence.isCurrent(event)) return;
    const frame = frames.userEvent(event);
    const started = startsMembership(event);
    const ended = endsMembership(event);
    const changed = started ?? ended;
    if (changed !== null) for (const touched of this.rechecks) touched.add(`${userId}:${changed}`);
    for (const ws of sockets.slice()) {
      if (started !== null) this.addMembership(ws, started);
      if (ended !== null) this.endMembership(ws, ended);
      if (frame) ws.send(frame);
    }
    if (frame) this.services.metrics.delivered('ws', sockets.length);
  };

  /**
   * After a Redis outage, the user events that change memberships (added, invited, removed, chat
   * deleted) may never have reached this instance: each socket here is brought up to its user's chats
   * as the database has them, and told as frames.membershipRepair says. It runs while the bus holds
   * the events arriving meanwhile (EventBus.onResume, up to RESUME_HOLD_MS), after each socket's own
   * joins and leaves in flight: the database is read after both, so it is never older than what the
   * socket holds. One statement for every 500 users' chats, one for the chats that changed. When the
   * database cannot be read, the sockets are closed with 1013: their clients reconnect and read their
   * chats anew.
   */
  private async recheckMemberships(): Promise<void> {
    const sockets = [...this.users.values()].flat();
    if (sockets.length === 0) return;
    // A membership an event changed while this ran (past the bus's hold) keeps what the event did.
    const touched = new Set<string>();
    this.rechecks.add(touched);
    try {
      await Promise.all(sockets.map((ws) => ws.data.membershipChange));
      const inChats = await this.services.chats.chatIdsOfEach(sockets.map((ws) => ws.data.user!.id));
      const changed = new Set<number>();
      forEachStaleMembership(sockets, inChats, (_ws, _userId, chatId) => changed.add(chatId));
      if (changed.size === 0) return;
      const chats = await this.services.chats.summariesOf([...changed]);
      forEachStaleMembership(sockets, inChats, (ws, userId, chatId, inChat) => {
        if (touched.has(`${userId}:${chatId}`) || !changed.has(chatId)) return;
        const chat = chats.get(chatId);
        if (!inChat) {
          this.endMembership(ws, chatId);
          ws.send(chat ? frames.membershipRepair.removed(chat) : frames.membershipRepair.deleted(chatId));
        } else if (chat) {
          this.addMembership(ws, chatId);
          // The original told a chat's owner nothing of its creation either.
          if (chat.ownerId !== userId) ws.send(frames.membershipRepair.added(chat));
        }
      });
    } catch (error) {
      this.log.error({ err: error }, "bringing /ws sockets' chats up to date after the Redis outage failed: closing them");
      for (const ws of sockets) ws.close(CLOSE.tryAgainLater.code, CLOSE.tryAgainLater.reason);
    } finally {
      this.rechecks.delete(touched);
    }
  }

  /** The socket's user is no longer in the chat: out of its room, unannounced, and off its messages. */
  private endMembership(ws: ChatSocket, chatId: number): void {
    if (ws.data.rooms?.has(chatId) && ws.data.user) this.leave(ws, ws.data.user, chatId, { announce: false });
    this.removeMembership(ws, chatId);
  }

  private addMembership(ws: ChatSocket, chatId: number): void {
    if (ws.data.memberships.has(chatId) || ws.readyState !== WebSocket.OPEN) return;
    ws.data.memberships.set(chatId, this.services.feeds.messageSequence(chatId));
    this.roomFor(chatId).members.add(ws);
    ws.subscribe(messagesTopic(chatId));
    ws.subscribe(membersTopic(chatId));
  }

  private removeMembership(ws: ChatSocket, chatId: number): void {
    if (!ws.data.memberships.delete(chatId)) return;
    ws.data.typingAt?.delete(chatId);
    // A closing socket has already left its Bun topics.
    if (ws.readyState === WebSocket.OPEN) {
      ws.unsubscribe(messagesTopic(chatId));
      ws.unsubscribe(membersTopic(chatId));
    }
    const room = this.rooms.get(chatId);
    room?.members.delete(ws);
    if (room?.members.size === 0) {
      for (const registration of room.registrations) registration.stop();
      this.rooms.delete(chatId);
    }
  }

  private join(ws: ChatSocket, user: PublicUser, chatId: number): void {
    (ws.data.rooms ??= new Set()).add(chatId);
    this.roomFor(chatId).joined.add(ws);
    // Someone joining mid-answer first gets the text so far, then the live deltas: both in this tick.
    for (const snapshot of this.services.feeds.answersInProgress(chatId)) {
      ws.send(frames.botStream(snapshot, snapshot.chunk, this.botName));
      this.services.metrics.delivered('ws', 1);
    }
    ws.subscribe(botTopic(chatId));
    this.services.pubsub.publish('chat:room-presence', chatId, { chatId, username: user.username, kind: 'joined', socketId: socketIdOf(ws) });
  }

  /** Leaves the joined room; its messages keep coming while the user is a participant. `announce: false` when they are not any more. */
  private leave(ws: ChatSocket, user: PublicUser, chatId: number, { announce = true } = {}): void {
    ws.data.rooms?.delete(chatId);
    const catchUp = ws.data.catchUps?.get(chatId);
    ws.data.catchUps?.delete(chatId);
    if (ws.readyState === WebSocket.OPEN) {
      ws.unsubscribe(botTopic(chatId));
      // Back from its own catch-up stream to the room's topic, in one tick: nothing missed, nothing twice.
      if (catchUp && ws.data.memberships.has(chatId)) ws.subscribe(messagesTopic(chatId));
    }
    void catchUp?.return?.();
    this.drain(ws);
    this.rooms.get(chatId)?.joined.delete(ws);
    if (announce) this.services.pubsub.publish('chat:room-presence', chatId, { chatId, username: user.username, kind: 'left', socketId: socketIdOf(ws) });
  }

  /**
   * A join with `after`: the edits, deletions and messages the socket missed, then live ones, from
   * one deduplicated stream of its own (MessageService.catchUp), in place of the room's topic. The
   * stream belongs to the socket's room entry: leaving the room, leaving the chat or closing the
   * socket ends it.
   */
  private async catchUp(ws: ChatSocket, user: PublicUser, chatId: number, after: number): Promise<void> {
    // Off the room's topic now; what the topic already gave this socket is left out of its replay,
    // and what is delivered until the stream listens is in the replay: each message once.
    ws.unsubscribe(messagesTopic(chatId));
    const delivered = this.services.feeds.deliveredSince(chatId, ws.data.memberships.get(chatId) ?? 0);
    const backOnTopic = () => {
      if (ws.readyState === WebSocket.OPEN && ws.data.memberships.has(chatId) && !ws.data.catchUps?.has(chatId)) ws.subscribe(messagesTopic(chatId));
    };
    let events: AsyncIterableIterator<RoomCatchUpEvent>;
    try {
      events = await this.services.messages.catchUp(user, chatId, after, delivered);
    } catch (error) {
      backOnTopic();
      throw error;
    }
    // Left (or closed) while the check ran: the stream never started, so there is nothing to release.
    if (!ws.data.rooms?.has(chatId) || ws.readyState !== WebSocket.OPEN) return backOnTopic();
    (ws.data.catchUps ??= new Map()).set(chatId, events);
    void this.pump(ws, events);
  }

  /** Sends a catch-up stream's events to its socket, pausing while the socket's send buffer is full. */
  private async pump(ws: ChatSocket, events: AsyncIterableIterator<RoomCatchUpEvent>): Promise<void> {
    try {
      for await (const event of events) {
        ws.send(
          isHistoryGap(event)
            ? frames.historyGap(event)
            : isMessageChange(event)
              ? frames.change(event, this.services.attachments)
              : frames.message(event, this.services.attachments),
        );
        this.services.metrics.delivered('ws', 1);
        if (ws.getBufferedAmount() > CATCH_UP_BUFFER_BYTES && ws.readyState === WebSocket.OPEN) {
          await new Promise<void>((resolve) => (ws.data.drainWaiters ??= []).push(resolve));
        }
      }
    } catch (error) {
      if (ws.readyState !== WebSocket.OPEN) return;
      const domain = domainError(error);
      if (domain) ws.send(frames.error(domain.message));
      else {
        this.log.error({ err: error }, 'a /ws catch-up failed');
        ws.send(frames.error('Internal server error'));
      }
    }
  }

  private roomFor(chatId: number): Room {
    const existing = this.rooms.get(chatId);
    if (existing) return existing;
    const joined = new Set<ChatSocket>();
    const { pubsub, feeds, metrics } = this.services;
    // Every socket on the topic, the sender's included: one serialization, Bun's native fan-out,
    // counted by the topic's subscriber count (one lookup, no work per socket).
    const toTopic = (topic: string, frame: string) => {
      if (!this.server) return;
      this.server.publish(topic, frame);
      metrics.delivered('ws', this.server.subscriberCount(topic));
    };
    // Every joined socket but the one the event came from.
    const toOthers = (frame: string, socketId: string | null) => {
      let sent = 0;
      for (const socket of joined) {
        if (socket.data.socketId === socketId) continue;
        socket.send(frame);
        sent++;
      }
      metrics.delivered('ws', sent);
    };
    const registrations = [
      feeds.onMessage(chatId, (event: MessageEvent) => toTopic(messagesTopic(chatId), frames.message(event, this.services.attachments))),
      feeds.onChange(chatId, (change: MessageChange) => toTopic(messagesTopic(chatId), frames.change(change, this.services.attachments))),
      feeds.onBot(chatId, (event: BotStreamEvent, textSoFar) => toTopic(botTopic(chatId), frames.botStream(event, textSoFar, this.botName))),
      pubsub.on('chat:reaction', chatId, (event) => toTopic(membersTopic(chatId), frames.reaction(event))),
      pubsub.on('chat:assistant', chatId, (event) => toTopic(membersTopic(chatId), frames.assistant(event))),
      pubsub.on('chat:typing', chatId, (event) => toOthers(JSON.stringify({ type: 'typing', chat_id: chatId, username: event.username }), event.socketId)),
      pubsub.on('chat:room-presence', chatId, (event) =>
        toOthers(JSON.stringify({ type: event.kind === 'joined' ? 'user_joined' : 'user_left', chat_id: chatId, username: event.username }), event.socketId),
      ),
    ];
    const room = {
      members: new Set<ChatSocket>(),
      joined,
      registrations,
      ready: readiness(Promise.all(registrations.map((registration) => registration.ready))),
    };
    this.rooms.set(chatId, room);
    return room;
  }
}
