import { api, seedRooms } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { CpuShares } from '../lib/proc';
import { CpuWindow } from '../lib/proc';
import { closeAll, openMany, until } from '../lib/sockets';
import type { Summary } from '../lib/stats';
import { ratio, Samples } from '../lib/stats';
import type { FanoutConfig, FanoutLoad, FanoutRoom } from './fanout';
import { driveFanout } from './fanout';

/** What one reaction costs, as deliveries/s, beside the message fan-out measured on the same server and the same receivers. */
export interface ReactionCostResult {
  messages: FanoutLoad & { cpu: CpuShares };
  reactions: ReactionLoad & { cpu: CpuShares };
  /** Reaction deliveries/s ÷ message deliveries/s. */
  deliveriesRatio: number | null;
  /** Reaction changes/s ÷ messages/s. */
  eventsRatio: number | null;
  setupSeconds: number;
}

export interface ReactionLoad {
  deliveriesPerSecond: number;
  /** Changes (an add or a removal) echoed to their sender per second in the window. */
  changesPerSecond: number;
  /** Send of a `react`/`unreact` frame → its own `reaction` frame back, on the sender's socket. */
  echoLatencyMs: Summary;
  changes: number;
  delivered: number;
  expectedDeliveries: number;
  errorFrames: number;
  unexpectedCloses: number;
}

/**
 * Each in-flight slot of a room's sender toggles an emoji of its own on the room's message: a slot
 * sends its next change only once the last one came back, so no change of a slot can be a no-op
 * (which would publish nothing and stall the slot).
 */
const SLOT_EMOJI = ['👍', '❤️', '😂', '🎉', '🔥', '👀', '🙏', '💯'];
/** Toggled until every member has seen a reaction: the sockets are live before the load starts. */
const PROBE_EMOJI = '🔔';
/** The changed emoji is followed by `user_id`; the same emoji in the frame's `reactions` list is followed by `count`. */
const needleOf = (emoji: string) => `"emoji":"${emoji}","user_id"`;
const PROBE_NEEDLE = needleOf(PROBE_EMOJI);
const REACTION_PREFIX = '{"type":"reaction"';
const ERROR_PREFIX = '{"type":"error"';

interface Slot {
  emoji: string;
  /** Finds this slot's frames without parsing them (see needleOf). */
  needle: string;
  /** Whether the server holds this slot's reaction now. */
  on: boolean;
  busy: boolean;
  sentAt: number;
}

class ReactionTally {
  measuring = false;
  windowDeliveries = 0;
  windowChanges = 0;
  delivered = 0;
  changes = 0;
  errors = 0;
  unexpectedCloses = 0;
  latency = new Samples();
}

/** One room's sender: `slots` changes in flight, each slot toggling its own emoji. */
class ReactionSender {
  running = false;
  private readonly slots: Slot[];
  private readonly probe: Slot;

  constructor(
    private readonly socket: WebSocket,
    private readonly chatId: number,
    private readonly messageId: number,
    inflight: number,
    private readonly tally: ReactionTally,
  ) {
    const slot = (emoji: string): Slot => ({ emoji, needle: needleOf(emoji), on: false, busy: false, sentAt: 0 });
    this.slots = SLOT_EMOJI.slice(0, inflight).map(slot);
    this.probe = slot(PROBE_EMOJI);
  }

  fill(): void {
    if (!this.running) return;
    for (const slot of this.slots) if (!slot.busy) this.send(slot);
  }

  /** A change of the probe emoji, unless the last one has not come back yet. */
  sendProbe(): void {
    if (!this.probe.busy) this.send(this.probe);
  }

  get inflight(): number {
    return this.slots.filter((slot) => slot.busy).length;
  }

  /** A `reaction` frame on the sender's socket: every change in its room is its own. */
  echo(data: string): void {
    if (data.includes(this.probe.needle)) return this.settle(this.probe, data);
    const slot = this.slots.find((candidate) => data.includes(candidate.needle));
    if (!slot) return;
    this.settle(slot, data);
    this.tally.changes++;
    if (this.tally.measuring) {
      this.tally.windowChanges++;
      this.tally.latency.push(performance.now() - slot.sentAt);
    }
    if (this.running) this.send(slot);
  }

  private settle(slot: Slot, data: string): void {
    slot.on = data.includes('"action":"added"');
    slot.busy = false;
  }

  private send(slot: Slot): void {
    slot.busy = true;
    slot.sentAt = performance.now();
    this.socket.send(JSON.stringify({ type: slot.on ? 'unreact' : 'react', chat_id: this.chatId, message_id: this.messageId, emoji: slot.emoji }));
  }
}

