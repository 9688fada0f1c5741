/** One delivery as a receiver got it. */
export interface ReceivedDelivery {
  headers: Headers;
  body: string;
  json: { id: number; type: string; created_at: string; webhook_id: number; chat_id: number; data: Record<string, any> };
}

/** What the receiver answers a delivery: a status, or `'hang'` (never answers: the sender times out). */
export type ReceiverAnswer = number | 'hang';

/**
 * A webhook receiver on loopback (http, so apps under test need WEBHOOK_ALLOW_PRIVATE=1). It keeps
 * every delivery, answers each with the next queued answer (200 once the queue is empty), and lets a
 * test wait for a delivery that matches, without sleeping.
 */
export function startReceiver() {
  const received: ReceivedDelivery[] = [];
  const answers: ReceiverAnswer[] = [];
  let fallback: ReceiverAnswer = 200;
  let waiters: { match: (delivery: ReceivedDelivery, index: number) => boolean; resolve: (delivery: ReceivedDelivery) => void }[] = [];
  const hanging = new Set<() => void>();
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(request) {
      const body = await request.text();
      const delivery: ReceivedDelivery = { headers: request.headers, body, json: JSON.parse(body) as ReceivedDelivery['json'] };
      const answer = answers.shift() ?? fallback;
      received.push(delivery);
      const ready = waiters.filter((waiter) => waiter.match(delivery, received.length - 1));
      waiters = waiters.filter((waiter) => !ready.includes(waiter));
      for (const waiter of ready) waiter.resolve(delivery);
      if (answer === 'hang') return new Promise<Response>((resolve) => hanging.add(() => resolve(new Response('late', { status: 200 }))));
      return new Response(answer >= 400 ? 'receiver says no' : 'ok', { status: answer });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    received,
    /** Answers the next deliveries with these, in order. */
    answerNext(...next: ReceiverAnswer[]) {
      answers.push(...next);
    },
    /** What every delivery after the queued answers gets. */
    answerAlways(answer: ReceiverAnswer) {
      fallback = answer;
    },
    /** The first delivery `match` accepts, already received or still to come (resolved as it arrives, before it is answered). */
    next(match: (delivery: ReceivedDelivery, index: number) => boolean = () => true): Promise<ReceivedDelivery> {
      const already = received.find((delivery, index) => match(delivery, index));
      if (already) return Promise.resolve(already);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    async stop() {
      for (const release of hanging) release();
      await server.stop(true);
    },
  };
}

export type Receiver = ReturnType<typeof startReceiver>;
