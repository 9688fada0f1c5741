import type { Database } from '../../db/client';
import type { Config } from '../../config';
import type { Logger } from '../../log';
import type { Resolver } from './address-safety';
import type { WebhookOutbox } from './outbox';
import type { SendOutcome } from './send';
import { sendOnce } from './send';
import { DELIVERY_ID_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signDelivery, TIMESTAMP_HEADER } from './signing';

/** Deliveries claimed (and sent at once) per round. */
const BATCH = 20;
/** The longest wait between two attempts of a delivery. */
const MAX_BACKOFF_MS = 3_600_000;

interface ClaimedDelivery {
  id: number;
  webhook_id: number;
  event: string;
  payload: string;
  created_at: Date;
  attempts: number;
  url: string;
  secret: string;
  chat_id: number;
  /** The claim's lease token: the outcome is stored only while it is still this. */
  token: string;
}

/** One attempt's outcome, once stored. */
export interface DeliveryOutcome {
  deliveryId: number;
  webhookId: number;
  verdict: 'delivered' | 'retry' | 'failed';
}

/** What happened to one attempt, as stored. */
type Verdict =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status: number | null; error: string; delay: number }
  /** Given up; `disable` (a reason) when the webhook itself is at fault, so it receives nothing more. */
  | { kind: 'failed'; status: number | null; error: string; disable: string | null };

/**
 * The body of a delivery, built from its stored row: every attempt sends the same bytes.
 * `data` is the stored payload text, spliced in as it is.
 */
export const deliveryBody = (row: Pick<ClaimedDelivery, 'id' | 'event' | 'created_at' | 'webhook_id' | 'chat_id' | 'payload'>) =>
  `{"id":${row.id},"type":${JSON.stringify(row.event)},"created_at":${JSON.stringify(new Date(row.created_at).toISOString())},"webhook_id":${row.webhook_id},"chat_id":${row.chat_id},"data":${row.payload}}`;

/**
 * The delay before attempt `attempt + 1`: exponential from `baseMs`, capped at an hour, with "equal
 * jitter" (half fixed, half random) so receivers coming back are not hit by every sender at once.
 */
export function backoffMs(attempt: number, baseMs: number, random = Math.random): number {
  const ceiling = Math.min(baseMs * 2 ** Math.min(attempt - 1, 40), MAX_BACKOFF_MS);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Sends the outbox's deliveries: claims due ones with a lease (atomically, so with several instances
 * each is sent by one; PostgreSQL skips rows another instance is claiming), signs and POSTs each,
 * and records the outcome only while it still holds the lease. Retries timeouts, network errors,
 * 408, 429 and 5xx with exponential backoff and jitter until WEBHOOK_RETRY_WINDOW_MS after the
 * event; then the delivery fails and its webhook is disabled, with the reason for its owner.
 *
 * A resource of the app: `start` once, `stop` on shutdown. Its timer never keeps the process alive,
 * and a failing database only costs it a round (logged), never the process.
 */
export class WebhookDeliveryWorker {
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private readonly unlisten: () => void;
  private readonly outcomeListeners = new Set<(outcome: DeliveryOutcome) => void>();

  constructor(
    private readonly db: Database,
    private readonly engine: Config['database']['engine'],
    private readonly settings: Config['webhooks'],
    outbox: WebhookOutbox,
    private readonly resolve: Resolver,
    private readonly log: Logger,
  ) {
    this.unlisten = outbox.onRecorded(() => this.wake());
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops claiming, aborts attempts in flight (their leases are released, so they are sent again), and waits for the loop to end. */
  async stop(): Promise<void> {
    this.unlisten();
    this.stopping.abort();
    this.wakeUp?.();
    await this.loop;
  }

  /** Told of each attempt's stored outcome (tests wait on it instead of polling). */
  onOutcome(listener: (outcome: DeliveryOutcome) => void): () => void {
    this.outcomeListeners.add(listener);
    return () => this.outcomeListeners.delete(listener);
  }

  /** Look for due deliveries now rather than at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** One round: claims up to BATCH due deliveries and sends them all; answers how many it claimed. */
  async round(): Promise<number> {
    const claimed = await this.claim();
    await Promise.all(claimed.map((delivery) => this.deliver(delivery)));
    return claimed.length;
  }

  /** The soonest retry this instance scheduled, so a short backoff is not stretched to a whole poll. */
  private soonestRetry = Infinity;

  private async run(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      this.woken = false;
      let claimed = 0;
      try {
        claimed = await this.round();
      } catch (error) {
        if (!this.stopping.signal.aborted) this.log.warn({ err: error }, 'webhook deliveries could not be claimed; trying again at the next poll');
      }
      if (claimed < BATCH && !this.woken) await this.idle();
    }
  }

