import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { GraphQLError } from 'graphql';
import { createYoga } from 'graphql-yoga';
import type { Config } from './config';
import type { Database } from './db/client';
import { openDatabase } from './db/client';
import { handleRest } from './rest/router';
import { schema } from './schema';
import type { Context } from './schema/context';
import { lazyViewer } from './schema/context';
import type { Services } from './services';
import { createServices } from './services';
import { bearerToken } from './services/auth.service';
import { AppError } from './services/errors';
import { createEventBus } from './services/pubsub';

export interface App {
  /** Answers one HTTP request: REST, GraphQL, or 404. `server` gives client addresses when present. */
  fetch: (request: Request, server?: { requestIP(request: Request): { address: string } | null }) => Promise<Response>;
  services: Services;
  close: () => Promise<void>;
}

export interface AppOptions {
  /** Receives each SQL statement; tests count them to guard against N+1 queries. */
  logQuery?: (query: string) => void;
}

/** Builds the whole server over one service layer; `Bun.serve` (src/server.ts) only hosts it. */
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const db: Database = await openDatabase(config.database, { log: options.logQuery });
  const services = createServices(db, config, createEventBus());

  const yoga = createYoga<{ clientAddress: string | null }, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: !config.production,
    renderGraphiQL,
    landingPage: false,
    logging: config.production ? 'warn' : 'info',
    context: ({ request, clientAddress }) => ({
      services,
      clientAddress,
      viewer: lazyViewer(services, bearerToken(request.headers.get('authorization'))),
    }),
    maskedErrors: { maskError: (error, message) => toGraphQLError(error, message) },
  });

  return {
    services,
    async fetch(request, server) {
      const url = new URL(request.url);
      const clientAddress = server?.requestIP(request)?.address ?? null;
      if (url.pathname === '/graphql') return yoga.fetch(request, { clientAddress });
      return (await handleRest(request, url, services, clientAddress)) ?? Response.json({ detail: 'Not Found' }, { status: 404 });
    },
    async close() {
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
  console.error('unhandled GraphQL error', original);
  return new GraphQLError(maskedMessage, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}
