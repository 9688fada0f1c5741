import type { Config } from '../config';
import type { Database } from '../db/client';
import { AuthService } from './auth.service';
import { BotService } from './bot.service';
import { localRoomLock, redisRoomLock } from './room-lock';
import { ChatService } from './chat.service';
import { LoginThrottle } from './login-throttle';
import { MessageService } from './message.service';
import type { EventBus, PubSub } from './pubsub';
import { RoomFeeds } from './room-feed';

/** The service layer every transport adapts: rules and data live here and nowhere else. */
export interface Services {
  /** For the GraphQL Prisma plugin's relation loader only: rules go through the services below. */
  db: Database;
  auth: AuthService;
  chats: ChatService;
  messages: MessageService;
  bot: BotService;
  pubsub: PubSub;
  /** Each room's messages and bot answers for this process's readers, repaired after a Redis outage. */
  feeds: RoomFeeds;
  /** What `/health` reports: each dependency's state; `healthy` only when all are usable. */
  health: () => Promise<{ healthy: boolean; database: string; pubsub: string }>;
}

const HEALTH_TIMEOUT_MS = 2_000;

export function createServices(db: Database, config: Config, bus: EventBus): Services {
  const { pubsub } = bus;
  const chats = new ChatService(db, pubsub);
  // Several instances share Redis, and with it the lock that keeps one answer per room at a time.
  const roomLock = bus.redis ? redisRoomLock(bus.redis, config.redisPrefix) : localRoomLock;
  const feeds = new RoomFeeds(db, pubsub, bus);
  const bot = new BotService(db, chats, pubsub, config, roomLock, feeds);
  return {
    db,
    auth: new AuthService(db, config, new LoginThrottle(config.limits.loginFailuresPerMinute)),
    chats,
    messages: new MessageService(db, chats, pubsub, bot, feeds, bus),
    bot,
    pubsub,
    feeds,
    async health() {
      // A stalled database must not stall the probe that is meant to report it.
      let timer: Timer | undefined;
      const database = await Promise.race([
        db.$queryRaw`SELECT 1`.then(
          () => 'ok',
          () => 'unreachable',
        ),
        new Promise<string>((resolve) => (timer = setTimeout(() => resolve('unreachable'), HEALTH_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
      const pubsub = bus.state();
      return { healthy: database === 'ok' && bus.available(), database, pubsub };
    },
  };
}
