import { readDatabase } from '../lib/api';

/** The most a join with `after` replays (README: "up to 1,000 messages"); older ones are in the history. */
const CATCH_UP_LIMIT = 1000;

/**
 * What one connection (a `/ws` join or a graphql-ws `messageAdded`) received in one room: ids must
 * rise strictly, and every user message with an id in (from, last] must have come. `from` is the
 * join's `after`, or for a live-only join the first id it received (what came before it is not owed).
 */
export class ConnectionLog {
  from: number | null;
  last = 0;
  /** User messages received with an id above `from`. */
  received = 0;
  /** Joined with `after`: the first messages came from a replay. */
  readonly replays: boolean;
  /**
   * The ids of the CATCH_UP_LIMIT-th and the next message received, and the user messages received
   * up to the first. When the replay was full, the first is its last message and the second the first
   * live one: what lies between is the documented limit's loss, not a bug.
   */
  limitId: number | null = null;
  afterLimitId: number | null = null;
  receivedAtLimit = 0;
  private frames = 0;

  constructor(
    readonly chatId: number,
    readonly via: string,
    after: number | null,
  ) {
    this.from = after;
    this.replays = after !== null;
  }

  /** A message frame; false when its id does not rise (a duplicate or out of order). */
  receive(id: number, isBot: boolean): boolean {
    if (id <= this.last || (this.from !== null && id <= this.from)) return false;
    this.last = id;
    if (this.from === null) this.from = id;
    else if (!isBot) this.received++;
    if (++this.frames === CATCH_UP_LIMIT) {
      this.limitId = id;
      this.receivedAtLimit = this.received;
    } else if (this.frames === CATCH_UP_LIMIT + 1) this.afterLimitId = id;
    return true;
  }
}

export interface DeliveryCheck {
  connections: number;
  /** User messages a connection should have received and did not. */
  missed: number;
  /** Connections that missed some, with their range. */
  examples: string[];
  /** Misses between a full replay's last message and the first live one: the documented limit, not a bug. */
  missedBeyondLimit: number;
}

type Count = { get: (chatId: number, above: number, upTo: number) => { n: number } | null };

/** Every connection's log, checked against the database at the end. */
export class DeliveryAudit {
  private readonly logs: ConnectionLog[] = [];

  open(chatId: number, via: string, after: number | null): ConnectionLog {
    const log = new ConnectionLog(chatId, via, after);
    this.logs.push(log);
    return log;
  }

  /**
   * Whether the first CATCH_UP_LIMIT frames were one full replay: nothing in their range was missed,
   * and the range holds at least that many replayable messages. (Counting them alone is not enough: a
   * bot answer still streaming when the replay read the room was left out, and is replayable now.)
   */
  private replayWasFull(log: ConnectionLog, from: number, limitId: number, userMessages: Count, replayable: Count): boolean {
    return userMessages.get(log.chatId, from, limitId)!.n === log.receivedAtLimit && replayable.get(log.chatId, from, limitId)!.n >= CATCH_UP_LIMIT;
  }

  verify(dbPath: string): DeliveryCheck {
    const check: DeliveryCheck = { connections: 0, missed: 0, examples: [], missedBeyondLimit: 0 };
    readDatabase(dbPath, (db) => {
      const userMessages = db.query<{ n: number }, [number, number, number]>(
        'SELECT count(*) AS n FROM messages WHERE chat_id = ? AND is_bot = 0 AND id > ? AND id <= ?',
      );
      const replayable = db.query<{ n: number }, [number, number, number]>(
        "SELECT count(*) AS n FROM messages WHERE chat_id = ? AND status IN ('complete', 'stopped') AND id > ? AND id <= ?",
      );
      for (const log of this.logs) {
        if (log.from === null || log.last <= log.from) continue;
        check.connections++;
        let missed = userMessages.get(log.chatId, log.from, log.last)!.n - log.received;
        if (missed <= 0) continue;
        if (log.replays && log.limitId !== null && log.afterLimitId !== null && this.replayWasFull(log, log.from, log.limitId, userMessages, replayable)) {
          const beyond = userMessages.get(log.chatId, log.limitId, log.afterLimitId - 1)!.n;
          check.missedBeyondLimit += beyond;
          missed -= beyond;
        }
        if (missed <= 0) continue;
        check.missed += missed;
        if (check.examples.length < 5)
          check.examples.push(`${log.via}${log.replays ? ' after' : ' live'} room ${log.chatId}: ${missed} of (${log.from}, ${log.last}]`);
      }
    });
    return check;
  }
}
