import type { ValidationContext } from 'graphql';
import { GraphQLError } from 'graphql';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { createYoga } from 'graphql-yoga';
import type { Server, WebSocketHandler } from 'bun';
import type { Config } from './config';
import { sharedSqliteFile } from './config';
import type { Database } from './db/client';
import { openDatabase } from './db/client';
import { SqliteCheckpointer } from './db/sqlite-checkpointer';
import { bodyTooLarge, preflight, readBodyText, secure } from './http-edge';
import { GRAPHIQL_EXAMPLE } from './graphiql-example';
import { createHttpRouter } from './http-router';
import type { Logger } from './log';
import { createLogger, inRequest } from './log';
import { Metrics, serveMetrics } from './metrics';
import { schema } from './schema';
import type { Context } from './schema/context';
import { lazyViewer } from './schema/context';
import type { Services } from './services';
import { createServices } from './services';
import { bearerToken } from './services/auth.service';
import { AppError, domainError } from './services/errors';
import { createEventBus } from './services/pubsub';
import type { Resolver } from './services/webhooks/address-safety';
import type { SocketData } from './ws';
import { createWebSockets } from './ws';
import { CLOSE, openingState } from './ws/socket-session';
import { ChatSocketHub } from './ws/chat-socket';
import type { GraphqlSocketData, GraphqlWsServerContext } from './ws/graphql-socket';
import { createGraphqlSocketHandler } from './ws/graphql-socket';

export interface App {
  /**
   * Answers one HTTP request: REST, GraphQL, `/metrics`, or 404; with a `server`, also upgrades
   * `/ws` and graphql-ws sockets and knows client addresses. Each request gets an id, returned as
   * `X-Request-Id`, carried by every line logged while answering it, and one log line when answered.
   */
  fetch: (request: Request, server?: Server<SocketData>) => Promise<Response | undefined>;
  websocket: WebSocketHandler<SocketData>;
  services: Services;
  /**
   * For a graceful stop, once the server accepts nothing new: no bot answer starts any more (queued
   * asks stay pending), running ones get `graceMs` to finish (then are stopped and stored stopped or
   * failed), and every socket is closed with 1001.
   */
  drain: (graceMs: number) => Promise<void>;
  close: () => Promise<void>;
}

export interface AppOptions {
  /** Receives each SQL statement; tests count them to guard against N+1 queries. */
  logQuery?: (query: string) => void;
  /** Told of each execution of a graphql-ws event shared by its subscribers; tests count them. */
  onSharedExecution?: () => void;
  /** Apply pending migrations on open (default); false when they were applied already (`npm start` does it in a child process). */
  migrate?: boolean;
  /** Where the app logs; by default at LOG_LEVEL to the process's output. Tests pass one that writes to an array. */
  log?: Logger;
  /** How webhook host names resolve (the system's DNS by default); tests stand in for DNS. */
  resolveHost?: Resolver;
}

/** The GraphQL limits, explicit so clients and tests know them. */
// Cost: armor multiplies a list field by a literal `first`/`last`, so one page of 200 messages with a
// dozen fields on each chat costs 22,345 (measured); the limit admits that and refuses wider or nested pages.
export const GRAPHQL_LIMITS = { depth: 8, aliases: 15, tokens: 1000, directives: 10, cost: 50_000 } as const;

/** How often each instance deletes the uploads that were never sent with a message (UNATTACHED_TTL_MS after upload). */
const SWEEP_EVERY_MS = 3_600_000;

/** The request with its body read as REST reads bodies (`readBodyText`); a 413 or 400 when that refuses it. */
async function withCheckedBody(request: Request): Promise<Request | Response> {
  if (request.method !== 'POST') return request;
  try {
    return new Request(request, { body: await readBodyText(request) });
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    if (error.code === 'PAYLOAD_TOO_LARGE') return Response.json({ detail: error.message }, { status: 413 });
    return Response.json({ errors: [{ message: error.message, extensions: { code: 'BAD_REQUEST' } }] }, { status: 400 });
  }
}

/** Armor's refusals reported as validation errors: a 400 with GRAPHQL_VALIDATION_FAILED, like any other. */
const asValidationError = {
  propagateOnRejection: false,
  onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)],
};

