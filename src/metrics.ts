import { createHash, timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { bearerToken } from './services/auth.service';

const SOCKET_TRANSPORTS = ['ws', 'graphql-ws'] as const;
export type SocketTransport = (typeof SOCKET_TRANSPORTS)[number];
/** What a limit refused: each rate limit and cap of the server. */
export type RefusalKind =
  | 'login'
  | 'register'
  | 'oauth_start'
  | 'message'
  | 'reaction'
  | 'ws_frame'
  | 'bot'
  | 'bot_budget'
  | 'socket_cap'
  | 'password_queue'
  | 'search_queue'
  | 'upload_queue'
  | 'upload_too_slow';
/** How a bot answer ended: the model finished, a member or a shutdown cut it short, or it failed (model, network, storage). */
export type AnswerOutcome = 'completed' | 'stopped' | 'failed';
export type PubsubMode = 'local' | 'redis';

const PREFIX = 'gemini_coop_';
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * One app's Prometheus metrics, on a registry of its own (tests run many apps in one process).
 * Hot paths only increment: label values are closed sets (transports, kinds, outcomes, route
 * templates, status codes), so no client input can grow the number of series.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: `${PREFIX}http_requests_total`,
    help: 'HTTP requests answered, by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'Time from a request to its response headers, by method and route template',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly openSockets = new Gauge({
    name: `${PREFIX}open_sockets`,
    help: 'WebSockets open now, by transport (ws: the original /ws protocol; graphql-ws)',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly messagesStored = new Counter({
    name: `${PREFIX}messages_stored_total`,
    help: "Users' messages stored (REST, GraphQL and /ws alike)",
    registers: [this.registry],
  });
  readonly messageBatchSize = new Histogram({
    name: `${PREFIX}message_batch_size`,
    help: 'Messages per transaction of the group commit',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers: [this.registry],
  });
  /** Frames delivered since the metrics were last read, by transport (see `delivered`). */
  private readonly deliveredUnread: Record<SocketTransport, number> = { ws: 0, 'graphql-ws': 0 };
  readonly framesDelivered = new Counter({
    name: `${PREFIX}frames_delivered_total`,
    help: 'Frames handed to sockets, by transport: /ws pushes (messages, bot stream steps, typing, join/leave notices, user events, catch-up) and graphql-ws results',
    labelNames: ['transport'] as const,
    registers: [this.registry],
    collect: () => {
      for (const transport of SOCKET_TRANSPORTS) {
        this.framesDelivered.inc({ transport }, this.deliveredUnread[transport]);
        this.deliveredUnread[transport] = 0;
      }
    },
  });
  readonly botAnswers = new Counter({
    name: `${PREFIX}bot_answers_total`,
    help: 'Bot answers ended, by outcome (completed, stopped, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly botTimeToFirstToken = new Histogram({
    name: `${PREFIX}bot_time_to_first_token_seconds`,
    help: "Time from a bot answer's start to the model's first text",
    buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    registers: [this.registry],
  });
  readonly botAnswerDuration = new Histogram({
    name: `${PREFIX}bot_answer_duration_seconds`,
    help: "Time from a bot answer's start to its end, whatever the outcome",
    buckets: [0.5, 1, 2, 5, 10, 20, 40, 60, 120, 300],
    registers: [this.registry],
  });
  readonly botTokens = new Counter({
    name: `${PREFIX}bot_tokens_total`,
    help: 'Tokens the model reported using, by kind (prompt, candidates)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly botUsageTokens = new Counter({
    name: `${PREFIX}bot_usage_tokens_total`,
    help: 'Total tokens the model reported, by model (one of BOT_MODELS) and purpose (answer, summary: long memory)',
    labelNames: ['model', 'purpose'] as const,
    registers: [this.registry],
  });
  readonly pubsubUp = new Gauge({
    name: `${PREFIX}pubsub_up`,
    help: 'Whether events reach every instance: 1 (in memory for one process, or Redis answering), 0 (Redis unreachable); mode is local or redis',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });
  readonly pubsubPublishErrors = new Counter({
    name: `${PREFIX}pubsub_publish_errors_total`,
    help: 'Events Redis refused or never confirmed (PUBLISH failed)',
    registers: [this.registry],
  });
  readonly presenceChanges = new Counter({
    name: `${PREFIX}presence_changes_total`,
    help: 'Users this instance announced online or offline, by status (each change is announced by one instance of the cluster)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly rateLimitRefusals = new Counter({
    name: `${PREFIX}rate_limit_refusals_total`,
    help: 'Requests, frames and sockets refused by a limit, by kind (login, register, oauth_start, message, reaction, ws_frame, bot, bot_budget, socket_cap, password_queue, search_queue, upload_queue, upload_too_slow)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor() {
    // Every closed label set starts at 0, so a rate over it is defined before the first event.
    for (const transport of SOCKET_TRANSPORTS) {
      this.openSockets.set({ transport }, 0);
      this.framesDelivered.inc({ transport }, 0);
    }
    for (const outcome of ['completed', 'stopped', 'failed'] satisfies AnswerOutcome[]) this.botAnswers.inc({ outcome }, 0);
    for (const kind of ['prompt', 'candidates']) this.botTokens.inc({ kind }, 0);
    for (const status of ['online', 'offline']) this.presenceChanges.inc({ status }, 0);
    for (const kind of [
      'login',
      'register',
      'oauth_start',
      'message',
      'reaction',
      'ws_frame',
      'bot',
      'bot_budget',
      'socket_cap',
      'password_queue',
      'search_queue',
      'upload_queue',
      'upload_too_slow',
    ] satisfies RefusalKind[]) {
      this.rateLimitRefusals.inc({ kind }, 0);
    }
  }

  /** Counts one answered HTTP request; `route` is a template (`/api/chats/:id`), never a raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const knownMethod = KNOWN_METHODS.has(method) ? method : 'other';
    this.httpRequests.inc({ method: knownMethod, route, status });
    this.httpDuration.observe({ method: knownMethod, route }, seconds);
  }

  refused(kind: RefusalKind): void {
    this.rateLimitRefusals.inc({ kind });
  }

  /**
   * Counted on every fan-out, so added up here and handed to the counter when the metrics are read:
   * prom-client hashes and checks a series' labels on every `inc`, through `labels()` too.
   */
  delivered(transport: SocketTransport, frames: number): void {
    this.deliveredUnread[transport] += frames;
  }

  /** The app's metrics and the process's, in Prometheus' text format. */
  exposition(): Promise<string> {
    return Registry.merge([processRegistry(), this.registry]).metrics();
  }

  /** Forgets the app's series; the process's stay with the process. */
  close(): void {
    this.registry.clear();
  }
}

let processMetrics: Registry | undefined;

/**
 * prom-client's default set (CPU, memory, file descriptors, event-loop delay, GC), registered once
 * per process rather than once per app: `collectDefaultMetrics` starts an event-loop-delay monitor
 * and a GC observer and returns no way to stop them, so one set per app would leave a monitor
 * running after each app closed. They describe the process, so every app in it shares them.
 * Unprefixed (`process_*`, `nodejs_*`), the names the usual Node.js dashboards expect.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** Compared as digests, so the time taken says nothing of the token's length or content. */
const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * `GET /metrics`: the exposition, behind `Authorization: Bearer <METRICS_TOKEN>` when a token is set.
 * @example await serveMetrics(request, metrics, config.metrics.token)
 */
export async function serveMetrics(request: Request, metrics: Metrics, token: string | null): Promise<Response> {
  if (request.method !== 'GET' && request.method !== 'HEAD')
    return Response.json({ detail: 'Method Not Allowed' }, { status: 405, headers: { Allow: 'GET, HEAD' } });
  if (token !== null) {
    const given = bearerToken(request.headers.get('authorization'));
    if (given === null || !timingSafeEqual(digest(given), digest(token))) {
      return Response.json({ detail: 'Not authenticated' }, { status: 401, headers: { 'WWW-Authenticate': 'Bearer' } });
    }
  }
  return new Response(await metrics.exposition(), { headers: { 'Content-Type': metrics.registry.contentType } });
}
