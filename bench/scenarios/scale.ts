/**
 * Scale-out: the `/ws` fan-out load on one instance, then split over two instances that share one
 * PostgreSQL database and one Redis, each room's members alternating between them, so every message
 * crosses Redis for half of its receivers. Besides the load's own figures it reports where the CPU
 * went (each server, PostgreSQL, redis-server, this client) and what one message costs Redis.
 */

import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { redact } from '../../src/config';
import { setupRooms } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { GroupCpuShares, ProcessGroup, ServerProcess } from '../lib/proc';
import { processesNamed, ProcessCpuWindow } from '../lib/proc';
import { ratio } from '../lib/stats';
import { num, table } from '../lib/table';
import type { FanoutConfig, FanoutLoad, FanoutRoom } from './fanout';
import { driveFanout } from './fanout';

/** A PostgreSQL server where the bench may create and drop a database, and the Redis the instances share. */
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
/** How long PostgreSQL and Redis get to answer the first time; past it the scenario is skipped. */
export const REACH_TIMEOUT_MS = 3_000;
/** Any later command of the bench's own (CREATE/DROP DATABASE, count, INFO, PSUBSCRIBE). */
const COMMAND_TIMEOUT_MS = 30_000;
/** REST registration of every member (two argon2id hashes each) on a busy machine. */
const SETUP_TIMEOUT_MS = 300_000;

/** PostgreSQL or Redis did not answer: the scenario cannot run here. */
export class BackendUnreachable extends Error {
  override name = 'BackendUnreachable';
}

export interface ScaleRun extends FanoutLoad {
  instances: number;
  /** Rows the run added to `messages` (probes included), counted after its servers exited. */
  stored: number | null;
  /** Cores used during the window. */
  cpu: {
    /** Each instance's server process. */
    servers: (number | null)[];
    /** Every `postgres` process on the machine: this database's backends, the WAL writer, the checkpointer, anyone else's backends. */
    postgres: number | null;
    /** The backends connected to this run's database alone. */
    postgresThisDatabase: number | null;
    redis: number | null;
    /** This bench process: every socket, and the Redis tap. */
    client: number | null;
    /** The rest of the machine (other jobs). */
    other: number | null;
  };
  /** Acknowledged messages per transaction committed in this database: the servers' group-commit batch, roughly (stats lag up to a second). */
  messagesPerCommit: number | null;
  /** CPU µs per acknowledged message: the load's cost on each side, the basis for sizing N instances. */
  microsPerMessage: { servers: number | null; postgres: number | null; redis: number | null; client: number | null };
  redis: {
    /** Channel + payload bytes published under this run's prefix, per acknowledged message. */
    bytesPerMessage: number | null;
    bytesPerSecond: number;
    /** PUBLISHes under this run's prefix per acknowledged message, as the tap received them. */
    publishesPerMessage: number | null;
    /** `cmdstat_publish` calls per acknowledged message: counts every client of that Redis, not only this run. */
    publishCommandsPerMessage: number | null;
  };
}

export interface ScaleResult {
  /** Registering the members and making the rooms (REST, argon2-bound), once for both runs. */
  setupSeconds: number;
  one: ScaleRun;
  two: ScaleRun;
  /** Two instances ÷ one. */
  ratios: {
    deliveriesPerSecond: number | null;
    p50: number | null;
    p99: number | null;
    serverCores: number | null;
    postgresCores: number | null;
    redisCores: number | null;
  };
}

/** `work`, or an error saying what did not answer within `ms`; the work itself is not cancelled. */
async function within<T>(work: Promise<T>, what: string, ms = COMMAND_TIMEOUT_MS): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms)));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A Redis connection that fails at once instead of retrying: the bench's commands have nothing to wait for. */
const redisClient = () => {
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: REACH_TIMEOUT_MS, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {}); // every failure also rejects the command that met it
  return client;
};

/**
 * A server-side counter read at both ends of the window. The reads start from the load's hooks and
 * are awaited after it; a read that fails leaves this figure out (null), not the run.
 */
