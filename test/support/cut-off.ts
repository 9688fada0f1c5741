import type { App } from '../../src/app';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { createTestApp, RATE_LIMITS_OFF } from './app';
import { startTcpProxy } from './redis-server';
import { socketKit, withDeadline } from './sockets';

/**
 * Two instances on one database and one Redis (a Redis of the test's own): A reaches Redis directly,
 * B through a proxy the test cuts and restores, so what A publishes meanwhile never reaches B. B is
 * served on a real port, with a socket kit. `cut()` resolves once B has noticed; every part goes
 * into `cleanups`.
 */
export async function cutOffPair(redisUrl: string, cleanups: (() => unknown)[], prefix = `cut-off:${crypto.randomUUID()}:`) {
  const a = await createTestApp({ REDIS_URL: redisUrl, REDIS_PREFIX: prefix });
  cleanups.push(() => a.cleanup());
  const proxy = startTcpProxy({ hostname: '127.0.0.1', port: Number(new URL(redisUrl).port) });
  cleanups.push(() => proxy.stop());
  const b: App = await createApp(
    loadConfig({
      ...RATE_LIMITS_OFF,
      DATABASE_URL: a.config.database.url,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      REDIS_PREFIX: prefix,
      SECRET_KEY: a.config.secretKey,
      LOG_LEVEL: 'silent',
    }),
  );
  cleanups.push(() => b.close());
  const serverB = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request, server) => b.fetch(request, server), websocket: b.websocket });
  cleanups.push(() => serverB.stop(true));
  const kit = socketKit(serverB, b.services);
  cleanups.push(() => kit.dispose());
  return {
    a,
    b,
    kit,
    /** A GET on B as `token`'s user. */
    requestB: (path: string, token: string) => fetch(`http://127.0.0.1:${serverB.port}${path}`, { headers: { authorization: `Bearer ${token}` } }),
    async cut(): Promise<void> {
      proxy.cut();
      await withDeadline(
        (async () => {
          while ((await b.services.health()).healthy) await new Promise((resolve) => setTimeout(resolve, 50));
        })(),
        () => 'instance B never noticed it lost Redis',
      );
    },
    restore: () => proxy.restore(),
    /** Resolves once B uses Redis again (its resume has begun: caches dropped, memberships being checked). */
    async reconnected(): Promise<void> {
      await withDeadline(
        (async () => {
          while (!(await b.services.health()).healthy) await new Promise((resolve) => setTimeout(resolve, 50));
        })(),
        () => 'instance B never took Redis back',
      );
    },
    /** Resolves once an event holding `text` has passed from Redis towards B (B reads it on its next turns). */
    passedToB: (text: string) => withDeadline(proxy.passed(text), () => `"${text}" never passed from Redis to instance B`),
  };
}
