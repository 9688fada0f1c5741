import type { Server, Subprocess } from 'bun';
import { afterAll, beforeAll } from 'bun:test';
import { Redis } from 'ioredis';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { createTestDatabase, RATE_LIMITS_OFF, testRedisEnv } from './app';
import type { ChatClient } from './sockets';
import { socketKit } from './sockets';

/**
 * Real server processes (`bun src/server.ts`) for the cluster tests: several instances on one
 * PostgreSQL database and one Redis prefix. Everything waits on events (log lines, HTTP answers,
 * Redis commands); timers only turn a hang into a readable failure.
 */

const projectRoot = resolve(import.meta.dir, '../..');
/** Two processes starting at once and both applying migrations: far more than bun's default on a busy machine. */
const CLUSTER_STARTUP_TIMEOUT_MS = 60_000;

/** A port nobody listens on right now: the OS picks one, and it is released at once. */
export async function freePort(): Promise<number> {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response(null) });
  const port = probe.port!;
  await probe.stop(true);
  return port;
}

export interface Instance {
  name: string;
  hostname: string;
  port: number;
  url: string;
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Settles with the exit code (or the signal's 128+n as Bun reports it) once the process ended. */
  exited: Promise<number>;
  /** Everything the process printed so far, stdout and stderr interleaved, lines prefixed with the stream. */
  output(): string;
  /** Resolves when the output contains `text` (already or later); fails if the process exits first. */
  waitForOutput(text: string, deadlineMs?: number): Promise<void>;
  /** An HTTP request to this instance; `json` is sent as a JSON body, `token` as a bearer token. */
  request(path: string, init?: RequestInit & { json?: unknown; token?: string }): Promise<Response>;
  /** A `socketKit` (sockets.ts) aimed at this process; its `ready`/`subscribed` helpers do not apply. */
  kit: ReturnType<typeof socketKit>;
  /** SIGKILLs the process if it still runs and waits for it to be gone. */
  kill(): Promise<void>;
}

/** Starts `bun src/server.ts` with `env` on a free port and resolves once it logs that it listens. */
export async function startInstance(name: string, env: Record<string, string>, { startupMs = 30_000 } = {}): Promise<Instance> {
  const hostname = '127.0.0.1';
  const port = await freePort();
  const proc = Bun.spawn([process.execPath, 'src/server.ts'], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, HOST: hostname, PORT: String(port) },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let output = '';
  let exitCode: number | null = null;
  const waiters = new Set<{ text: string; resolve: () => void; reject: (error: Error) => void }>();
  const check = () => {
    for (const waiter of waiters) {
      if (output.includes(waiter.text)) {
        waiters.delete(waiter);
        waiter.resolve();
      } else if (exitCode !== null) {
        waiters.delete(waiter);
        waiter.reject(new Error(`instance ${name} exited with ${exitCode} before printing ${JSON.stringify(waiter.text)}; output:\n${output}`));
      }
    }
  };
  const pump = async (stream: ReadableStream<Uint8Array>, label: string) => {
    const decoder = new TextDecoder();
    let partial = '';
    for await (const chunk of stream) {
      partial += decoder.decode(chunk, { stream: true });
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) output += `[${name} ${label}] ${line}\n`;
      check();
    }
    if (partial) output += `[${name} ${label}] ${partial}\n`;
  };
  const pumps = Promise.all([pump(proc.stdout, 'out'), pump(proc.stderr, 'err')]);
  const exited = proc.exited.then(async (code) => {
    await pumps.catch(() => {});
    exitCode = code;
    check();
    return code;
  });

  const waitForOutput = (text: string, deadlineMs = 5_000) =>
    new Promise<void>((resolvePromise, rejectPromise) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        rejectPromise(new Error(`instance ${name} did not print ${JSON.stringify(text)} within ${deadlineMs} ms; output:\n${output}`));
      }, deadlineMs);
      const waiter = {
        text,
        resolve: () => (clearTimeout(timer), resolvePromise()),
        reject: (error: Error) => (clearTimeout(timer), rejectPromise(error)),
      };
      waiters.add(waiter);
      check();
    });

  const url = `http://${hostname}:${port}`;
  try {
    await waitForOutput(`Gemini Coop listening on http://${hostname}:${port}`, startupMs);
  } catch (error) {
    proc.kill(9);
    await exited;
    throw error;
  }
  return {
    name,
    hostname,
    port,
    url,
    proc,
    exited,
    output: () => output,
    waitForOutput,
    request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.json !== undefined) headers.set('content-type', 'application/json');
      if (init.token) headers.set('authorization', `Bearer ${init.token}`);
      const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
      return fetch(`${url}${path}`, { ...init, headers, body });
    },
    // socketKit uses only the server's hostname and port for its URLs; its subscription watcher
    // wraps an in-process bus, which a remote process does not have: give it a bus of its own.
    kit: socketKit({ hostname, port } as unknown as Server<unknown>, null),
    async kill() {
      if (exitCode === null) proc.kill(9);
      await exited;
    },
  };
}

