import type { BenchUser } from '../lib/api';
import { countMessages, setupRooms } from '../lib/api';
import type { BaselineCommit, BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { CpuShares } from '../lib/proc';
import { CpuWindow } from '../lib/proc';
import { closeAll, openMany, until } from '../lib/sockets';
import type { Summary } from '../lib/stats';
import { Samples } from '../lib/stats';

export interface FanoutConfig {
  rooms: number;
  members: number;
  /** Messages each room's sender keeps in flight. */
  inflight: number;
  seconds: number;
  warmupSeconds: number;
}

/** Who serves, and who receives: `/ws` sockets or graphql-ws `messageAdded` subscribers. */
export type FanoutMode = { target: 'project'; receivers: 'ws' | 'graphql-ws' } | { target: 'baseline'; receivers: 'ws'; commit: BaselineCommit };

export interface FanoutResult {
  target: 'project' | 'baseline';
  receivers: 'ws' | 'graphql-ws';
  /** Registering users, creating rooms, inviting (REST, argon2-bound); 0 for the baseline. */
  setupSeconds: number;
  deliveriesPerSecond: number;
  /** Messages acknowledged (echoed to their sender) per second in the window. */
  messagesPerSecond: number;
  /** Send (client clock, embedded in the content) → receive by a member, in ms. */
  latencyMs: Summary;
  /** Whole run, warm-up and probes included. */
  sent: number;
  acknowledged: number;
  stored: number | null;
  /** Deliveries of load messages over the whole run, against acknowledged load messages × members. */
  delivered: number;
  expectedDeliveries: number;
  errorFrames: number;
  unexpectedCloses: number;
  /** Highest server RSS from the start of the load (warm-up) to the end of its drain; set-up (argon2, sockets) is before. */
  peakRssMb: number;
  /** CPU used during the window, in cores: server, this client, everything else. */
  cpu: CpuShares;
}

/** Marks load messages; the send time (client's performance.now()) follows, so receivers need no JSON.parse. */
const MARK = '"content":"b|';
const MESSAGE_PREFIX = '{"type":"message"';
/**
 * graphql-ws subscribers speak the protocol on raw sockets and, like the /ws receivers, look for
 * the mark in the text instead of parsing each frame: the client must not be what limits the figure.
 */
const GRAPHQL_WS_PROTOCOL = 'graphql-transport-ws';
/** What a chat client shows of a message. */
export const CHAT_CLIENT_SUBSCRIPTION = 'subscription($c: ID!){ messageAdded(chatId: $c){ id chatId content username createdAt } }';
const NEXT_PREFIX = '{"id":"1","type":"next"';
const ACK = '{"type":"connection_ack"';
const PONG = '{"type":"pong"';
const ERROR_PREFIX = '{"type":"error"';

/** Shared tallies, kept flat so the receive path does as little as possible. */
class Tally {
  measuring = false;
  windowDeliveries = 0;
  windowAcks = 0;
  delivered = 0;
  errors = 0;
  unexpectedCloses = 0;
  latency = new Samples();

  /** One load message reached a member at `now`. */
  delivery(sentAt: number, now: number): void {
    this.delivered++;
    if (this.measuring) {
      this.windowDeliveries++;
      this.latency.push(now - sentAt);
    }
  }
}

/** One room's sender: keeps `inflight` messages outstanding, sending the next when one of its own echoes returns. */
class Sender {
  inflight = 0;
  sent = 0;
  acked = 0;
  loadAcked = 0;
  running = false;
  private readonly head: string;

  constructor(
    readonly socket: WebSocket,
    readonly chatId: number,
    private readonly window: number,
    private readonly tally: Tally,
  ) {
    this.head = `{"type":"message","chat_id":${chatId},"content":"b|`;
  }

  fill(): void {
    while (this.running && this.inflight < this.window) {
      this.socket.send(this.head + performance.now() + '"}');
      this.inflight++;
      this.sent++;
    }
  }

  probe(): void {
    this.socket.send(`{"type":"message","chat_id":${this.chatId},"content":"probe"}`);
    this.sent++;
  }

  /** Its own message came back (every message in its room is its own: one sender per room). */
  echo(isLoad: boolean): void {
    this.acked++;
    if (!isLoad) return;
    this.loadAcked++;
    if (this.tally.measuring) this.tally.windowAcks++;
    this.inflight--;
    this.fill();
  }

  /** An error frame answers one of its messages: do not let the window stall on it. */
  failed(): void {
    if (this.inflight > 0) {
      this.inflight--;
      this.fill();
    }
  }
}

interface Receiver {
  seen: boolean;
}

/** A room of the load: member 0 is its sender, every member (the sender too) a receiver. */
export interface FanoutRoom {
  chatId: number;
  members: BenchUser[];
}

/** What the load measures by itself; the caller adds what it knows of its servers. */
export type FanoutLoad = Pick<
  FanoutResult,
  'deliveriesPerSecond' | 'messagesPerSecond' | 'latencyMs' | 'sent' | 'acknowledged' | 'delivered' | 'expectedDeliveries' | 'errorFrames' | 'unexpectedCloses'
>;

/** Called at the load's edges, so the caller measures its own figures (CPU, RSS, Redis traffic) over the same spans. */
export interface LoadHooks {
  /** Before the warm-up's first message. */
  loadStarting?: () => void;
  windowStarted?: () => void;
  windowEnded?: () => void;
  /** After the drain, before the sockets close. */
  drained?: () => void;
}

/** The ws:// base URL of the server that room `room`'s member `member` connects to. */
export type Placement = (room: number, member: number) => string;

/**
 * R rooms × M members; one sender per room keeps W messages in flight for the window after a warm-up.
 * Deliveries and latencies count only what arrives inside the window.
 */
export async function runFanout(context: BenchContext, config: FanoutConfig, mode: FanoutMode): Promise<FanoutResult> {
  const label = mode.target === 'baseline' ? `baseline /ws, ${mode.commit} commit` : `project ${mode.receivers}`;
  const { server, dbPath } = mode.target === 'baseline' ? await context.startBaseline(mode.commit) : await context.startProject(`fanout-${mode.receivers}`);
  try {
    // Rooms and members: through the REST API for the project, synthetic for the baseline (it checks nothing).
    const setupStart = performance.now();
    let rooms: FanoutRoom[];
    if (mode.target === 'baseline') {
      rooms = Array.from({ length: config.rooms }, (_, r) => ({
        chatId: r + 1,
        members: Array.from({ length: config.members }, (_, m) => ({ id: 0, username: `r${r}m${m}`, token: `r${r}m${m}` })),
      }));
    } else {
      progress(`${label}: registering ${config.rooms * config.members} users (argon2id, 8 at a time)`);
      rooms = await setupRooms(server.url, config.rooms, config.members);
    }
    const setupSeconds = mode.target === 'baseline' ? 0 : (performance.now() - setupStart) / 1000;

    const cpu = new CpuWindow(server.pid);
    let rss = { peak: () => 0 };
    let peakRss = 0;
    const load = await driveFanout(rooms, config, mode.receivers, () => server.wsUrl, label, {
      loadStarting: () => (rss = server.rssWindow()),
      windowStarted: () => cpu.start(),
      windowEnded: () => cpu.stop(),
      drained: () => (peakRss = rss.peak()),
    });
    const result: FanoutResult = {
      target: mode.target,
      receivers: mode.receivers,
      setupSeconds,
      ...load,
      stored: null,
      peakRssMb: peakRss / 2 ** 20,
      cpu: cpu.result,
    };
    await server.stop();
    result.stored = countMessages(dbPath);
    return result;
  } finally {
    await server.stop();
  }
}

/**
 * The fan-out load on servers that are already running, with the rooms already made: `serverOf` says
 * where each socket connects, so one room's members may be spread over several instances.
 */
export async function driveFanout(
  rooms: readonly FanoutRoom[],
  config: FanoutConfig,
  receiverKind: FanoutMode['receivers'],
  serverOf: Placement,
  label: string,
  hooks: LoadHooks = {},
): Promise<FanoutLoad> {
  const tally = new Tally();
  const sockets: WebSocket[] = [];
  let shuttingDown = false;
  try {
    const receivers: Receiver[] = [];
    const senders: Sender[] = [];
    const watchClose = (ws: WebSocket) =>
      ws.addEventListener('close', () => {
        if (!shuttingDown) tally.unexpectedCloses++;
      });
    const joinFrame = (chatId: number) => `{"type":"join","chat_id":${chatId}}`;

    progress(`${label}: opening sockets and joining rooms`);
    for (const [r, room] of rooms.entries()) {
      if (receiverKind === 'ws') {
        // Every member a /ws socket; member 0's also sends.
        const roomSockets = await openMany(room.members.length, (m) => `${serverOf(r, m)}/ws?token=${room.members[m]!.token}`, 100);
        sockets.push(...roomSockets);
        roomSockets.forEach((ws, m) => {
          const receiver: Receiver = { seen: false };
          receivers.push(receiver);
          const sender = m === 0 ? new Sender(ws, room.chatId, config.inflight, tally) : null;
          if (sender) senders.push(sender);
          ws.onmessage = (event) => {
            const data = event.data as string;
            if (!data.startsWith(MESSAGE_PREFIX)) {
              if (data.startsWith(ERROR_PREFIX)) {
                tally.errors++;
                sender?.failed();
              }
              return; // presence notices and the like
            }
            receiver.seen = true;
            const at = data.indexOf(MARK);
            if (at >= 0) tally.delivery(parseFloat(data.substring(at + MARK.length, at + MARK.length + 24)), performance.now());
            sender?.echo(at >= 0);
          };
          watchClose(ws);
          ws.send(joinFrame(room.chatId));
        });
      } else {
        // Receivers are graphql-ws subscribers; the sender still speaks /ws (its echoes pace it).
        const [ws] = await openMany(1, () => `${serverOf(r, 0)}/ws?token=${room.members[0]!.token}`);
        sockets.push(ws!);
        const sender = new Sender(ws!, room.chatId, config.inflight, tally);
        senders.push(sender);
        ws!.onmessage = (event) => {
          const data = event.data as string;
          if (data.startsWith(MESSAGE_PREFIX)) sender.echo(data.includes(MARK));
          else if (data.startsWith(ERROR_PREFIX)) {
            tally.errors++;
            sender.failed();
          }
        };
        watchClose(ws!);
        ws!.send(joinFrame(room.chatId));
        const subscribers = await openMany(room.members.length, (m) => `${serverOf(r, m)}/graphql`, 100, undefined, GRAPHQL_WS_PROTOCOL);
        sockets.push(...subscribers);
        subscribers.forEach((subscriber, m) => {
          const receiver: Receiver = { seen: false };
          receivers.push(receiver);
          subscriber.onmessage = (event) => {
            const data = event.data as string;
            if (data.startsWith(NEXT_PREFIX)) {
              receiver.seen = true;
              const at = data.indexOf(MARK);
              if (at >= 0) tally.delivery(parseFloat(data.substring(at + MARK.length, at + MARK.length + 24)), performance.now());
              if (data.includes('"errors"')) tally.errors++;
            } else if (data.startsWith(ACK)) {
              subscriber.send(
                JSON.stringify({ id: '1', type: 'subscribe', payload: { query: CHAT_CLIENT_SUBSCRIPTION, variables: { c: String(room.chatId) } } }),
              );
            } else if (!data.startsWith(PONG)) tally.errors++;
          };
          watchClose(subscriber);
          subscriber.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${room.members[m]!.token}` } }));
        });
      }
    }

    // Joins and subscriptions have no acknowledgement: probe until every member has seen a message.
    await until(
      () => receivers.every((r) => r.seen),
      () => senders.forEach((s) => s.probe()),
      `all ${receivers.length} members to receive a probe`,
    );

    progress(`${label}: load for ${config.warmupSeconds} s warm-up + ${config.seconds} s`);
    hooks.loadStarting?.();
    for (const sender of senders) {
      sender.running = true;
      sender.fill();
    }
    await Bun.sleep(config.warmupSeconds * 1000);
    tally.measuring = true;
    hooks.windowStarted?.();
    const windowStart = performance.now();
    await Bun.sleep(config.seconds * 1000);
    tally.measuring = false;
    const windowSeconds = (performance.now() - windowStart) / 1000;
    hooks.windowEnded?.();

    // Stop and drain (bounded): outstanding echoes, then the deliveries they imply.
    for (const sender of senders) sender.running = false;
    const drainUntil = performance.now() + 10_000;
    while (senders.some((s) => s.inflight > 0) && performance.now() < drainUntil) await Bun.sleep(20);
    const loadAcked = () => senders.reduce((n, s) => n + s.loadAcked, 0);
    while (tally.delivered < loadAcked() * config.members && performance.now() < drainUntil) await Bun.sleep(20);
    hooks.drained?.();

    const load: FanoutLoad = {
      deliveriesPerSecond: tally.windowDeliveries / windowSeconds,
      messagesPerSecond: tally.windowAcks / windowSeconds,
      latencyMs: tally.latency.summary(),
      sent: senders.reduce((n, s) => n + s.sent, 0),
      acknowledged: senders.reduce((n, s) => n + s.acked, 0),
      delivered: tally.delivered,
      expectedDeliveries: loadAcked() * config.members,
      errorFrames: tally.errors,
      unexpectedCloses: tally.unexpectedCloses,
    };
    shuttingDown = true;
    await closeAll(sockets);
    return load;
  } finally {
    shuttingDown = true;
    for (const ws of sockets) ws.close();
  }
}