class CounterWindow {
  private atStart: Promise<number | null> = Promise.resolve(null);
  private atEnd: Promise<number | null> = Promise.resolve(null);

  constructor(
    private readonly what: string,
    private readonly read: () => Promise<number>,
  ) {}

  private reading(): Promise<number | null> {
    return within(this.read(), this.what).catch(() => null);
  }

  start(): void {
    this.atStart = this.reading();
  }

  stop(): void {
    this.atEnd = this.reading();
  }

  async difference(): Promise<number | null> {
    const [start, end] = await Promise.all([this.atStart, this.atEnd]);
    return start === null || end === null ? null : end - start;
  }
}

const sum = (values: (number | null)[]) => (values.some((v) => v === null) ? null : values.reduce<number>((total, v) => total + v!, 0));
const perMessage = (cores: number | null, messagesPerSecond: number) => (cores === null || messagesPerSecond === 0 ? null : (cores / messagesPerSecond) * 1e6);

const instancesLabel = (count: number) => (count === 1 ? 'one instance' : `${count} instances`);

export const dropStatement = (database: string) => `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`;

/**
 * On Ctrl-C or SIGTERM, proc.ts's handler kills the servers and exits at once, so no `finally` runs:
 * this handler goes first and drops the database, synchronously from a child Bun (bounded). Returns
 * what removes it again.
 */
export function dropWhenInterrupted(database: string): () => void {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const drop = () => {
    Bun.spawnSync([process.execPath, '-e', 'const sql = new Bun.SQL(process.env.ADMIN_URL); await sql.unsafe(process.env.DROP); await sql.close();'], {
      env: { ADMIN_URL: POSTGRES_URL, DROP: dropStatement(database) },
      timeout: 10_000,
    });
  };
  for (const signal of signals) process.prependOnceListener(signal, drop);
  return () => signals.forEach((signal) => process.off(signal, drop));
}

/** Counts what is published under one Redis prefix during a window, through a pattern subscription of its own. */
class RedisTap {
  private counting = false;
  bytes = 0;
  publishes = 0;
  private readonly client = redisClient();

  constructor(private readonly prefix: string) {
    this.client.on('pmessageBuffer', (_pattern: string, channel: Buffer, payload: Buffer) => {
      if (!this.counting) return;
      this.bytes += channel.length + payload.length;
      this.publishes++;
    });
  }

  async open(): Promise<void> {
    await within(
      this.client.connect().then(() => this.client.psubscribe(`${this.prefix}*`)),
      'PSUBSCRIBE',
    );
  }

  start(): void {
    this.counting = true;
  }

  stop(): void {
    this.counting = false;
  }

  close(): void {
    this.client.disconnect();
  }
}

/** What both runs share: one database, one Redis prefix, the bench's own connections to both. */
interface Cluster {
  context: BenchContext;
  config: FanoutConfig;
  database: string;
  /** The servers' environment: DATABASE_URL, REDIS_URL, REDIS_PREFIX. */
  env: Record<string, string>;
  redis: Redis;
  redisPid: number;
  storedMessages: () => Promise<number>;
  /** Transactions committed in the database so far, as its backends have reported them. */
  commits: () => Promise<number>;
}

/**
 * Runs A (one instance) and B (two), each on servers of its own over one fresh PostgreSQL database
 * (dropped at the end, whatever happens) and one Redis prefix. The rooms are made once, through run
 * A's instance: every server shares the bench's SECRET_KEY, so the tokens hold for run B too.
 */
