import type { Config } from '../config';
import { sharedSqliteFile } from '../config';
import type { Database } from '../db/client';
import type { Logger } from '../log';
import type { Metrics } from '../metrics';
import type { AuthGuards } from './auth.service';
import { AuthService } from './auth.service';
import { ProfileService } from './profile.service';
import { AttachmentService } from './attachments/attachment.service';
import { DatabaseFileStore, DiskFileStore } from './attachments/file-store';
import { AttachmentLinks } from './attachments/links';
import { UploadAdmission } from './attachments/upload-admission';
import { BotService } from './bot.service';
import { AssistantService } from './bot/assistant.service';
import type { UsageService } from './bot/usage.service';
import { localRoomLock, redisRoomLock } from './room-lock';
import { ChatService } from './chat.service';
import { LoginThrottle } from './login-throttle';
import { Memberships } from './memberships';
import { MessageChangeService } from './message-change.service';
import { MessageService } from './message.service';
import { OutageRepair } from './outage-repair';
import { insertRowsFor, MessageWriter } from './message-writer';
import type { EventBus, PubSub } from './pubsub';
import { RoomFeeds, VISIBLE_STATUSES } from './room-feed';
import { PasswordHasher } from './password-hasher';
import { RedisPresenceStore } from './presence-redis';
import { PresenceService } from './presence.service';
import { LocalPresenceStore } from './presence-store';
import { KeyedRateLimiter, WindowCounter } from './rate-limit';
import { ReactionService } from './reaction.service';
import { ReadStateService } from './read-state.service';
import { searchEngines } from './search/engines';
import type { SearchStatements } from './search/message-search.service';
import { MessageSearchService } from './search/message-search.service';
import type { SearchIndex } from './search/search-index';
import { indexedOnWrite, SqliteSearchIndex } from './search/search-index';
import { searchIndexFile } from './search/sqlite-search-file';
import { SqliteSearchRunner } from './search/sqlite-search-runner';
import { OAuthService } from './oauth/oauth.service';
import { SocketQuota } from './socket-quota';
import { settleWithin } from './timeout';
import { UserService } from './user.service';
import type { Resolver } from './webhooks/address-safety';
import { WebhookDeliveryWorker } from './webhooks/delivery-worker';
import { IncomingHookService } from './webhooks/incoming-hook.service';
import { WebhookOutbox } from './webhooks/outbox';
import { systemResolver } from './webhooks/send';
import { WebhookService } from './webhooks/webhook.service';

/** The service layer every transport adapts: rules and data live here and nowhere else. */
export interface Services {
  /** For the GraphQL Prisma plugin's relation loader only: rules go through the services below. */
  db: Database;
  auth: AuthService;
  /** Sign-in with providers (Google or any OpenID Connect issuer, GitHub) and linking identities to users. */
  oauth: OAuthService;
  users: UserService;
  chats: ChatService;
  /** Read positions: marking chats read, unread counts, read receipts. */
  readState: ReadStateService;
  /** Who is online: counts every authenticated socket, announces changes to the people who share a chat. */
  presence: PresenceService;
  messages: MessageService;
  /** Edits and deletions of messages. */
  messageChanges: MessageChangeService;
  /** Full-text search over the messages of the caller's chats. */
  search: MessageSearchService;
  /** What keeps search's index up with the messages (SQLite takes new ones in bulk). */
  searchIndex: SearchIndex;
  /** Reactions to messages: adding, removing, and their changes as a stream. */
  reactions: ReactionService;
  /** Display names, bios and avatars; changes pushed as `user_updated`. */
  profiles: ProfileService;
  /** Files uploaded to chats and sent with messages: uploads, downloads, signed links, the sweep. */
  attachments: AttachmentService;
  bot: BotService;
  /** Outgoing webhooks of chats: their owners manage them here. */
  webhooks: WebhookService;
  /** Incoming hooks: tokens that post into a chat under a name. */
  incomingHooks: IncomingHookService;
  /** Sends the webhook outbox; the app starts it and stops it. */
  webhookWorker: WebhookDeliveryWorker;
  /** Each room's assistants: their settings, events and long memory. */
  assistants: AssistantService;
  /** What the bot's answers cost, per room, assistant and asker. */
  usage: UsageService;
  pubsub: PubSub;
  /** What is made good after a Redis outage; `/ws` adds the check of its open sockets' memberships. */
  outageRepair: OutageRepair;
  /** Each room's messages and bot answers for this process's readers, repaired after a Redis outage. */
  feeds: RoomFeeds;
  /** MAX_SOCKETS_PER_USER: open sockets per user, whichever protocol. */
  sockets: SocketQuota;
  /** What `/health` reports: each dependency's state; `healthy` only when all are usable. */
  health: () => Promise<{ healthy: boolean; database: string; pubsub: string }>;
  /** The app's log, for the adapters' own lines (children carry a `component`). */
  log: Logger;
  /** The app's Prometheus metrics: services and adapters only increment and observe them. */
  metrics: Metrics;
}

