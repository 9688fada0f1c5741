import type { DocumentNode, ExecutionResult, FieldNode, GraphQLError, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import { execute, getOperationAST, Kind, OperationTypeNode, visit } from 'graphql';
import type { ServerWebSocket } from 'bun';
import { contextCacheSymbol } from '@pothos/core';
import type { Context } from '../schema/context';
import { hasSharedResults } from '../schema/shared-results';
import type { Services } from '../services';
import { LruCache } from '../services/lru-cache';
import { canForward, SlowSubscriberError, SUBSCRIBER_QUEUE_LIMIT } from '../services/pubsub';

/**
 * Shared operations whose plans are kept at most. Clients of one app send a handful; a key holds its
 * document, up to a frame (64 KB), so a client sending many different ones holds at most 6.4 MB here.
 */
const OPERATIONS_PLANNED = 100;

/** What a subscription of a field with shared results executes for each event, and how its results are found again. */
export interface SharedOperation {
  schema: GraphQLSchema;
  document: DocumentNode;
  operationName: string | null | undefined;
  variableValues: Record<string, unknown> | undefined;
  /** Same for two subscribers exactly when every event executes to the same result for both. */
  key: string;
}

/**
 * The operation as one whose results can be shared, or null: a subscription of one root field
 * marked with SHARED_RESULTS. Its key holds the query and the variables used below the root field:
 * those of the root field's own arguments only choose the event stream (the room, `after`), which
 * each subscriber has its own of, so subscribers resuming from different messages still share.
 */
export function sharedOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  query: string,
  variableValues: Record<string, unknown> | undefined,
): SharedOperation | null {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== OperationTypeNode.SUBSCRIPTION || operation.selectionSet.selections.length !== 1) return null;
  const [root] = operation.selectionSet.selections;
  if (root?.kind !== Kind.FIELD || !hasSharedResults(schema.getSubscriptionType()?.getFields()[root.name.value])) return null;
  const used = variablesBelow(document, operation, root);
  const values = Object.fromEntries(used.map((name) => [name, variableValues?.[name]]));
  return { schema, document, operationName, variableValues, key: `${operationName ?? ''}\n${query}\n${JSON.stringify(values)}` };
}

/** Names of the variables the document uses anywhere but in `root`'s arguments, sorted. */
function variablesBelow(document: DocumentNode, operation: OperationDefinitionNode, root: FieldNode): string[] {
  const used = new Set<string>();
  visit(document, {
    VariableDefinition: () => false,
    Variable(node, _key, _parent, _path, ancestors) {
      if (!ancestors.includes(root.arguments ?? [])) used.add(node.name.value);
    },
  });
  // Unused-variable validation guarantees the operation declared each; other operations' are not ours.
  const declared = new Set(operation.variableDefinitions?.map((definition) => definition.variable.name.value));
  return [...used].filter((name) => declared.has(name)).sort();
}

/**
 * Executes events of shared subscriptions and serializes their results, once per event and
 * operation key, whatever the number of subscribers: the first subscriber to reach an event
 * executes it, the others find its payload here. Entries go with their event (a WeakMap), so
 * nothing outlives the events subscribers still hold.
 */
export class SharedResults {
  private readonly payloads = new WeakMap<object, Map<string, string | Promise<string>>>();
  /**
   * Pothos' request caches, one per operation key: what it plans from the document (Prisma queries,
   * loader mappings) is the same for every event, so it is worked out on an operation's first event
   * only. Pothos keeps no rows there (its loaders and ours batch one turn's calls and forget them),
   * so no event reads another's data. Bounded: an operation evicted plans once more.
   */
  private readonly pothosCaches = new LruCache<string, object>(OPERATIONS_PLANNED, Number.POSITIVE_INFINITY);
  private lastEvent: object | null = null;
  private lastKey = '';
  private lastPayload: string | Promise<string> = '';

  constructor(
    private readonly services: Services,
    private readonly maskError: (error: unknown) => Error,
    /** Told of each execution; tests count them. */
    private readonly onExecution: (() => void) | undefined,
  ) {}

