import type { ServerWebSocket, WebSocketHandler } from 'bun';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { createSourceEventStream, GraphQLError } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { makeHandler } from 'graphql-ws/use/bun';
import type { Context } from '../schema/context';
import type { Services } from '../services';
import type { PublicUser } from '../services/auth.service';
import { bearerToken } from '../services/auth.service';
import type { SocketSession, SocketState } from './socket-session';
import { authenticateSocket, CLOSE, holdSocket } from './socket-session';
import type { SharedOperation } from './shared-subscriptions';
import { CorkedOutbox, deliverShared, SharedResults, sharedOperation } from './shared-subscriptions';

/** What a graphql-ws socket carries: its user once `connection_init` authenticated it. */
export interface GraphqlSocketData extends SocketState {
  kind: 'graphql';
  user: PublicUser | null;
  /** The ids of the operations graphql-ws is still handling, each with whether the client has completed it. */
  operations: Map<string, { completed: boolean }>;
}

export interface GraphqlWsServerContext {
  socketUser?: PublicUser;
  clientAddress: string | null;
}

// graphql-ws types its Bun socket without our upgrade data.
const socketOf = (context: { extra: { socket: ServerWebSocket } }) => context.extra.socket as unknown as ServerWebSocket<GraphqlSocketData>;

/** What Yoga's envelop hands back, typed: its own typings leave these as `any`. */
interface Enveloped {
  schema: ExecutionArgs['schema'];
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
  contextFactory: () => Promise<unknown>;
  parse: (source: string) => ExecutionArgs['document'];
  validate: (schema: ExecutionArgs['schema'], document: ExecutionArgs['document']) => readonly GraphQLError[];
}

type EnvelopedArgs = ExecutionArgs & {
  rootValue: {
    execute: (args: ExecutionArgs) => unknown;
    subscribe: (args: ExecutionArgs) => unknown;
    /** For a subscription with shared results: what it executes, and how its payloads reach this subscriber. */
    shared: { operation: SharedOperation; subscriptionId: string; socket: ServerWebSocket<GraphqlSocketData> } | null;
  };
};

/**
 * graphql-ws on Bun, running every operation through Yoga's envelop so WebSocket and HTTP share
 * plugins. Auth comes from `connectionParams` (`{authorization: "Bearer …"}` or `{token}`). The
 * socket is closed with 4403 "Forbidden" for a bad token, 1011 when the token could not be checked
 * (the database down), 4429 "Too many open sockets" over MAX_SOCKETS_PER_USER, and 4401
 * "Token expired" when its token expires. graphql-ws's client retries after 4403 only; the
 * other three end it.
 */
export function createGraphqlSocketHandler(
  yoga: YogaServerInstance<GraphqlWsServerContext, Context>,
  services: Services,
  maskError: (error: unknown) => GraphQLError | Error,
  onSharedExecution?: () => void,
): WebSocketHandler<unknown> {
  const sharedResults = new SharedResults(services, maskError, onSharedExecution);
  const outbox = new CorkedOutbox((frames) => services.metrics.delivered('graphql-ws', frames));
  // graphql-ws's Bun types name Bun's handler without its type argument, which reads as an error type.
  const handler: unknown = makeHandler<Record<string, unknown> | undefined>({
    async onConnect(context) {
      const params = context.connectionParams ?? {};
      const token = typeof params.authorization === 'string' ? bearerToken(params.authorization) : typeof params.token === 'string' ? params.token : null;
      const socket = socketOf(context);
      let session: SocketSession | null;
      try {
        session = await authenticateSocket(services.auth, token);
      } catch (error) {
        services.log.error({ err: error, component: 'graphql-ws' }, 'graphql-ws authentication failed');
        socket.close(CLOSE.internalError.code, CLOSE.internalError.reason);
        return false;
      }
      // A socket that closed while the token was checked must not take a place it would never give back.
      if (!session || socket.readyState !== WebSocket.OPEN) return false;
      // Refused here, the socket is closed already with its own code: graphql-ws's 4403 then changes nothing.
      if (!holdSocket(services, session, socket)) return false;
      socket.data.user = session.user;
      return true;
    },
    async onSubscribe(context, id, payload) {
      const socket = socketOf(context);
      const user = socket.data.user ?? undefined;
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        socketUser: user,
        clientAddress: socket.remoteAddress ?? null,
        params: payload,
      }) as Enveloped;
      let document: ExecutionArgs['document'];
      try {
        document = parse(payload.query);
      } catch (error) {
        // A syntax error is the client's: answer it as an error, not by closing the socket.
        if (error instanceof GraphQLError) return [error];
        throw error;
      }
      const args: EnvelopedArgs = {
        schema,
        operationName: payload.operationName,
        document,
        variableValues: payload.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe, shared: null },
      };
      let errors: readonly GraphQLError[];
      try {
        errors = validate(args.schema, args.document);
      } catch (error) {
        // graphql-js's single-root-field rule throws for `@include(if: $variable)` on the root field: the client's doing too.
        if (error instanceof GraphQLError) return [error];
        throw error;
      }
      if (errors.length > 0) return errors;
      const operation = sharedOperation(schema, document, payload.operationName, payload.query, payload.variables ?? undefined);
      if (operation) args.rootValue.shared = { operation, subscriptionId: id, socket };
      return args;
    },
    // Counted as sent; returning nothing leaves the result as it is.
    onNext: () => void services.metrics.delivered('graphql-ws', 1),
    execute: (args) => (args as EnvelopedArgs).rootValue.execute(args) as never,
    subscribe: async (args) => {
      const { shared } = (args as EnvelopedArgs).rootValue;
      if (shared) {
        // The field's `subscribe` runs here, for this subscriber: who may listen is checked for each.
        let source: Awaited<ReturnType<typeof createSourceEventStream>>;
        try {
          source = await createSourceEventStream(args);
        } catch (error) {
          // graphql-js throws, rather than answers, for a root field skipped by `@skip`/`@include`. Yoga's
          // own subscribe answers that with an error result; thrown here it would take the process down.
          return { errors: [maskError(error)] } as never;
        }
        if (!(Symbol.asyncIterator in source)) return { errors: source.errors?.map(maskError) } as never;
        const delivery = deliverShared(source[Symbol.asyncIterator](), shared.operation, sharedResults, shared.subscriptionId, (wanted) =>
          outbox.sink(shared.socket, wanted),
        );
        return lastResultOnError(delivery, maskError) as never;
      }
      const result = (await (args as EnvelopedArgs).rootValue.subscribe(args)) as ExecutionResult | AsyncIterableIterator<ExecutionResult>;
      return (Symbol.asyncIterator in result ? lastResultOnError(result, maskError) : result) as never;
    },
  });
  return oneOperationPerId(handler as GraphqlWsHandler);
}