const HEALTH_TIMEOUT_MS = 2_000;

/** LOGIN_RATE_LIMIT, REGISTER_RATE_LIMIT (an hour's window per client address) and the password hashing limits. */
function authGuards(limits: Config['limits'], metrics: Metrics): AuthGuards {
  return {
    logins: new LoginThrottle(limits.loginFailuresPerMinute, { onRefused: () => metrics.refused('login') }),
    registrations: new WindowCounter({
      limit: limits.registrationsPerHour,
      windowMs: 3_600_000,
      message: 'Too many registrations from this address, try again later',
      onRefused: () => metrics.refused('register'),
    }),
    passwords: new PasswordHasher({
      concurrency: limits.passwordHashConcurrency,
      maxWaiting: limits.passwordHashQueue,
      onRefused: () => metrics.refused('password_queue'),
    }),
  };
}

/** MESSAGE_RATE_LIMIT and MESSAGE_BURST, per user: sending, editing and deleting together. */
function messageLimit({ messagesPerSecond, messageBurst }: Config['limits'], metrics: Metrics): KeyedRateLimiter<number> {
  const message = `Too many messages: at most ${messagesPerSecond} a second (${messageBurst} at once)`;
  return new KeyedRateLimiter({ ratePerSecond: messagesPerSecond, burst: messageBurst, message, onRefused: () => metrics.refused('message') });
}

/** Reaction changes reach every participant as a message does: the same rate per user, in a budget of their own. */
function reactionLimit({ messagesPerSecond, messageBurst }: Config['limits'], metrics: Metrics): KeyedRateLimiter<number> {
  const message = `Too many reactions: at most ${messagesPerSecond} a second (${messageBurst} at once)`;
  return new KeyedRateLimiter({ ratePerSecond: messagesPerSecond, burst: messageBurst, message, onRefused: () => metrics.refused('reaction') });
}

/** Searches waiting behind the running one on SQLite before more are refused with 503. */
const SEARCH_QUEUE_LIMIT = 64;
/** An idle SQLite search worker gives its memory back after this long. */
const SEARCH_WORKER_IDLE_MS = 60_000;

/**
 * How search statements run, and where SQLite's index is kept up. On PostgreSQL, statements go through
 * Prisma's pool (the database server does the work) and each message is indexed as it is written. On
 * SQLite, statements and index passes run on a worker thread, with the index in a file of its own
 * (sqlite-search-file.ts), so neither a slow search nor indexing stalls the event loop.
 */
function searchOf(db: Database, config: Config, metrics: Metrics, log: Logger): { statements: SearchStatements; index: SearchIndex } {
  const file = sharedSqliteFile(config.database);
  if (!file) return { statements: { run: (statement) => db.$queryRaw<unknown[]>(statement), close: async () => {} }, index: indexedOnWrite };
  const runner = new SqliteSearchRunner(
    { path: file, indexFile: searchIndexFile(file), visibleStatuses: VISIBLE_STATUSES },
    {
      maxWaiting: SEARCH_QUEUE_LIMIT,
      timeoutMs: config.database.timeoutMs,
      idleMs: SEARCH_WORKER_IDLE_MS,
      onRefused: () => metrics.refused('search_queue'),
    },
  );
  return {
    statements: { run: (statement) => runner.run(statement), close: () => runner.close() },
    index: new SqliteSearchIndex(db, () => runner.index(), log.child({ component: 'search' }), config.searchIndexDelayMs),
  };
}