export async function runScale(context: BenchContext, config: FanoutConfig): Promise<ScaleResult> {
  const admin = new Bun.SQL(POSTGRES_URL, { max: 1, connectionTimeout: REACH_TIMEOUT_MS / 1000 });
  const redis = redisClient();
  try {
    await within(admin`SELECT 1`, 'the server', REACH_TIMEOUT_MS).catch((error: Error) => {
      throw new BackendUnreachable(`PostgreSQL at ${redact(POSTGRES_URL)} is unreachable (${error.message}); set BENCH_POSTGRES_URL`);
    });
    await within(
      redis.connect().then(() => redis.ping()),
      'the server',
      REACH_TIMEOUT_MS,
    ).catch((error: Error) => {
      throw new BackendUnreachable(`Redis at ${redact(REDIS_URL)} is unreachable (${error.message}); set BENCH_REDIS_URL`);
    });

    const database = `gemini_coop_bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const databaseUrl = new URL(POSTGRES_URL);
    databaseUrl.pathname = `/${database}`;
    const bench = new Bun.SQL(databaseUrl.toString(), { max: 1, connectionTimeout: REACH_TIMEOUT_MS / 1000 });
    await within(admin.unsafe(`CREATE DATABASE "${database}"`), `CREATE DATABASE ${database}`);
    const forgetInterrupt = dropWhenInterrupted(database);
    try {
      const cluster: Cluster = {
        context,
        config,
        database,
        env: { DATABASE_URL: databaseUrl.toString(), REDIS_URL, REDIS_PREFIX: `gemini-coop-bench:${randomUUID()}:` },
        redis,
        redisPid: Number(/process_id:(\d+)/.exec(await within(redis.info('server'), 'Redis INFO'))?.[1]),
        storedMessages: async () => {
          const [row] = await within<{ n: number }[]>(bench`SELECT count(*)::int AS n FROM messages`, 'SELECT count(*) FROM messages');
          return row!.n;
        },
        commits: async () => {
          const [row] = await bench<{ n: number }[]>`SELECT xact_commit::float8 AS n FROM pg_stat_database WHERE datname = current_database()`;
          return row!.n;
        },
      };
      let setupSeconds = 0;
      const one = await runInstances(cluster, 1, async (first) => {
        progress(`scale: registering ${config.rooms * config.members} users (argon2id, 8 at a time)`);
        const started = performance.now();
        const rooms = await within(setupRooms(first.url, config.rooms, config.members), 'setting up the rooms', SETUP_TIMEOUT_MS);
        setupSeconds = (performance.now() - started) / 1000;
        return rooms;
      });
      const two = await runInstances(cluster, 2, () => Promise.resolve(one.rooms));
      return {
        setupSeconds,
        one: one.run,
        two: two.run,
        ratios: {
          deliveriesPerSecond: ratio(two.run.deliveriesPerSecond, one.run.deliveriesPerSecond),
          p50: ratio(two.run.latencyMs.p50, one.run.latencyMs.p50),
          p99: ratio(two.run.latencyMs.p99, one.run.latencyMs.p99),
          serverCores: ratio(sum(two.run.cpu.servers), sum(one.run.cpu.servers)),
          postgresCores: ratio(two.run.cpu.postgres, one.run.cpu.postgres),
          redisCores: ratio(two.run.cpu.redis, one.run.cpu.redis),
        },
      };
    } finally {
      await bench.close({ timeout: 1 });
      forgetInterrupt();
      await within(admin.unsafe(dropStatement(database)), `DROP DATABASE ${database}`).catch((error: Error) =>
        console.log(`  WARNING: database ${database} was not dropped (${error.message}): ${dropStatement(database)} by hand`),
      );
    }
  } finally {
    redis.disconnect();
    await admin.close({ timeout: 1 });
  }
}

/**
 * Starts `instances` servers one after the other (the first applies the migrations, the next finds
 * them applied), runs the load with room r's member m on instance (r + m) mod N, and stops them.
 */
async function runInstances(
  cluster: Cluster,
  instances: number,
  roomsOn: (first: ServerProcess) => Promise<FanoutRoom[]>,
): Promise<{ rooms: FanoutRoom[]; run: ScaleRun }> {
  const { context, config, database, env, redis, redisPid } = cluster;
  const label = `scale, ${instancesLabel(instances)}`;
  const servers: ServerProcess[] = [];
  // A pattern subscriber of the run's prefix hears every PUBLISH the instances make (and is one more receiver for Redis).
  const tap = new RedisTap(env.REDIS_PREFIX!);
  try {
    for (let i = 0; i < instances; i++) servers.push((await context.startProject(`scale-${instances}x-${i + 1}`, env)).server);
    const rooms = await roomsOn(servers[0]!);
    await tap.open();

    const groups: Record<string, ProcessGroup> = {
      postgresThisDatabase: () => processesNamed('postgres', (line) => line.includes(` ${database} `)),
      postgresOthers: () => processesNamed('postgres', (line) => !line.includes(` ${database} `)),
      // The pid Redis reports is this machine's redis-server only when one by that pid runs here.
      redis: () => processesNamed('redis-server').filter((pid) => pid === redisPid),
    };
    servers.forEach((server, i) => (groups[`server${i}`] = () => [server.pid]));
    const cpu = new ProcessCpuWindow(groups);
    let shares: GroupCpuShares<string> | null = null;
    let windowStart = 0;
    let windowSeconds = 0;
    // The whole Redis server's PUBLISH count, and this database's commits (backends report them about once a second).
    const publishCommands = new CounterWindow('Redis INFO', async () => Number(/cmdstat_publish:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0));
    const commits = new CounterWindow('pg_stat_database', cluster.commits);
    const storedBefore = await cluster.storedMessages();

    const load = await driveFanout(rooms, config, 'ws', (r, m) => servers[(r + m) % instances]!.wsUrl, label, {
      windowStarted: () => {
        cpu.start();
        publishCommands.start();
        commits.start();
        tap.start();
        windowStart = performance.now();
      },
      windowEnded: () => {
        windowSeconds = (performance.now() - windowStart) / 1000;
        tap.stop();
        publishCommands.stop();
        commits.stop();
        shares = cpu.stop();
      },
    });
    const [publishCommandsInWindow, commitsInWindow] = await Promise.all([publishCommands.difference(), commits.difference()]);
    await Promise.all(servers.map((server) => server.stop()));
    const stored = (await cluster.storedMessages()) - storedBefore;

    const { groups: used, clientCores, otherCores } = shares!;
    const serverCores = servers.map((_, i) => used[`server${i}`] ?? null);
    const postgres = sum([used.postgresThisDatabase ?? null, used.postgresOthers ?? null]);
    const redisCores = used.redis ?? null;
    const messagesInWindow = load.messagesPerSecond * windowSeconds;
    const perAcknowledged = (count: number | null) => (count === null || messagesInWindow === 0 ? null : count / messagesInWindow);
    const run: ScaleRun = {
      instances,
      ...load,
      stored,
      cpu: {
        servers: serverCores,
        postgres,
        postgresThisDatabase: used.postgresThisDatabase ?? null,
        redis: redisCores,
        client: clientCores,
        other: otherCores,
      },
      messagesPerCommit: commitsInWindow ? messagesInWindow / commitsInWindow : null,
      microsPerMessage: {
        servers: perMessage(sum(serverCores), load.messagesPerSecond),
        postgres: perMessage(postgres, load.messagesPerSecond),
        redis: perMessage(redisCores, load.messagesPerSecond),
        client: perMessage(clientCores, load.messagesPerSecond),
      },
      redis: {
        bytesPerMessage: perAcknowledged(tap.bytes),
        bytesPerSecond: tap.bytes / windowSeconds,
        publishesPerMessage: perAcknowledged(tap.publishes),
        publishCommandsPerMessage: perAcknowledged(publishCommandsInWindow),
      },
    };
    return { rooms, run };
  } finally {
    tap.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
}

/** What went wrong in either run (deliveries or stored rows missing, error frames, sockets closed), or null. */
export function scaleFailures(result: ScaleResult): string | null {
  const failures = [result.one, result.two].flatMap((run) => {
    const problems: string[] = [];
    if (run.delivered !== run.expectedDeliveries) problems.push(`delivered ${run.delivered} of ${run.expectedDeliveries}`);
    if (run.stored !== run.acknowledged) problems.push(`stored ${run.stored} of ${run.acknowledged} acknowledged`);
    if (run.errorFrames) problems.push(`${run.errorFrames} error frames`);
    if (run.unexpectedCloses) problems.push(`${run.unexpectedCloses} unexpected closes`);
    return problems.length ? [`${instancesLabel(run.instances)}: ${problems.join(', ')}`] : [];
  });
  return failures.length ? failures.join('; ') : null;
}

const cores = (value: number | null) => num(value, 2);
const times = (value: number | null) => (value === null ? '—' : `${num(value, 3)}×`);

/** The table (one instance, two instances, two ÷ one) and how to read it. */
export function scaleReport(result: ScaleResult): string {
  const runs = [result.one, result.two];
  const row = (label: string, show: (run: ScaleRun) => string, twoOverOne?: number | null) => [
    label,
    ...runs.map(show),
    twoOverOne === undefined ? '' : times(twoOverOne),
  ];
  const ratioOf = (pick: (run: ScaleRun) => number | null) => ratio(pick(result.two), pick(result.one));
  const rows = [
    row('deliveries/s', (r) => num(r.deliveriesPerSecond, 0), result.ratios.deliveriesPerSecond),
    row(
      'messages/s (acknowledged)',
      (r) => num(r.messagesPerSecond, 0),
      ratioOf((r) => r.messagesPerSecond),
    ),
    row('delivery latency p50 ms', (r) => num(r.latencyMs.p50, 2), result.ratios.p50),
    row('delivery latency p99 ms', (r) => num(r.latencyMs.p99, 2), result.ratios.p99),
    row('sent / acknowledged (run)', (r) => `${num(r.sent, 0)} / ${num(r.acknowledged, 0)}`),
    row('stored (SELECT count(*))', (r) => num(r.stored, 0)),
    row('delivered / expected (run)', (r) => `${num(r.delivered, 0)} / ${num(r.expectedDeliveries, 0)}`),
    row('error frames / unexpected closes', (r) => `${r.errorFrames} / ${r.unexpectedCloses}`),
    row('CPU cores each server', (r) => r.cpu.servers.map(cores).join(' + ')),
    row('CPU cores servers in all', (r) => cores(sum(r.cpu.servers)), result.ratios.serverCores),
    row('CPU cores PostgreSQL (this database)', (r) => `${cores(r.cpu.postgres)} (${cores(r.cpu.postgresThisDatabase)})`, result.ratios.postgresCores),
    row('CPU cores redis-server', (r) => cores(r.cpu.redis), result.ratios.redisCores),
    row('CPU cores bench client / other', (r) => `${cores(r.cpu.client)} / ${cores(r.cpu.other)}`),
    row(
      'CPU µs per message: servers',
      (r) => num(r.microsPerMessage.servers, 0),
      ratioOf((r) => r.microsPerMessage.servers),
    ),
    row(
      'CPU µs per message: PostgreSQL',
      (r) => num(r.microsPerMessage.postgres, 0),
      ratioOf((r) => r.microsPerMessage.postgres),
    ),
    row(
      'CPU µs per message: redis-server',
      (r) => num(r.microsPerMessage.redis, 0),
      ratioOf((r) => r.microsPerMessage.redis),
    ),
    row('messages per PostgreSQL commit', (r) => num(r.messagesPerCommit, 1)),
    row('Redis bytes published per message', (r) => num(r.redis.bytesPerMessage, 0)),
    row('Redis MB/s published', (r) => num(r.redis.bytesPerSecond / 1e6, 2)),
    row('PUBLISH per message (prefix / whole Redis)', (r) => `${num(r.redis.publishesPerMessage, 2)} / ${num(r.redis.publishCommandsPerMessage, 2)}`),
  ];
  return [
    table(['', 'one instance', 'two instances', 'two ÷ one'], rows),
    `  Both runs: one fresh PostgreSQL database, REDIS_URL set (a lone instance also publishes each message to Redis and hears it back).`,
    `  Two instances: room r's member m on instance (r + m) mod 2, senders included. Setup (REST, argon2-bound, once): ${num(result.setupSeconds, 1)} s.`,
    "  PostgreSQL = every postgres process of the machine (WAL writer and checkpointer, other users' backends too), in brackets the",
    "  backends of this database. Redis bytes = channel + payload of every PUBLISH under the run's prefix, seen by a PSUBSCRIBE",
    '  in the bench process (one more receiver for Redis, and work for the client); "whole Redis" counts every client\'s PUBLISH.',
  ].join('\n');
}
