import { createClient } from 'graphql-ws';
import type { BenchUser } from '../lib/api';
import type { SoakRun } from './soak-run';
import { between } from './soak-run';

const MESSAGE_ADDED = 'subscription($chatId: ID!, $after: ID) { messageAdded(chatId: $chatId, after: $after) { id isBot } }';

const describe = (value: unknown) =>
  value instanceof Error ? value.message : value instanceof CloseEvent ? `close ${value.code} ${value.reason}` : JSON.stringify(value);

/**
 * A graphql-ws subscriber that comes and goes: a new connection subscribes to `messageAdded` (with
 * `after` = the last id it saw, once it has seen one), keeps it 5–15 s, then unsubscribes and
 * disposes of the connection, until the run stops. Its deliveries are checked like a `/ws` member's.
 */
export class ChurningSubscriber {
  private lastSeen: number | null = null;

  constructor(
    private readonly run: SoakRun,
    private readonly graphqlUrl: string,
    private readonly user: BenchUser,
    private readonly chatId: number,
  ) {}

  async churn(): Promise<void> {
    const { run } = this;
    while (run.running) {
      const log = run.audit.open(this.chatId, 'graphql-ws', this.lastSeen);
      let closing = false;
      const client = createClient({
        url: this.graphqlUrl,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${this.user.token}` },
        retryAttempts: 0,
        on: {
          closed: (event) => {
            if (!closing) run.tally.error('graphql-ws closed unexpectedly', describe(event));
          },
        },
      });
      const unsubscribe = client.subscribe<{ messageAdded: { id: string; isBot: boolean } }>(
        { query: MESSAGE_ADDED, variables: { chatId: String(this.chatId), after: this.lastSeen === null ? null : String(this.lastSeen) } },
        {
          next: ({ data, errors }) => {
            // More were missed than a replay holds: the newest follow, the rest is the history's to page.
            const gap = errors?.find((error) => error.extensions?.code === 'HISTORY_GAP');
            if (gap) log.gap(Number(gap.extensions!.before));
            else if (errors?.length) run.tally.error(`graphql-ws subscription error: ${errors[0]!.message}`);
            if (!data) return;
            run.tally.count('graphqlDeliveries');
            if (!log.receive(Number(data.messageAdded.id), data.messageAdded.isBot)) run.tally.error('graphql-ws message repeated', data.messageAdded.id);
          },
          error: (error) => {
            if (!closing) run.tally.error('graphql-ws subscription failed', describe(error));
          },
          complete: () => {
            if (!closing) run.tally.error('graphql-ws subscription ended by the server');
          },
        },
      );
      if (this.lastSeen !== null) run.tally.count('graphqlReconnects');
      await run.pause(between(5_000, 15_000));
      closing = true;
      unsubscribe();
      await client.dispose();
      if (log.last > 0) this.lastSeen = log.last;
      await run.pause(between(200, 1_000));
    }
  }
}