/** JSON of a response that must be 200; otherwise fails with its status and body. */
export async function ok<T = any>(response: Response | Promise<Response>): Promise<T> {
  const res = await response;
  const text = await res.text();
  if (res.status !== 200) throw new Error(`expected 200 from ${res.url}, got ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

export interface ClusterUser {
  id: number;
  username: string;
  password: string;
  token: string;
}

let users = 0;
/** Registers and logs in a fresh user on `instance` over HTTP. */
export async function signUpOn(instance: Instance, prefix = 'user'): Promise<ClusterUser> {
  const username = `${prefix}${++users}_${Math.random().toString(36).slice(2, 8)}`;
  const password = 'password123';
  const user = await ok<{ id: number }>(
    instance.request('/api/auth/register', { method: 'POST', json: { username, email: `${username}@example.com`, password } }),
  );
  const { access_token } = await ok<{ access_token: string }>(instance.request('/api/auth/login', { method: 'POST', json: { username, password } }));
  return { id: user.id, username, password, token: access_token };
}

/** A GraphQL operation over HTTP; fails on any error in the result. */
export async function graphqlOn<T = any>(instance: Instance, token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const result = await ok<{ data?: T; errors?: unknown[] }>(instance.request('/graphql', { method: 'POST', token, json: { query, variables } }));
  if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data!;
}

/**
 * Watches the cluster's room locks through Redis MONITOR: every release (the lock's EVAL that
 * deletes the key) is counted per room, so a test can wait until every instance that queued for a
 * room's lock has had it and let it go, with nothing left to run.
 */
export async function watchRoomLocks(redisUrl: string, prefix: string) {
  const client = new Redis(redisUrl, { lazyConnect: true });
  await client.connect();
  const monitor = await client.monitor();
  const releases = new Map<number, number>();
  const acquires = new Map<number, number>();
  const waiters = new Set<{ chatId: number; count: number; resolve: () => void }>();
  const lockKey = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}bot-lock:(\\d+)$`);
  monitor.on('monitor', (_time: string, args: string[]) => {
    const command = args[0]?.toLowerCase();
    if (command === 'eval' && args[1]?.includes("'del'")) {
      const match = lockKey.exec(args[3] ?? '');
      if (!match) return;
      const chatId = Number(match[1]);
      releases.set(chatId, (releases.get(chatId) ?? 0) + 1);
      for (const waiter of waiters) {
        if (waiter.chatId === chatId && releases.get(chatId)! >= waiter.count) {
          waiters.delete(waiter);
          waiter.resolve();
        }
      }
    } else if (command === 'set' && args.some((arg) => arg.toUpperCase() === 'NX')) {
      const match = lockKey.exec(args[1] ?? '');
      if (match) acquires.set(Number(match[1]), (acquires.get(Number(match[1])) ?? 0) + 1);
    }
  });
  return {
    releases: (chatId: number) => releases.get(chatId) ?? 0,
    /** SET NX attempts (successful or not) on the room's lock. */
    attempts: (chatId: number) => acquires.get(chatId) ?? 0,
    /** Resolves once the room's lock has been released `count` times in all. */
    released(chatId: number, count: number, deadlineMs = 5_000): Promise<void> {
      if ((releases.get(chatId) ?? 0) >= count) return Promise.resolve();
      return new Promise<void>((resolvePromise, reject) => {
        const waiter = { chatId, count, resolve: () => (clearTimeout(timer), resolvePromise()) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`room ${chatId}'s lock was released ${releases.get(chatId) ?? 0} times within ${deadlineMs} ms, not ${count}`));
        }, deadlineMs);
        waiters.add(waiter);
      });
    },
    async close() {
      monitor.disconnect();
      client.disconnect();
    },
  };
}

/**
 * Retries `wait` (a socket kit `next`, which gives up after its own short deadline) until it
 * resolves or `deadlineMs` is over: for events that legitimately take longer, such as a lock
 * expiring. Events that arrived in between are kept by the kit, so none is lost.
 */
export async function eventually<T>(wait: () => Promise<T>, deadlineMs: number): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await wait();
    } catch (error) {
      if (Date.now() >= end || !/ within \d+ ms/.test((error as Error).message)) throw error;
    }
  }
}

/** The two instances of `twoInstances`, set once its `beforeAll` has run. */
export interface TwoInstances {
  a: Instance;
  b: Instance;
  /** The PostgreSQL database both use, for a test that reads it directly. */
  databaseUrl: string;
}

/**
 * Registers the `beforeAll`/`afterAll` of a describe block that runs two instances, A and B, on a
 * fresh PostgreSQL database and the tests' Redis prefix, with the rate limits off; `env` adds to or
 * overrides their settings. The returned object's `a` and `b` are set when the tests run.
 */
export function twoInstances(name: string, env: Record<string, string> = {}): TwoInstances {
  const cluster = {} as TwoInstances;
  let database: { url: string; drop: () => Promise<void> } | undefined;
  beforeAll(async () => {
    database = await createTestDatabase(tmpdir());
    cluster.databaseUrl = database.url;
    const settings = {
      NODE_ENV: 'production',
      DATABASE_URL: database.url,
      ...testRedisEnv(),
      SECRET_KEY: `${name}-cluster-test-secret-key-0123456789abcdef`,
      ...RATE_LIMITS_OFF,
      ...env,
    };
    [cluster.a, cluster.b] = await Promise.all([startInstance('A', settings), startInstance('B', settings)]);
  }, CLUSTER_STARTUP_TIMEOUT_MS);
  afterAll(async () => {
    const { a, b } = cluster;
    await Promise.all([a?.kit.dispose(), b?.kit.dispose()].map((closing) => closing?.catch(() => {})));
    await Promise.all([a?.kill(), b?.kill()]);
    await database?.drop();
  }, CLUSTER_STARTUP_TIMEOUT_MS);
  return cluster;
}

/** A `/ws` socket on `instance` whose rooms are confirmed by Redis: its first answered frame comes after that. */
export async function connectChat(instance: Instance, user: ClusterUser): Promise<ChatClient> {
  const socket = instance.kit.chat(user.token);
  await socket.opened;
  await socket.sync();
  return socket;
}