/** What graphql-ws's `makeHandler` gives: a Bun handler whose `message` is always there. */
type GraphqlWsHandler = WebSocketHandler<GraphqlSocketData> & Required<Pick<WebSocketHandler<GraphqlSocketData>, 'message'>>;

/**
 * graphql-ws refuses a subscribe whose id is in use (4409), but an operation the client completed
 * while it was still starting goes on until it has started, and a subscribe that reuses its id
 * meanwhile takes its place: graphql-ws then keeps whichever started last, and the other runs on,
 * held by nothing, even after the socket closed. Such a subscribe is answered with an error instead;
 * the client may use the id again once the earlier operation is gone.
 */
function oneOperationPerId(graphqlWs: GraphqlWsHandler): WebSocketHandler<GraphqlSocketData> {
  return {
    ...graphqlWs,
    message(socket, message) {
      const frame = operationFrame(message);
      const { operations } = socket.data;
      const earlier = frame && operations.get(frame.id);
      if (frame?.type === 'complete' && earlier) earlier.completed = true;
      if (frame?.type === 'subscribe' && earlier?.completed) {
        const refusal = { message: `Operation ${frame.id} is still being completed: subscribe under another id`, extensions: { code: 'BAD_REQUEST' } };
        socket.sendText(JSON.stringify({ id: frame.id, type: 'error', payload: [refusal] }));
        return;
      }
      const handled = Promise.resolve(graphqlWs.message(socket, message));
      if (frame?.type === 'subscribe' && !earlier) {
        // The message's handling ends when graphql-ws is done with the operation (a subscription's whole life).
        const operation = { completed: false };
        operations.set(frame.id, operation);
        const forget = () => {
          if (operations.get(frame.id) === operation) operations.delete(frame.id);
        };
        // Its failure is index.ts's to report; this chain only must not leave one more rejection unhandled.
        handled.then(forget, forget);
      }
      return handled;
    },
  };
}

/** The type and id of a client's graphql-ws message, when it has both; graphql-ws judges the rest. */
function operationFrame(message: string | Buffer): { type: unknown; id: string } | null {
  try {
    const frame: unknown = JSON.parse(String(message));
    if (typeof frame !== 'object' || frame === null) return null;
    const { type, id } = frame as { type?: unknown; id?: unknown };
    return typeof id === 'string' ? { type, id } : null;
  } catch {
    return null;
  }
}

/**
 * A subscription's results, where an error thrown by its source (a reader ended as too slow, a
 * replay whose query failed) becomes one last result carrying the error, then the end. graphql-ws
 * would otherwise let the error escape its message handler, which takes the whole process down.
 */
function lastResultOnError(
  source: AsyncIterableIterator<ExecutionResult>,
  maskError: (error: unknown) => GraphQLError | Error,
): AsyncIterableIterator<ExecutionResult> {
  let failed = false;
  const done = (): IteratorResult<ExecutionResult> => ({ done: true, value: undefined });
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (failed) return done();
      try {
        return await source.next();
      } catch (error) {
        failed = true;
        const masked = maskError(error);
        return { done: false, value: { errors: [masked instanceof GraphQLError ? masked : new GraphQLError(masked.message)] } };
      }
    },
    async return() {
      // A source stopped with an error may reject here too; graphql-ws would not catch it either.
      await source.return?.().catch(() => {});
      return done();
    },
  };
}