/** Builds the whole server over one service layer; `Bun.serve` (src/server.ts) only hosts it. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? createLogger({ level: config.logLevel });
  for (const warning of config.startupWarnings) log.warn(warning);
  const metrics = new Metrics();
  const db: Database = await openDatabase(config.database, { log: options.logQuery, migrate: options.migrate });
  const sqliteFile = sharedSqliteFile(config.database);
  const checkpointer = sqliteFile ? await SqliteCheckpointer.start(db, sqliteFile, log.child({ component: 'database' })) : null;
  const bus = await createEventBus(config.redisUrl, config.redisPrefix, log, metrics);
  const services = createServices(db, config, bus, log, metrics, options.resolveHost);
  // Alone, this process knows no answer is running anywhere; with Redis, other instances may be
  // streaming, and the room lock's holder clears what a dead one left instead.
  if (!bus.redis) await services.bot.failInterruptedAnswers();
  // Asks left pending by a stop or a crash, here or on an instance that is gone, are answered now.
  await services.bot.answerAllPending();
  // Deliveries written before a stop or a crash, here or anywhere, are sent from now on.
  services.webhookWorker.start();
  // Uploads never sent go a day after their upload; every instance sweeps (deleting twice is harmless).
  const sweepLog = log.child({ component: 'attachments' });
  const sweep = () =>
    void services.attachments.sweep().then(
      (count) => count > 0 && sweepLog.info({ count }, 'swept uploads never sent'),
      (error: unknown) => sweepLog.error({ err: error }, 'sweeping unsent uploads failed'),
    );
  const sweeper = setInterval(sweep, SWEEP_EVERY_MS);
  sweeper.unref();

  const yoga = createYoga<GraphqlWsServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: config.production ? false : { defaultQuery: GRAPHIQL_EXAMPLE },
    // GraphiQL's bundle is large and production never serves it: loaded only when it is on.
    renderGraphiQL: config.production ? undefined : (await import('@graphql-yoga/render-graphiql')).renderGraphiQL,
    landingPage: false,
    logging: quietAboutClientErrors(yogaLogger(log.child({ component: 'graphql' }))),
    context: ({ request, clientAddress, socketUser }) => ({
      services,
      clientAddress,
      // graphql-ws operations have no request: their user was authenticated at connection_init.
      viewer: socketUser ? () => Promise.resolve(socketUser) : lazyViewer(services, bearerToken(request.headers.get('authorization'))),
    }),
    maskedErrors: { maskError: (error, message) => toGraphQLError(error, message) },
    // One CORS policy for REST and GraphQL, applied at the HTTP edge (src/http-edge.ts).
    cors: false,
    // Explicit limits, each tested just under and just over (test/graphql-limits.test.ts).
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: GRAPHQL_LIMITS.depth, ...asValidationError },
        maxAliases: { n: GRAPHQL_LIMITS.aliases, ...asValidationError },
        maxTokens: { n: GRAPHQL_LIMITS.tokens },
        maxDirectives: { n: GRAPHQL_LIMITS.directives, ...asValidationError },
        costLimit: { maxCost: GRAPHQL_LIMITS.cost, ...asValidationError },
        blockFieldSuggestion: { enabled: config.production },
      }),
      config.production ? useDisableIntrospection() : {},
    ],
  });

  const chatSockets = new ChatSocketHub(services, config.limits.wsRatePerSecond, config.bot.name);
  const sockets = createWebSockets(
    chatSockets,
    createGraphqlSocketHandler(
      yoga,
      services,
      // What graphql-ws paths mask themselves (thrown by a subscription's source, or in a result executed
      // for its subscribers together) Yoga never sees: an error that is not the client's is logged here.
      (error) => {
        const masked = toGraphQLError(error, 'Unexpected error.');
        if (masked instanceof GraphQLError && masked.extensions.code === 'INTERNAL_SERVER_ERROR') {
          log.error({ err: error, component: 'graphql-ws' }, 'a subscription failed');
        }
        return masked;
      },
      options.onSharedExecution,
    ),
    services,
    log,
    metrics,
  );

  const httpRouter = createHttpRouter(services, { production: config.production });

  /** Sends a request to its adapter: `/ws`, GraphQL (HTTP or graphql-ws), `/metrics`, or the plain HTTP routes (REST, docs, front door). */
  async function route(request: Request, url: URL, server: Server<SocketData> | undefined): Promise<Response | undefined> {
    if (bodyTooLarge(request, url.pathname, config.uploads.maxBytes)) return Response.json({ detail: 'Request body too large' }, { status: 413 });
    const clientAddress = server?.requestIP(request)?.address ?? null;
    const wantsSocket = request.headers.get('upgrade')?.toLowerCase() === 'websocket';
    if (url.pathname === '/ws') {
      if (!server || !wantsSocket) return Response.json({ detail: 'Upgrade Required' }, { status: 426 });
      return chatSockets.upgrade(request, url, server);
    }
    if (url.pathname === '/graphql') {
      if (server && wantsSocket) {
        const data: GraphqlSocketData = { kind: 'graphql', user: null, operations: new Map(), ...openingState() };
        return server.upgrade(request, { data }) ? undefined : new Response('Upgrade Required', { status: 426 });
      }
      const checked = await withCheckedBody(request);
      return checked instanceof Response ? checked : yoga.fetch(checked, { clientAddress });
    }
    if (url.pathname === '/metrics' && config.metrics.enabled) return serveMetrics(request, metrics, config.metrics.token);
    return httpRouter.fetch(request, clientAddress);
  }

  /** What logs and metrics name a request by: its route's template, never the raw path (ids) or query (a `/ws` token). */
  const routeName = (pathname: string) =>
    pathname === '/ws' || pathname === '/graphql' || (pathname === '/metrics' && config.metrics.enabled)
      ? pathname
      : (httpRouter.routeTemplate(pathname) ?? 'unmatched');

  const httpLog = log.child({ component: 'http' });

  /** The response, secured; a fault no adapter caught is logged and answered 500. */
  async function respond(request: Request, url: URL, server: Server<SocketData> | undefined): Promise<Response | undefined> {
    try {
      const response = preflight(request, config.cors) ?? (await route(request, url, server));
      return response && secure(response, request, config.cors);
    } catch (error) {
      httpLog.error({ err: error }, 'unhandled error');
      return secure(Response.json({ detail: 'Internal server error' }, { status: 500 }), request, config.cors);
    }
  }

  return {
    services,
    websocket: sockets.handler,
    fetch(request, server) {
      const requestId = crypto.randomUUID();
      return inRequest(requestId, async () => {
        const startedAt = performance.now();
        const url = new URL(request.url);
        const response = await respond(request, url, server);
        response?.headers.set('X-Request-Id', requestId);
        // An upgraded socket has no response here: the client got 101 Switching Protocols.
        const status = response?.status ?? 101;
        const durationMs = performance.now() - startedAt;
        const route = routeName(url.pathname);
        metrics.observeRequest(request.method, route, status, durationMs / 1000);
        httpLog.info({ method: request.method, route, status, durationMs: Math.round(durationMs * 10) / 10 }, 'request');
        return response;
      });
    },
    async drain(graceMs) {
      await Promise.all([services.bot.shutdown(graceMs), services.webhookWorker.stop()]);
      sockets.closeAll(CLOSE.shuttingDown.code, CLOSE.shuttingDown.reason);
    },
    async close() {
      await services.webhookWorker.stop();
      clearInterval(sweeper);
      await services.presence.close();
      await services.search.close();
      await bus.close();
      await checkpointer?.close();
      await db.$disconnect();
      metrics.close();
    },
  };
}

