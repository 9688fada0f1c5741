import type { GraphQLField } from 'graphql';

/**
 * Marks a subscription field whose result for an event is the same whoever subscribed: nothing in
 * it reads the viewer. graphql-ws then executes each event once for all subscribers with the same
 * selection and variables and sends them the same serialized payload
 * (src/ws/shared-subscriptions.ts). Who may subscribe is still checked for each subscriber, by the
 * field's `subscribe`, and ends each one's stream when it leaves the room.
 */
export const SHARED_RESULTS = { sharedResults: true } as const;

export const hasSharedResults = (field: GraphQLField<unknown, unknown> | undefined): boolean => field?.extensions.sharedResults === true;