  /** Waits for WEBHOOK_POLL_MS, a wake-up or the stop, whichever comes first; the timer holds no process open. */
  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const untilRetry = Math.max(0, this.soonestRetry - Date.now());
      this.soonestRetry = Infinity;
      const timer = setTimeout(done, Math.min(this.settings.pollMs, untilRetry));
      timer.unref();
      this.wakeUp = done;
      if (this.stopping.signal.aborted) done();
    });
  }

  /** Longer than any attempt: a lease outlives its sender only when the sender died. */
  private get leaseMs() {
    return this.settings.timeoutMs * 2 + 2_000;
  }

  private async claim(): Promise<ClaimedDelivery[]> {
    const now = new Date();
    const leaseUntil = new Date(now.getTime() + this.leaseMs);
    const token = crypto.randomUUID();
    const claimed =
      this.engine === 'postgres'
        ? await this.db.$queryRaw<{ id: number }[]>`
            UPDATE webhook_deliveries SET lease_until = ${leaseUntil}, lease_token = ${token}
            WHERE id IN (
              SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
              WHERE d.status = 'pending' AND d.next_attempt_at <= ${now} AND (d.lease_until IS NULL OR d.lease_until < ${now}) AND w.disabled_at IS NULL
              ORDER BY d.id LIMIT ${BATCH} FOR UPDATE OF d SKIP LOCKED)
            RETURNING id`
        : // SQLite runs one write at a time: the UPDATE's own read is the claim.
          await this.db.$queryRaw<{ id: number }[]>`
            UPDATE webhook_deliveries SET lease_until = ${leaseUntil}, lease_token = ${token}
            WHERE id IN (
              SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
              WHERE d.status = 'pending' AND d.next_attempt_at <= ${now} AND (d.lease_until IS NULL OR d.lease_until < ${now}) AND w.disabled_at IS NULL
              ORDER BY d.id LIMIT ${BATCH})
            RETURNING id`;
    if (claimed.length === 0) return [];
    const rows = await this.db.webhookDelivery.findMany({
      where: { leaseToken: token },
      orderBy: { id: 'asc' },
      select: {
        id: true,
        webhookId: true,
        event: true,
        payload: true,
        createdAt: true,
        attempts: true,
        webhook: { select: { url: true, secret: true, chatId: true } },
      },
    });
    return rows.map((row) => ({
      id: row.id,
      webhook_id: row.webhookId,
      event: row.event,
      payload: row.payload,
      created_at: row.createdAt,
      attempts: row.attempts,
      url: row.webhook.url,
      secret: row.webhook.secret,
      chat_id: row.webhook.chatId,
      token,
    }));
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const body = deliveryBody(delivery);
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'GeminiCoop-Webhooks/1',
      [DELIVERY_ID_HEADER]: String(delivery.id),
      [EVENT_HEADER]: delivery.event,
      [TIMESTAMP_HEADER]: String(timestamp),
      [SIGNATURE_HEADER]: signDelivery(delivery.secret, timestamp, body),
    };
    const outcome = await sendOnce(delivery.url, headers, body, {
      allowPrivate: this.settings.allowPrivate,
      timeoutMs: this.settings.timeoutMs,
      resolve: this.resolve,
      signal: this.stopping.signal,
    });
    try {
      if (this.stopping.signal.aborted && outcome.kind === 'unreachable') await this.release(delivery.id, delivery.token);
      else {
        const verdict = this.judge(delivery, outcome);
        await this.record(delivery, verdict);
        for (const listener of this.outcomeListeners) listener({ deliveryId: delivery.id, webhookId: delivery.webhook_id, verdict: verdict.kind });
      }
    } catch (error) {
      // Its lease runs out and it is sent again: at least once.
      this.log.warn({ err: error, deliveryId: delivery.id }, 'a webhook delivery outcome could not be stored');
    }
  }

  private judge(delivery: ClaimedDelivery, outcome: SendOutcome): Verdict {
    if (outcome.kind === 'refused') return { kind: 'failed', status: null, error: outcome.error, disable: `Its URL is not allowed: ${outcome.error}` };
    const status = outcome.kind === 'answered' ? outcome.status : null;
    if (status !== null && status >= 200 && status < 300) return { kind: 'delivered', status };
    const error = outcome.kind === 'answered' ? `answered ${outcome.status}${outcome.body ? `: ${outcome.body.slice(0, 200)}` : ''}` : outcome.error;
    const retryable = status === null || status >= 500 || status === 408 || status === 429;
    if (!retryable) {
      const redirect = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
      return { kind: 'failed', status, error: `${error}${redirect}`, disable: status === 410 ? 'The receiver answered 410 Gone' : null };
    }
    const delay = backoffMs(delivery.attempts + 1, this.settings.retryBaseMs);
    const deadline = new Date(delivery.created_at).getTime() + this.settings.retryWindowMs;
    if (Date.now() + delay > deadline) {
      const window = Math.round(this.settings.retryWindowMs / 1000);
      return { kind: 'failed', status, error, disable: `Deliveries kept failing for ${window} s (${delivery.attempts + 1} attempts); the last one: ${error}` };
    }
    return { kind: 'retry', status, error, delay };
  }

  private async record(delivery: ClaimedDelivery, verdict: Verdict): Promise<void> {
    const now = new Date();
    const held = { id: delivery.id, leaseToken: delivery.token };
    const released = { leaseUntil: null, leaseToken: null, attempts: { increment: 1 } };
    if (verdict.kind === 'delivered') {
      await this.db.webhookDelivery.updateMany({
        where: held,
        data: { ...released, status: 'delivered', deliveredAt: now, responseStatus: verdict.status, lastError: null },
      });
      return;
    }
    if (verdict.kind === 'retry') {
      this.soonestRetry = Math.min(this.soonestRetry, now.getTime() + verdict.delay);
      await this.db.webhookDelivery.updateMany({
        where: held,
        data: { ...released, nextAttemptAt: new Date(now.getTime() + verdict.delay), responseStatus: verdict.status, lastError: verdict.error },
      });
      return;
    }
    const { count } = await this.db.webhookDelivery.updateMany({
      where: held,
      data: { ...released, status: 'failed', responseStatus: verdict.status, lastError: verdict.error },
    });
    if (count === 0 || verdict.disable === null) return;
    this.log.warn({ webhookId: delivery.webhook_id, reason: verdict.disable }, 'a webhook was disabled');
    await this.db.webhook.updateMany({ where: { id: delivery.webhook_id, disabledAt: null }, data: { disabledAt: now, disabledReason: verdict.disable } });
    await this.db.webhookDelivery.updateMany({
      where: { webhookId: delivery.webhook_id, status: 'pending' },
      data: { status: 'failed', lastError: 'Not sent: the webhook was disabled', leaseUntil: null, leaseToken: null },
    });
  }

  /** Gives an attempt cut short by the stop back to the outbox, due now, for whichever instance runs next. */
  private async release(id: number, token: string): Promise<void> {
    await this.db.webhookDelivery.updateMany({ where: { id, leaseToken: token }, data: { leaseUntil: null, leaseToken: null } });
  }
}