/** The GraphQL edge of the error family: domain errors keep their code, anything else is masked. */
function toGraphQLError(error: unknown, maskedMessage: string): Error {
  const domain = causes(error)
    .map(domainError)
    .find((cause) => cause !== null);
  if (domain) {
    return new GraphQLError(domain.message, {
      extensions: {
        code: domain.code,
        ...(domain.code === 'BAD_USER_INPUT' && domain.detail ? { issues: domain.detail } : {}),
        ...(domain.retryAfterSeconds !== undefined ? { retryAfterSeconds: domain.retryAfterSeconds } : {}),
      },
    });
  }
  // Only a client-made cursor reaches Prisma unchecked (every other input passes zod first).
  if (causes(error).some((cause) => cause instanceof Error && cause.name === 'PrismaClientValidationError')) {
    return new GraphQLError('Invalid cursor', { extensions: { code: 'BAD_USER_INPUT' } });
  }
  // Yoga parses GET `variables` and `extensions` itself and lets a JSON SyntaxError through.
  if (causes(error).some((cause) => cause instanceof SyntaxError)) {
    return new GraphQLError('Invalid JSON in request parameters', { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });
  }
  // graphql-js and Pothos wrap a client's mistake (a mistyped variable, a bad cursor) in another
  // GraphQLError: a chain of GraphQL errors only is the client's, anything else in it is ours.
  if (error instanceof GraphQLError && causes(error).every((cause) => cause instanceof GraphQLError)) {
    // Returned as it is when there is nothing to strip: Yoga logs every error it sees replaced.
    if (!error.originalError && !('originalError' in error.extensions)) return error;
    const { originalError: _runtimeDetail, ...extensions } = error.extensions;
    return new GraphQLError(error.message, {
      nodes: error.nodes,
      source: error.source,
      positions: error.positions,
      path: error.path,
      extensions: { ...extensions, code: extensions.code ?? 'BAD_USER_INPUT' },
    });
  }
  // Yoga's logger reports the original error; the client sees only the masked message.
  return new GraphQLError(maskedMessage, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/** An error and the errors it wraps, outermost first. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && current !== null && chain.length < 10;) {
    chain.push(current);
    current = current instanceof GraphQLError ? current.originalError : undefined;
  }
  return chain;
}

type YogaLogger = Record<'debug' | 'info' | 'warn' | 'error', (...args: unknown[]) => void>;

/** Yoga's log calls as lines of the app's log: an error as `err`, anything else as the message. */
function yogaLogger(log: Logger): YogaLogger {
  const at =
    (level: keyof YogaLogger) =>
    (...args: unknown[]) => {
      const error = args.find((arg) => arg instanceof Error);
      const text = args
        .filter((arg) => arg !== error)
        .map(String)
        .join(' ');
      if (error) log[level]({ err: error }, text || 'GraphQL operation failed');
      else log[level](text);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Yoga logs every error it replaces; a client's mistake (a 403, a mistyped variable) is not worth a log line. */
function quietAboutClientErrors(logger: YogaLogger): YogaLogger {
  const isClientError = (value: unknown) =>
    value instanceof GraphQLError && causes(value).every((cause) => cause instanceof GraphQLError || cause instanceof AppError);
  return {
    ...logger,
    error: (...args: unknown[]) => {
      if (!args.some(isClientError)) logger.error(...args);
    },
  };
}
