import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Instance } from './support/cluster';
import { ok, signUpOn, twoInstances } from './support/cluster';
import { type Receiver, startReceiver } from './support/webhook-receiver';

/**
 * Webhook deliveries across two real processes on one PostgreSQL database and one Redis: both poll
 * the outbox every few milliseconds, so they contend for every row, and still each delivery is
 * claimed and sent by one of them, once. Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

const MESSAGES = 60;

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('webhooks on two instances', () => {
    let a: Instance;
    let b: Instance;
    let receiver: Receiver;
    beforeAll(() => {
      receiver = startReceiver();
    });
    afterAll(async () => {
      await receiver?.stop();
    });
    const cluster = twoInstances('webhooks', { WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_POLL_MS: '5' });
    beforeAll(() => ({ a, b } = cluster));

    test('messages sent on both instances reach the webhook once each', async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'hooks across', is_group: true, participant_usernames: [bob.username] } }),
      );
      const created = await a.request(`/api/chats/${chat.id}/webhooks`, {
        method: 'POST',
        token: alice.token,
        json: { url: receiver.url, events: ['message.created'] },
      });
      expect(created.status).toBe(201);

      const sent = await Promise.all(
        Array.from({ length: MESSAGES }, (_, i) =>
          ok<{ id: number }>(
            (i % 2 === 0 ? a : b).request(`/api/chats/${chat.id}/messages`, {
              method: 'POST',
              token: (i % 2 === 0 ? alice : bob).token,
              json: { content: `across ${i}` },
            }),
          ),
        ),
      );
      const distinct = () => new Set(receiver.received.map((delivery) => delivery.json.data.message_id as number));
      await receiver.next(() => distinct().size === MESSAGES);
      expect([...distinct()].sort((x, y) => x - y)).toEqual(sent.map((message) => message.id).sort((x, y) => x - y));

      // Every row delivered at its first attempt: none was sent twice, now or later. A sender stores the
      // outcome just after the receiver answered, so the last ones are read again until stored.
      const sql = new Bun.SQL(cluster.databaseUrl);
      try {
        type Row = { status: string; attempts: number; n: number };
        const tally = async () =>
          (await sql`SELECT status, attempts, count(*)::int AS n FROM webhook_deliveries GROUP BY status, attempts ORDER BY status`) as Row[];
        let rows = await tally();
        while (rows.some((row) => row.status === 'pending' && row.attempts === 0)) rows = await tally();
        expect(rows).toEqual([{ status: 'delivered', attempts: 1, n: MESSAGES }]);
      } finally {
        await sql.close();
      }
      expect(receiver.received).toHaveLength(MESSAGES);
    });
  });
}