  /** The JSON of `event`'s result for `operation`: a string, or a promise when resolving it awaits (a query). */
  payload(event: object, operation: SharedOperation): string | Promise<string> {
    // A room's subscribers ask for the same payload one after another: the last one is kept at hand.
    if (event === this.lastEvent && operation.key === this.lastKey) return this.lastPayload;
    let byKey = this.payloads.get(event);
    if (!byKey) this.payloads.set(event, (byKey = new Map<string, string | Promise<string>>()));
    let payload = byKey.get(operation.key);
    if (payload === undefined) {
      payload = this.execute(event, operation);
      byKey.set(operation.key, payload);
    }
    this.lastEvent = event;
    this.lastKey = operation.key;
    this.lastPayload = payload;
    return payload;
  }

  private execute(event: object, operation: SharedOperation): string | Promise<string> {
    this.onExecution?.();
    const result = execute({
      schema: operation.schema,
      document: operation.document,
      operationName: operation.operationName,
      variableValues: operation.variableValues,
      rootValue: event,
      contextValue: this.context(operation.key),
    });
    return result instanceof Promise ? result.then((settled) => this.serialize(settled)) : this.serialize(result);
  }

  /** A context of its own for each execution, with no viewer, sharing its operation's Pothos caches. */
  private context(operationKey: string): Context {
    let pothosCache = this.pothosCaches.get(operationKey);
    if (!pothosCache) this.pothosCaches.set(operationKey, (pothosCache = {}));
    return {
      [contextCacheSymbol]: pothosCache,
      services: this.services,
      clientAddress: null,
      viewer: () => Promise.reject(new Error('A field with shared results must not read the viewer')),
      shared: true,
    };
  }

  private serialize(result: ExecutionResult): string {
    if (!result.errors) return JSON.stringify(result);
    return JSON.stringify({ ...result, errors: result.errors.map((error: GraphQLError) => this.maskError(error)) });
  }
}

/** Where a shared subscription's frames go: `send` queues one, `flush` writes everything queued for its socket now. */
export interface FrameSink {
  send: (frame: string) => void;
  flush: () => void;
}

/** One subscription's frames queued this turn, with its socket and whether it still wants them. */
interface QueuedSink extends FrameSink {
  readonly socket: ServerWebSocket<unknown>;
  readonly wanted: () => boolean;
  frames: string[];
}

/**
 * Frames for graphql-ws sockets, written once per turn of the event loop with the socket corked: a
 * socket that gets several events in one turn (a burst of messages stored together) costs one
 * write instead of one each. Outside Bun's own callbacks a send is not corked, and the writes, not
 * the GraphQL work, were where shared subscribers spent their time. Each subscription queues its own
 * frames (a socket has one subscription to a room's messages, as a rule): queuing a frame is a push.
 */
export class CorkedOutbox {
  /** The subscriptions with frames queued this turn, in the order of their first. */
  private queued: QueuedSink[] = [];

  constructor(
    /** Told how many frames each flush handed to sockets (graphql-ws's own `onNext` never sees these). */
    private readonly delivered: (frames: number) => void,
  ) {}

  /** A sink for one subscription on `socket`; frames queued while `wanted()` later says no are dropped. */
  sink(socket: ServerWebSocket<unknown>, wanted: () => boolean): FrameSink {
    const sink: QueuedSink = {
      socket,
      wanted,
      frames: [],
      send: (frame) => {
        if (sink.frames.push(frame) > 1) return;
        if (this.queued.push(sink) === 1) setImmediate(() => this.flushAll());
      },
      // Before graphql-ws sends this subscription's own error or `complete`, which must come after its frames.
      flush: () => this.delivered(this.write(sink)),
    };
    return sink;
  }

  private flushAll(): void {
    const queued = this.queued;
    this.queued = [];
    let sent = 0;
    for (const sink of queued) sent += this.write(sink);
    this.delivered(sent);
  }

