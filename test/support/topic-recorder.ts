import type { Payload, PubSub, Topic } from '../../src/services/pubsub';
import { EventLog } from './sockets';

/**
 * Records what is published on one pub/sub topic of one id, from once the bus confirmed the
 * listener: `next(predicate)` hands out each event at most once, the earliest matching one,
 * whether it arrived before or after the call.
 * @example const changes = await recordTopic(t.app.services.pubsub, 'chat:change', chatId); …; await changes.next((c) => c.kind === 'deleted')
 */
export async function recordTopic<K extends Topic>(pubsub: PubSub, topic: K, id: number) {
  const log: EventLog<Payload<K>> = new EventLog<Payload<K>>(() => `${topic}:${id} so far: ${JSON.stringify(log.all)}`);
  const listening = pubsub.on(topic, id, (event) => log.push(event));
  await listening.ready;
  return {
    events: log.all,
    next: (predicate: (event: Payload<K>) => boolean = () => true, description = `an event on ${topic}:${id}`) => log.next(predicate, description),
    stop: () => listening.stop(),
  };
}

export type TopicRecorder<K extends Topic> = Awaited<ReturnType<typeof recordTopic<K>>>;
