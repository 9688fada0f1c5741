import { api, createRoom, invite, PASSWORD, registerAndLogin, seedUsers } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { CpuShares } from '../lib/proc';
import { CpuWindow } from '../lib/proc';
import type { Summary } from '../lib/stats';
import { Samples } from '../lib/stats';

export interface HttpConfig {
  seconds: number;
  loginConcurrency: number;
  graphqlConcurrency: number;
  /** Shape of the GraphQL query's answer: chats the viewer is in × members each. */
  chats: number;
  membersPerChat: number;
}

export interface HttpLoad {
  name: string;
  concurrency: number;
  requests: number;
  failures: number;
  requestsPerSecond: number;
  latencyMs: Summary;
  /** CPU used during the window, in cores: server, this client, everything else. */
  cpu: CpuShares;
}

export const GRAPHQL_QUERY = '{ chats { id name participants { username } } }';

/**
 * Closed-loop HTTP load: `concurrency` workers each send the next request when the last one answered,
 * for `seconds`. A request that fails (non-2xx, or GraphQL `errors`) counts as a failure, not a request.
 */
async function load(name: string, concurrency: number, seconds: number, pid: number, request: () => Promise<boolean>): Promise<HttpLoad> {
  const latency = new Samples();
  let requests = 0;
  let failures = 0;
  const cpu = new CpuWindow(pid);
  cpu.start();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const sent = performance.now();
        const ok = await request().catch(() => false);
        if (ok) {
          requests++;
          latency.push(performance.now() - sent);
        } else failures++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  cpu.stop();
  return { name, concurrency, requests, failures, requestsPerSecond: requests / elapsed, latencyMs: latency.summary(), cpu: cpu.result };
}

/** Login throughput (argon2id-bound by design) and a typical authenticated GraphQL read. */
export async function runHttp(context: BenchContext, config: HttpConfig): Promise<HttpLoad[]> {
  const { server, dbPath } = await context.startProject('http');
  try {
    const viewer = await registerAndLogin(server.url, 'viewer');
    const others = await seedUsers(dbPath, viewer, 'member', config.membersPerChat - 1, context.secretKey);
    for (let c = 0; c < config.chats; c++) {
      const chatId = await createRoom(server.url, viewer, `http chat ${c}`);
      for (const other of others) await invite(server.url, viewer, chatId, other.username);
    }
    // Sanity check of the answer's shape before timing it.
    const sample = await api<{ data?: { chats: { participants: unknown[] }[] } }>(server.url, 'POST', '/graphql', { query: GRAPHQL_QUERY }, viewer.token);
    if (sample.data?.chats.length !== config.chats) throw new Error(`GraphQL chats query answered ${JSON.stringify(sample).slice(0, 200)}`);

    progress(`http: login × ${config.loginConcurrency} for ${config.seconds} s`);
    const loginBody = JSON.stringify({ username: viewer.username, password: PASSWORD });
    const login = await load('login (POST /api/auth/login)', config.loginConcurrency, config.seconds, server.pid, async () => {
      const response = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: loginBody });
      await response.arrayBuffer();
      return response.ok;
    });

    progress(`http: GraphQL chats query × ${config.graphqlConcurrency} for ${config.seconds} s`);
    const graphqlBody = JSON.stringify({ query: GRAPHQL_QUERY });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${viewer.token}` };
    const graphql = await load(`GraphQL ${GRAPHQL_QUERY}`, config.graphqlConcurrency, config.seconds, server.pid, async () => {
      const response = await fetch(`${server.url}/graphql`, { method: 'POST', headers, body: graphqlBody });
      const text = await response.text();
      return response.ok && !text.includes('"errors"');
    });

    // The ceiling for login: the same argon2id verification with no HTTP, server or database around it.
    progress(`http: argon2id verify alone × ${config.loginConcurrency} for ${config.seconds} s (bench process)`);
    const hash = await Bun.password.hash(PASSWORD, { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 });
    const argon2 = await load('argon2id verify alone (bench process, no HTTP)', config.loginConcurrency, config.seconds, server.pid, () =>
      Bun.password.verify(PASSWORD, hash),
    );
    return [login, graphql, argon2];
  } finally {
    await server.stop();
  }
}
