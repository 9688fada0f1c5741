/**
 * Where an idle `/ws` socket's memory goes: `bun bench/idle-heap.ts [sockets] [--warm]`.
 *
 * Serves the app in this process (so `bun:jsc` can see its heap) and opens the sockets from a child
 * process (so the clients' memory is not counted), 10 at a time. Prints, per socket: RSS, the live
 * JavaScript heap and the heap's capacity (the blocks it keeps), each after a full collection, and
 * the object types that grew. `--warm` looks every user up once before the sockets open, so what the
 * upgrades' user lookups leave behind is outside the measured window.
 */
import { heapStats } from 'bun:jsc';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { registerAndLogin, seedUsers } from './lib/api';

const OPEN_AT_ONCE = 10;

/** Child mode: open a socket for each token in the file, print "open", then hold them until killed. */
async function holdSockets(url: string, tokensFile: string): Promise<void> {
  const tokens = (await Bun.file(tokensFile).json()) as string[];
  const sockets: WebSocket[] = [];
  for (let start = 0; start < tokens.length; start += OPEN_AT_ONCE) {
    const opening = tokens.slice(start, start + OPEN_AT_ONCE).map(
      (token) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(`${url}?token=${token}`);
          ws.onopen = () => resolve();
          ws.onerror = () => reject(new Error('a socket failed to open'));
          sockets.push(ws);
        }),
    );
    await Promise.all(opening);
  }
  console.log('open');
  await new Promise(() => {});
}

function collected() {
  Bun.gc(true);
  const heap = heapStats();
  return { rss: process.memoryUsage().rss, live: heap.heapSize, capacity: heap.heapCapacity, objects: heap.objectCount, types: heap.objectTypeCounts };
}

async function measure(count: number, warm: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-idle-heap-'));
  const dbPath = join(dir, 'idle.db');
  const secretKey = 'idle-heap-secret-key-of-forty-characters';
  Object.assign(process.env, { DATABASE_URL: `file:${dbPath}`, SECRET_KEY: secretKey, REGISTER_RATE_LIMIT: '0', LOGIN_RATE_LIMIT: '0', WS_RATE_LIMIT: '0' });
  const app = await createApp(loadConfig(), { log: createLogger({ level: 'silent' }) });
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request, bunServer) => app.fetch(request, bunServer), websocket: app.websocket });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  try {
    const template = await registerAndLogin(baseUrl, 'idle-template');
    const users = await seedUsers(dbPath, template, 'idle', count, secretKey);
    const tokensFile = join(dir, 'tokens.json');
    await Bun.write(tokensFile, JSON.stringify(users.map((user) => user.token)));
    if (warm) for (const user of users) await app.fetch(new Request(`${baseUrl}/api/auth/me`, { headers: { authorization: `Bearer ${user.token}` } }), server);

    const before = collected();
    const clients = Bun.spawn([process.execPath, import.meta.path, '--hold', `ws://127.0.0.1:${server.port}/ws`, tokensFile], { stdout: 'pipe' });
    try {
      for await (const _ of clients.stdout) break;
      collected();
      // A second collection after a pause: what the heap still keeps then, it keeps.
      await Bun.sleep(3_000);
      const after = collected();
      const perSocketKb = (bytes: number) => (bytes / 1024 / count).toFixed(1);
      console.log(`${count} idle /ws sockets${warm ? ', users looked up beforehand' : ''}, per socket:`);
      console.log(`  RSS ${perSocketKb(after.rss - before.rss)} KB`);
      console.log(`  live JavaScript heap ${perSocketKb(after.live - before.live)} KB, ${((after.objects - before.objects) / count).toFixed(1)} objects`);
      console.log(
        `  heap capacity ${perSocketKb(after.capacity - before.capacity)} KB (${(after.capacity / 2 ** 20).toFixed(0)} MB kept for ${(after.live / 2 ** 20).toFixed(0)} MB live)`,
      );
      const grown = Object.entries(after.types)
        .map(([type, n]) => [type, (n - (before.types[type] ?? 0)) / count] as const)
        .filter(([, perSocket]) => perSocket >= 0.5)
        .sort((a, b) => b[1] - a[1]);
      console.log(`  objects: ${grown.map(([type, perSocket]) => `${type} ${perSocket.toFixed(1)}`).join(', ')}`);
    } finally {
      clients.kill();
      await clients.exited;
    }
  } finally {
    await server.stop(true);
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === '--hold') await holdSockets(args[1]!, args[2]!);
else await measure(Number(args.find((arg) => /^\d+$/.test(arg)) ?? 3_000), args.includes('--warm'));