export function createServices(
  db: Database,
  config: Config,
  bus: EventBus,
  log: Logger,
  metrics: Metrics,
  /** How webhook host names are resolved; tests stand in for DNS. */
  resolveHost: Resolver = systemResolver,
): Services {
  const { pubsub } = bus;
  const outbox = new WebhookOutbox(db);
  const auth = new AuthService(db, config, authGuards(config.limits, metrics), bus);
  const memberships = new Memberships(db, bus);
  const readState = new ReadStateService(db, pubsub, memberships, config.bot.name);
  const presenceLog = log.child({ component: 'presence' });
  const presence = new PresenceService(db, pubsub, config.presenceGraceMs, presenceLog, metrics, (host) =>
    bus.redis ? new RedisPresenceStore(bus.redis, config.redisPrefix, config.presenceGraceMs, host, presenceLog) : new LocalPresenceStore(host),
  );
  // Attachments check membership through the chats, and a deleted chat takes its files with it.
  const attachments: AttachmentService = new AttachmentService(
    db,
    { requireParticipant: (userId, chatId) => chats.requireParticipant(userId, chatId) },
    config.uploads.store.kind === 'disk' ? new DiskFileStore(config.uploads.store.dir) : new DatabaseFileStore(db),
    new AttachmentLinks(config.secretKey),
    config.uploads.maxBytes,
    new UploadAdmission({
      concurrency: config.uploads.concurrency,
      maxWaiting: config.uploads.queue,
      waitMs: config.uploads.queueWaitMs,
      pace: config.uploads.pace,
      onRefused: () => metrics.refused('upload_queue'),
      onTooSlow: () => metrics.refused('upload_too_slow'),
    }),
  );
  const chats: ChatService = new ChatService(db, pubsub, memberships, readState, presence, outbox, attachments);
  // Several instances share Redis, and with it the lock that keeps one answer per room at a time.
  const botLog = log.child({ component: 'bot' });
  const roomLock = bus.redis ? redisRoomLock(bus.redis, config.redisPrefix, botLog) : localRoomLock;
  const feeds = new RoomFeeds(db, pubsub, log.child({ component: 'feeds' }));
  const bot = new BotService(db, chats, pubsub, config, roomLock, feeds, botLog, metrics, outbox, attachments);
  const outageRepair = new OutageRepair(bus, log.child({ component: 'pubsub' }));
  outageRepair.dropCache(() => memberships.forgetEverythingHere());
  outageRepair.dropCache(() => auth.forgetEverythingHere());
  outageRepair.checkMemberships('ending the subscriptions of users who left a chat meanwhile', () => chats.endSubscriptionsOfDepartedMembers());
  outageRepair.replay('replaying the messages and changes the outage missed', (since) => feeds.repair(since));
  outageRepair.replay('telling viewerEvents subscribers what they may have missed', (since) => chats.tellEventsMissed(since));
  // Asks stored while Redis was away could not take their room's lock: they are answered once it is back.
  outageRepair.replay('answering the asks left pending', () => bot.answerAllPending());
  const writeLimit = messageLimit(config.limits, metrics);
  // Messages stored before a stop and not yet in search are taken in with the next message or search.
  const search = searchOf(db, config, metrics, log);
  const messageChanges = new MessageChangeService(db, chats, pubsub, bot, feeds, bus, writeLimit, config.bot.name, outbox, attachments);
  const messages = new MessageService(
    db,
    chats,
    pubsub,
    bot,
    feeds,
    messageChanges,
    bus,
    writeLimit,
    config.bot.name,
    new MessageWriter(db, insertRowsFor(db), metrics, search.index),
    outbox,
    attachments,
  );
  return {
    db,
    auth,
    oauth: new OAuthService(
      db,
      auth,
      config.oauth,
      new WindowCounter({
        limit: config.limits.oauthStartsPerMinute,
        windowMs: 60_000,
        message: 'Too many sign-ins started from this address, try again shortly',
        onRefused: () => metrics.refused('oauth_start'),
      }),
    ),
    users: new UserService(db),
    chats,
    readState,
    presence,
    messages,
    messageChanges,
    searchIndex: search.index,
    search: new MessageSearchService(db, memberships, searchEngines[config.database.engine], search.statements, search.index, config.bot.name),
    attachments,
    profiles: new ProfileService(db, auth, pubsub, attachments.store, attachments.admission, (userId) => presence.sharersOf(userId)),
    reactions: new ReactionService(db, chats, pubsub, bus, reactionLimit(config.limits, metrics)),
    bot,
    webhooks: new WebhookService(db, config.webhooks, outbox),
    incomingHooks: new IncomingHookService(db, messages),
    webhookWorker: new WebhookDeliveryWorker(db, config.database.engine, config.webhooks, outbox, resolveHost, log.child({ component: 'webhooks' })),
    assistants: new AssistantService(db, chats, pubsub, config),
    usage: bot.usage,
    pubsub,
    outageRepair,
    feeds,
    sockets: new SocketQuota(
      config.limits.socketsPerUser,
      (userId) => presence.socketsHere(userId),
      () => metrics.refused('socket_cap'),
    ),
    async health() {
      // A stalled database must not stall the probe that is meant to report it.
      const database = await settleWithin(
        db.$queryRaw`SELECT 1`.then(
          () => 'ok',
          () => 'unreachable',
        ),
        HEALTH_TIMEOUT_MS,
        () => 'unreachable',
      );
      const pubsub = bus.state();
      return { healthy: database === 'ok' && bus.available(), database, pubsub };
    },
    log,
    metrics,
  };
}
