import type { BenchUser } from '../lib/api';
import { closeAll, openSocket } from '../lib/sockets';
import type { ConnectionLog } from './delivery-audit';
import type { SoakRun } from './soak-run';
import { between } from './soak-run';

const MESSAGE_FRAME = '{"type":"message"';
const BOT_FRAME = '{"type":"bot_stream"';
const ERROR_FRAME = '{"type":"error"';
const HISTORY_GAP_FRAME = '{"type":"history_gap"';
const MESSAGE_ID = '"message_id":';
// A comma before the quote: inside a JSON string every quote is escaped, so this is the field itself.
const IS_BOT = ',"is_bot":true,';
const CONTENT_END = '","is_bot":';

/** Messages a sender may have waiting for their echo; beyond it the server is behind and the pacer skips it. */
export const MAX_IN_FLIGHT = 256;

/** The `message_id` of a `message` or `bot_stream` frame, read without JSON.parse: this runs for every delivery. */
function messageIdOf(frame: string): number {
  const at = frame.indexOf(MESSAGE_ID) + MESSAGE_ID.length;
  return parseInt(frame.substring(at, at + 16), 10);
}

const errorOf = (frame: string) => (JSON.parse(frame) as { error?: string }).error ?? frame;

/** One socket's membership of one room: its connection log, and closing it on purpose. */
interface Membership {
  socket: WebSocket;
  log: ConnectionLog;
  /** Closes the socket (after a `leave` frame when `sayLeave`) and waits, bounded, for the close. */
  leave: (sayLeave: boolean) => Promise<void>;
}

/**
 * Opens a `/ws` socket and joins `chatId` (replaying from `after` when given). Every frame is counted
 * and every message id checked against the connection's log; `onFrame` sees the frames too, and
 * `onLost` runs when the socket closes without being asked to.
 */
async function joinRoom(
  run: SoakRun,
  url: string,
  chatId: number,
  after: number | null,
  onFrame?: (frame: string) => void,
  onLost?: () => void,
): Promise<Membership> {
  const socket = await openSocket(url);
  const log = run.audit.open(chatId, '/ws', after);
  let leaving = false;
  socket.onmessage = (event) => {
    const frame = event.data as string;
    if (frame.startsWith(MESSAGE_FRAME)) {
      run.tally.count('wsDeliveries');
      if (!log.receive(messageIdOf(frame), frame.includes(IS_BOT))) run.tally.error('/ws message repeated', frame);
    } else if (frame.startsWith(BOT_FRAME)) run.tally.count('botChunkDeliveries');
    else if (frame.startsWith(HISTORY_GAP_FRAME)) log.gap((JSON.parse(frame) as { before: number }).before);
    else if (frame.startsWith(ERROR_FRAME)) run.tally.error(`/ws error frame: ${errorOf(frame)}`, frame);
    onFrame?.(frame);
  };
  socket.onclose = (event) => {
    if (leaving) return;
    run.tally.error(`/ws closed unexpectedly (code ${event.code})`, event.reason);
    onLost?.();
  };
  socket.send(JSON.stringify(after === null ? { type: 'join', chat_id: chatId } : { type: 'join', chat_id: chatId, after }));
  return {
    socket,
    log,
    leave: async (sayLeave) => {
      leaving = true;
      if (sayLeave && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'leave', chat_id: chatId }));
      await closeAll([socket]);
    },
  };
}

interface Answer {
  text: string;
  askedAt: number | null;
}

/**
 * A member that stays in its room and sends: each message carries `#<seq>|<send time>`, and counts
 * as acknowledged when its echo (the room's `message` frame with this sender's name) comes back with
 * a `message_id`. The room's asker also sends the `/bot` asks and checks every answer's stream.
 */
export class RoomSender {
  private membership: Membership | null = null;
  private reconnecting: Promise<void> | null = null;
  /** Send time by sequence number, until the echo comes. */
  private readonly pending = new Map<number, number>();
  private nextSeq = 1;
  private readonly echoMarker: string;
  /** Send times of acknowledged asks whose answer has not started: a room's asks are answered in order. */
  private readonly unanswered: number[] = [];
  private readonly answers = new Map<number, Answer>();

  constructor(
    private readonly run: SoakRun,
    private readonly url: string,
    user: BenchUser,
    readonly chatId: number,
    /** Whether this sender asks the bot in its room (one per room, so every answer there is to its asks). */
    readonly asker: boolean,
  ) {
    this.echoMarker = `"username":"${user.username}","content":"`;
  }

  get inflight(): number {
    return this.pending.size;
  }

  /** Asks acknowledged and not yet completely answered. */
  get awaitingAnswers(): number {
    return this.unanswered.length + this.answers.size;
  }

  async connect(): Promise<void> {
    this.membership = await joinRoom(
      this.run,
      this.url,
      this.chatId,
      null,
      (frame) => this.onFrame(frame),
      () => this.lost(),
    );
  }

  /** Sends one message; false when it cannot now (socket down, or too many waiting for their echo). */
  send(): boolean {
    return this.post('', 'soak message');
  }

  ask(): boolean {
    return this.asker && this.post('/bot ', 'what has this room been talking about?');
  }

  /** Leaves for good: the end of the run. */
  async close(): Promise<void> {
    await this.reconnecting;
    await this.membership?.leave(false);
    this.membership = null;
  }

