import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { GraphQLError } from 'graphql';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { createLogger, createYoga } from 'graphql-yoga';
import type { Server, WebSocketHandler } from 'bun';
import type { Config } from './config';
import type { Database } from './db/client';
import { openDatabase } from './db/client';
import { bodyTooLarge, preflight, secure } from './http-edge';
import { handleRest } from './rest/router';
import { schema } from './schema';
import type { Context } from './schema/context';
import { lazyViewer } from './schema/context';
import type { Services } from './services';
import { createServices } from './services';
import { bearerToken } from './services/auth.service';
import { AppError } from './services/errors';
import { createEventBus } from './services/pubsub';
import type { SocketData } from './ws';
import { createWebSockets } from './ws';
import { ChatSocketHub } from './ws/chat-socket';
import type { GraphqlSocketData, GraphqlWsServerContext } from './ws/graphql-socket';
import { createGraphqlSocketHandler } from './ws/graphql-socket';

export interface App {
  /**
   * Answers one HTTP request: REST, GraphQL, or 404; with a `server`, also upgrades `/ws` and
   * graphql-ws sockets and knows client addresses.
   */
  fetch: (request: Request, server?: Server<SocketData>) => Promise<Response | undefined>;
  websocket: WebSocketHandler<SocketData>;
  services: Services;
  /**
   * For a graceful stop, once the server accepts nothing new: running bot answers get `graceMs` to
   * finish (then are stopped and stored as failed), and every socket is closed with 1001.
   */
  drain: (graceMs: number) => Promise<void>;
  close: () => Promise<void>;
}

export interface AppOptions {
  /** Receives each SQL statement; tests count them to guard against N+1 queries. */
  logQuery?: (query: string) => void;
}

/** The GraphQL limits, explicit so clients and tests know them. */
// Cost: armor multiplies a list field by a literal `first`/`last`, so one page of 200 messages with a
// dozen fields on each chat costs 22,345 (measured); the limit admits that and refuses wider or nested pages.
export const GRAPHQL_LIMITS = { depth: 8, aliases: 15, tokens: 1000, directives: 10, cost: 50_000 } as const;

/** Builds the whole server over one service layer; `Bun.serve` (src/server.ts) only hosts it. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const db: Database = await openDatabase(config.database, { log: options.logQuery });
  const bus = await createEventBus(config.redisUrl, config.redisPrefix);
  const services = createServices(db, config, bus);
  // Alone, this process knows no answer is running anywhere; with Redis, other instances may be
  // streaming, and the room lock's holder clears what a dead one left instead.
  if (!bus.redis) await services.bot.failInterruptedAnswers();

  const yoga = createYoga<GraphqlWsServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: !config.production,
    renderGraphiQL,
    landingPage: false,
    logging: quietAboutDomainErrors(createLogger(config.production ? 'warn' : 'info')),
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
        maxDepth: { n: GRAPHQL_LIMITS.depth },
        maxAliases: { n: GRAPHQL_LIMITS.aliases },
        maxTokens: { n: GRAPHQL_LIMITS.tokens },
        maxDirectives: { n: GRAPHQL_LIMITS.directives },
        costLimit: { maxCost: GRAPHQL_LIMITS.cost },
        blockFieldSuggestion: { enabled: config.production },
      }),
      config.production ? useDisableIntrospection() : {},
    ],
  });

  const chatSockets = new ChatSocketHub(services, config.limits.wsRatePerSecond);
  const sockets = createWebSockets(chatSockets, createGraphqlSocketHandler(yoga, services));

  /** Sends a request to its adapter: `/ws`, GraphQL (HTTP or graphql-ws), or REST. */
  async function route(request: Request, server: Server<SocketData> | undefined): Promise<Response | undefined> {
    if (bodyTooLarge(request)) return Response.json({ detail: 'Request body too large' }, { status: 413 });
    const url = new URL(request.url);
    const clientAddress = server?.requestIP(request)?.address ?? null;
    const wantsSocket = request.headers.get('upgrade')?.toLowerCase() === 'websocket';
    if (url.pathname === '/ws') {
      if (!server || !wantsSocket) return Response.json({ detail: 'Upgrade Required' }, { status: 426 });
      return chatSockets.upgrade(request, url, server);
    }
    if (url.pathname === '/graphql') {
      if (server && wantsSocket) {
        const data: GraphqlSocketData = { kind: 'graphql', user: null };
        return server.upgrade(request, { data }) ? undefined : new Response('Upgrade Required', { status: 426 });
      }
      return yoga.fetch(request, { clientAddress });
    }
    return (await handleRest(request, url, services, clientAddress)) ?? Response.json({ detail: 'Not Found' }, { status: 404 });
  }

  return {
    services,
    websocket: sockets.handler,
    async fetch(request, server) {
      const preflightResponse = preflight(request, config.cors);
      if (preflightResponse) return preflightResponse;
      const response = await route(request, server);
      return response && secure(response, request, config.cors);
    },
    async drain(graceMs) {
      await services.bot.shutdown(graceMs);
      sockets.closeAll(1001, 'Server shutting down');
    },
    async close() {
      await bus.close();
      await db.$disconnect();
    },
  };
}

/** The GraphQL edge of the error family: domain errors keep their code, anything else is masked. */
function toGraphQLError(error: unknown, maskedMessage: string): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof AppError) {
    return new GraphQLError(original.message, {
      extensions: {
        code: original.code,
        ...(original.code === 'BAD_USER_INPUT' && original.detail ? { issues: original.detail } : {}),
        ...(original.retryAfterSeconds !== undefined ? { retryAfterSeconds: original.retryAfterSeconds } : {}),
      },
    });
  }
  if (error instanceof GraphQLError && !error.originalError) return error;
  // Yoga's logger reports the original error; the client sees only the masked message.
  return new GraphQLError(maskedMessage, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/** Yoga logs every error it masks; a domain error (a wrong password, a 403) is not worth a log line. */
function quietAboutDomainErrors(logger: ReturnType<typeof createLogger>): ReturnType<typeof createLogger> {
  const isDomainError = (value: unknown) =>
    value instanceof AppError || (value instanceof GraphQLError && value.originalError instanceof AppError);
  return {
    ...logger,
    error: (...args: unknown[]) => {
      if (!args.some(isDomainError)) logger.error(...args);
    },
  };
}
