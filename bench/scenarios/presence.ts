import type { BenchUser } from '../lib/api';
import { setupRooms } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { CpuShares } from '../lib/proc';
import { CpuWindow } from '../lib/proc';
import { openSocket } from '../lib/sockets';
import { ratio } from '../lib/stats';
import type { FanoutConfig, FanoutLoad } from './fanout';
import { driveFanout } from './fanout';

export interface PresenceResult {
  /** The message fan-out alone, then with one member of every room connecting and disconnecting in a loop. */
  quiet: FanoutLoad;
  churned: FanoutLoad;
  /** Presence changes (online + offline) the server announced per second during the churned window. */
  changesPerSecond: number;
  /** What those changes pushed: each goes to the M members of the churner's room. */
  presencePushesPerSecond: number;
  /** Churned message deliveries/s over quiet ones. */
  deliveriesRatio: number | null;
  /** Message deliveries/s given up per presence change/s: what one change costs in fan-out capacity. */
  deliveriesPerChange: number | null;
  /** Presence pushes/s over the churned message deliveries/s. */
  pushesToDeliveries: number | null;
  cpu: CpuShares;
}

/** The server's count of announced presence changes, from `/metrics` (METRICS=on). */
async function presenceChanges(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^gemini_coop_presence_changes_total\{status="\w+"\} (\d+(?:\.\d+)?)$/gm)) total += Number(match[1]);
  return total;
}

/**
 * The `/ws` fan-out twice on one server with PRESENCE_GRACE_MS=0 (every close is a change): alone,
 * then while one extra member of each room opens and closes a socket as fast as it can, so each
 * cycle is an online and an offline change pushed to that room's members. The cost of a presence
 * change is the message deliveries it displaces.
 */
export async function runPresence(context: BenchContext, config: FanoutConfig): Promise<PresenceResult> {
  const { server } = await context.startProject('presence', { PRESENCE_GRACE_MS: '0', METRICS: 'on' });
  try {
    progress(`presence: registering ${config.rooms * (config.members + 1)} users (argon2id, 8 at a time)`);
    const rooms = await setupRooms(server.url, config.rooms, config.members + 1);
    const fanoutRooms = rooms.map((room) => ({ chatId: room.chatId, members: room.members.slice(0, config.members) }));
    const churners: BenchUser[] = rooms.map((room) => room.members[config.members]!);
    const serverOf = () => server.wsUrl;

    const quiet = await driveFanout(fanoutRooms, config, 'ws', serverOf, 'presence: fan-out alone');

    let churning = false;
    const churn = async (user: BenchUser) => {
      while (churning) {
        const ws = await openSocket(`${server.wsUrl}/ws?token=${user.token}`);
        await new Promise<void>((resolve) => {
          ws.addEventListener('close', () => resolve(), { once: true });
          ws.close();
        });
      }
    };
    const cpu = new CpuWindow(server.pid);
    let loops: Promise<void>[] = [];
    let countedAtStart: Promise<number> = Promise.resolve(0);
    let countedAtEnd: Promise<number> = Promise.resolve(0);
    let windowStart = 0;
    let windowSeconds = 0;
    const churned = await driveFanout(fanoutRooms, config, 'ws', serverOf, 'presence: fan-out with churn', {
      loadStarting: () => {
        churning = true;
        loops = churners.map(churn);
      },
      windowStarted: () => {
        cpu.start();
        countedAtStart = presenceChanges(server.url);
        windowStart = performance.now();
      },
      windowEnded: () => {
        windowSeconds = (performance.now() - windowStart) / 1000;
        countedAtEnd = presenceChanges(server.url);
        cpu.stop();
        churning = false;
      },
    });
    await Promise.all(loops);
    const changesPerSecond = ((await countedAtEnd) - (await countedAtStart)) / windowSeconds;
    const presencePushesPerSecond = changesPerSecond * config.members;
    return {
      quiet,
      churned,
      changesPerSecond,
      presencePushesPerSecond,
      deliveriesRatio: ratio(churned.deliveriesPerSecond, quiet.deliveriesPerSecond),
      deliveriesPerChange: changesPerSecond > 0 ? (quiet.deliveriesPerSecond - churned.deliveriesPerSecond) / changesPerSecond : null,
      pushesToDeliveries: ratio(presencePushesPerSecond, churned.deliveriesPerSecond),
      cpu: cpu.result,
    };
  } finally {
    await server.stop();
  }
}