  /** Writes what `sink` has queued; returns how many frames went. */
  private write(sink: QueuedSink): number {
    const { frames, socket } = sink;
    if (frames.length === 0) return 0;
    sink.frames = [];
    if (socket.readyState !== WebSocket.OPEN || !sink.wanted()) return 0;
    // One frame is one write either way: corking it would only add a call into Bun and back.
    if (frames.length === 1) socket.sendText(frames[0]!);
    else socket.cork(() => frames.forEach((frame) => socket.sendText(frame)));
    return frames.length;
  }
}

/**
 * One subscriber of a shared operation: its own event stream (its authorization, catch-up and
 * departure are its own), each event's shared payload queued for its socket as a graphql-ws `next`
 * message, so the per-subscriber work is one string concatenation and a queued write. A stream that
 * can forward (a live room feed) hands its events over as they come; others (a catch-up's replay)
 * are pulled. Payloads that await a query go out in order after those before them, at most
 * SUBSCRIBER_QUEUE_LIMIT waiting, past which the subscriber ends as too slow.
 * graphql-ws sees an iterator that yields nothing and ends when the stream ends; its `return()`
 * (the client completed, or the socket closed) ends the stream, and nothing is sent after it.
 */
export function deliverShared(
  source: AsyncIterator<unknown>,
  operation: SharedOperation,
  results: SharedResults,
  subscriptionId: string,
  sinkFor: (wanted: () => boolean) => FrameSink,
): AsyncIterableIterator<ExecutionResult> {
  let ended = false;
  /** Its last frames are flushed: a payload still awaited then (a subscriber ended as too slow) would follow its end. */
  let finished = false;
  const sink = sinkFor(() => !ended);
  const frameStart = `{"id":${JSON.stringify(subscriptionId)},"type":"next","payload":`;
  const send = (json: string) => ended || finished || sink.send(`${frameStart}${json}}`);
  /** Payloads still awaited, chained in event order. */
  let backlog: Promise<void> = Promise.resolve();
  let awaited = 0;
  /** Queues `event`'s frame; returns the backlog when its payload is awaited, null when it went at once. */
  const deliver = (event: unknown): Promise<void> | null => {
    const payload = results.payload(event as object, operation);
    if (typeof payload === 'string' && awaited === 0) {
      send(payload);
      return null;
    }
    if (awaited >= SUBSCRIBER_QUEUE_LIMIT) throw new SlowSubscriberError();
    awaited++;
    backlog = backlog.then(async () => {
      const json = await payload;
      awaited--;
      send(json);
    });
    return backlog;
  };
  const done = (): IteratorResult<ExecutionResult> => ({ done: true, value: undefined });

  /** Until the stream ends: events forwarded as they come, or pulled one after another. */
  const consume = async (): Promise<void> => {
    if (canForward(source)) {
      const end = Promise.withResolvers<void>();
      // Rejected before the stream is told to end, whose end would otherwise read as a normal one.
      const fail = (error: unknown) => {
        end.reject(error);
        void source.return();
      };
      source.forward(
        (event) => {
          try {
            deliver(event)?.catch(fail);
          } catch (error) {
            fail(error);
          }
        },
        (failure) => (failure ? end.reject(failure) : end.resolve()),
      );
      await end.promise;
      return;
    }
    while (!ended) {
      const step = await source.next();
      if (step.done || ended) return;
      await deliver(step.value);
    }
  };
  let consumed: Promise<IteratorResult<ExecutionResult>> | null = null;
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      consumed ??= (async () => {
        try {
          // Sources and queries fail with Errors; lastResultOnError reports whatever comes out of here.
          const outcome: { failure?: Error } = {};
          await consume().catch((error: Error) => (outcome.failure = error));
          // Whatever was delivered before the stream ended goes out before the end: not after a failure
          // (a subscriber too slow must not wait for its backlog) nor once the client has gone.
          if (!outcome.failure && !ended) await backlog.catch((error: Error) => (outcome.failure = error));
          if (outcome.failure) throw outcome.failure;
          return done();
        } finally {
          finished = true;
          sink.flush();
        }
      })();
      return consumed;
    },
    async return() {
      ended = true;
      await source.return?.();
      return done();
    },
  };
}