/**
 * The same rooms and members as a message fan-out, on one server: first the fan-out of messages
 * (bench/scenarios/fanout.ts), then reactions over the same `/ws` receivers for as long. Each
 * room's sender keeps `inflight` reaction changes (at most SLOT_EMOJI.length) in flight on one
 * message of its room; every member's socket (the sender's too) receives each change.
 */
export async function runReactionCost(context: BenchContext, config: FanoutConfig): Promise<ReactionCostResult> {
  const { server, dbPath } = await context.startProject('reactions');
  try {
    const setupStart = performance.now();
    progress(`reactions: seeding ${config.rooms * config.members} users and their rooms`);
    const rooms = await seedRooms(server.url, dbPath, context.secretKey, config.rooms, config.members);
    const setupSeconds = (performance.now() - setupStart) / 1000;

    const messageCpu = new CpuWindow(server.pid);
    const messages = await driveFanout(rooms, config, 'ws', () => server.wsUrl, 'reactions: messages first', {
      windowStarted: () => messageCpu.start(),
      windowEnded: () => messageCpu.stop(),
    });

    const targets = await Promise.all(
      rooms.map(
        async (room) =>
          (await api<{ id: number }>(server.url, 'POST', `/api/chats/${room.chatId}/messages`, { content: 'react to me' }, room.members[0]!.token)).id,
      ),
    );
    const reactionCpu = new CpuWindow(server.pid);
    const reactions = await driveReactions(rooms, targets, config, server.wsUrl, reactionCpu);
    await server.stop();
    return {
      messages: { ...messages, cpu: messageCpu.result },
      reactions: { ...reactions, cpu: reactionCpu.result },
      deliveriesRatio: ratio(reactions.deliveriesPerSecond, messages.deliveriesPerSecond),
      eventsRatio: ratio(reactions.changesPerSecond, messages.messagesPerSecond),
      setupSeconds,
    };
  } finally {
    await server.stop();
  }
}

async function driveReactions(rooms: readonly FanoutRoom[], targets: number[], config: FanoutConfig, wsUrl: string, cpu: CpuWindow): Promise<ReactionLoad> {
  const tally = new ReactionTally();
  const sockets: WebSocket[] = [];
  let shuttingDown = false;
  try {
    const seen: boolean[] = [];
    const senders: ReactionSender[] = [];
    progress('reactions: opening sockets and joining rooms');
    for (const [r, room] of rooms.entries()) {
      const roomSockets = await openMany(room.members.length, (m) => `${wsUrl}/ws?token=${room.members[m]!.token}`, 100);
      sockets.push(...roomSockets);
      roomSockets.forEach((ws, m) => {
        const receiver = seen.push(false) - 1;
        const sender = m === 0 ? new ReactionSender(ws, room.chatId, targets[r]!, config.inflight, tally) : null;
        if (sender) senders.push(sender);
        ws.onmessage = (event) => {
          const data = event.data as string;
          if (data.startsWith(REACTION_PREFIX)) {
            seen[receiver] = true;
            if (!data.includes(PROBE_NEEDLE)) {
              tally.delivered++;
              if (tally.measuring) tally.windowDeliveries++;
            }
            sender?.echo(data);
          } else if (data.startsWith(ERROR_PREFIX)) tally.errors++;
        };
        ws.addEventListener('close', () => {
          if (!shuttingDown) tally.unexpectedCloses++;
        });
        // As in the message fan-out: the same sockets, joined.
        ws.send(`{"type":"join","chat_id":${room.chatId}}`);
      });
    }
    await until(
      () => seen.every(Boolean),
      () => senders.forEach((sender) => sender.sendProbe()),
      `all ${seen.length} members to receive a reaction`,
    );

    progress(`reactions: load for ${config.warmupSeconds} s warm-up + ${config.seconds} s`);
    for (const sender of senders) {
      sender.running = true;
      sender.fill();
    }
    await Bun.sleep(config.warmupSeconds * 1000);
    tally.measuring = true;
    cpu.start();
    const windowStart = performance.now();
    await Bun.sleep(config.seconds * 1000);
    tally.measuring = false;
    const windowSeconds = (performance.now() - windowStart) / 1000;
    cpu.stop();

    for (const sender of senders) sender.running = false;
    const drainUntil = performance.now() + 10_000;
    while (senders.some((sender) => sender.inflight > 0) && performance.now() < drainUntil) await Bun.sleep(20);
    const members = rooms[0]?.members.length ?? 0;
    while (tally.delivered < tally.changes * members && performance.now() < drainUntil) await Bun.sleep(20);

    const load: ReactionLoad = {
      deliveriesPerSecond: tally.windowDeliveries / windowSeconds,
      changesPerSecond: tally.windowChanges / windowSeconds,
      echoLatencyMs: tally.latency.summary(),
      changes: tally.changes,
      delivered: tally.delivered,
      expectedDeliveries: tally.changes * members,
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