  private post(prefix: string, text: string): boolean {
    const socket = this.membership?.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || this.pending.size >= MAX_IN_FLIGHT) return false;
    const seq = this.nextSeq++;
    const now = performance.now();
    this.pending.set(seq, now);
    socket.send(`{"type":"message","chat_id":${this.chatId},"content":"${prefix}#${seq}|${now.toFixed(3)} ${text}"}`);
    this.run.tally.count('sent');
    if (prefix) this.run.tally.count('botAsks');
    return true;
  }

  private onFrame(frame: string): void {
    if (frame.startsWith(MESSAGE_FRAME)) {
      const at = frame.indexOf(this.echoMarker);
      if (at >= 0) this.echo(frame, at + this.echoMarker.length);
    } else if (this.asker && frame.startsWith(BOT_FRAME)) this.botFrame(frame);
  }

  private echo(frame: string, contentStart: number): void {
    const content = frame.substring(contentStart, frame.indexOf(CONTENT_END, contentStart));
    const tag = content.indexOf('#');
    const seq = parseInt(content.substring(tag + 1, content.indexOf('|', tag)), 10);
    const sentAt = this.pending.get(seq);
    if (sentAt === undefined) return this.run.tally.error('/ws echo of a message not in flight', frame);
    this.pending.delete(seq);
    if (!this.run.ledger.record(messageIdOf(frame), content)) return this.run.tally.error('/ws two echoes with one message_id', frame);
    this.run.tally.ack(performance.now() - sentAt);
    if (content.startsWith('/bot ')) this.unanswered.push(sentAt);
  }

  private botFrame(frame: string): void {
    const event = JSON.parse(frame) as { message_id: number; chunk: string; is_complete: boolean; full_response?: string; error?: string };
    const now = performance.now();
    let answer = this.answers.get(event.message_id);
    if (!answer) {
      answer = { text: '', askedAt: this.unanswered.shift() ?? null };
      this.answers.set(event.message_id, answer);
      if (!event.is_complete && answer.askedAt !== null) this.run.tally.botFirstChunk(now - answer.askedAt);
    }
    if (!event.is_complete) {
      answer.text += event.chunk;
      return;
    }
    this.answers.delete(event.message_id);
    this.run.tally.count('botAnswers');
    if (answer.askedAt !== null) this.run.tally.botAnswerMs.push(now - answer.askedAt);
    if (event.error) this.run.tally.error(`bot answer failed: ${event.error}`, frame);
    else if (event.full_response !== answer.text) this.run.tally.error('bot answer: full_response differs from its chunks', frame);
  }

  /** The socket dropped: what was in flight can no longer be confirmed; rejoin while the run goes on. */
  private lost(): void {
    this.run.tally.unconfirmed += this.pending.size;
    this.pending.clear();
    this.unanswered.length = 0;
    this.answers.clear();
    this.membership = null;
    this.reconnecting ??= (async () => {
      while (this.run.running && !this.membership) {
        await this.run.pause(1_000);
        if (!this.run.running) break;
        await this.connect().catch((error: unknown) => this.run.tally.error('/ws could not reopen a sender', String(error)));
      }
      this.reconnecting = null;
    })();
  }
}

/**
 * A member that comes and goes: joins (with `after` = the last id it saw, once it has seen one),
 * stays a few seconds, leaves (half the time with a `leave` frame, half by just closing), stays away
 * for up to `offlineMs`, and again, until the run stops.
 */
export class ChurningMember {
  private lastSeen: number | null = null;

  constructor(
    private readonly run: SoakRun,
    private readonly url: string,
    private readonly chatId: number,
    private readonly offlineMs: number,
  ) {}

  async churn(): Promise<void> {
    while (this.run.running) {
      let membership: Membership;
      try {
        membership = await joinRoom(this.run, this.url, this.chatId, this.lastSeen);
      } catch (error) {
        this.run.tally.error('/ws could not open', String(error));
        await this.run.pause(1_000);
        continue;
      }
      if (this.lastSeen !== null) this.run.tally.count('wsReconnects');
      await this.run.pause(between(2_000, 8_000));
      await membership.leave(Math.random() < 0.5);
      if (membership.log.last > 0) this.lastSeen = membership.log.last;
      await this.run.pause(between(this.offlineMs / 4, this.offlineMs));
    }
  }
}

/**
 * Sends `ratePerSecond` messages spread round-robin over the senders, open loop: on schedule whatever
 * the echoes do. When every sender has MAX_IN_FLIGHT waiting, the server is behind: the pacer owes at
 * most a second's worth and counts the rest as not sent, rather than bursting later.
 */
export async function paceMessages(run: SoakRun, senders: RoomSender[], ratePerSecond: number): Promise<void> {
  let owed = 0;
  let last = performance.now();
  let next = 0;
  while (run.running) {
    const now = performance.now();
    owed += ((now - last) / 1000) * ratePerSecond;
    last = now;
    if (owed > ratePerSecond) {
      run.tally.notSent += Math.floor(owed - ratePerSecond);
      owed -= Math.floor(owed - ratePerSecond);
    }
    for (let refused = 0; owed >= 1 && refused < senders.length;) {
      if (senders[next++ % senders.length]!.send()) {
        owed--;
        refused = 0;
      } else refused++;
    }
    await run.pause(10);
  }
}

/** One `/bot` ask in each room every `everySeconds`, the rooms' asks spread evenly over that time. */
export async function askEvenly(run: SoakRun, askers: RoomSender[], everySeconds: number): Promise<void> {
  const gapMs = (everySeconds * 1000) / askers.length;
  for (let i = 0; run.running; i++) {
    await run.pause(gapMs);
    if (run.running) askers[i % askers.length]!.ask();
  }
}
