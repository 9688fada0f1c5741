import { readFileSync } from 'node:fs';
import { registerAndLogin, seedUsers } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import { memoryOf } from '../lib/proc';
import { closeAll, openMany, openSocket } from '../lib/sockets';

export interface IdleResult {
  requested: number;
  opened: number;
  /** Still open at the last reading (the server closes sockets it cannot authenticate). */
  stillOpen: number;
  note: string | null;
  openSeconds: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  perSocketKb: number | null;
  /** RSS once the sockets have been idle SETTLE_SECONDS: what the collector and the allocator have given back by then is out. */
  rssSettledMb: number;
  perSocketSettledKb: number | null;
}

/** How long after the first reading the second is taken: the allocator returns freed pages over tens of seconds. */
export const SETTLE_SECONDS = 30;

/** Descriptors kept free for everything else a process opens (database, logs, HTTP). */
const FD_HEADROOM = 256;

/** Soft "Max open files" of a process, from /proc/<pid>/limits. */
function openFileLimit(pid: number | 'self'): number {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

/** Every loopback connection takes one ephemeral port on the client side. */
function ephemeralPorts(): number {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return high! - low! + 1;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * N authenticated `/ws` sockets that do nothing, against a fresh server: the server's RSS before and after,
 * and the difference per socket. Each socket is its own user (seeded, see seedUsers), as in real use.
 */
export async function runIdle(context: BenchContext, requested: number, target: 'project' | 'baseline'): Promise<IdleResult> {
  const { server, dbPath } = target === 'project' ? await context.startProject('idle') : await context.startBaseline('row');
  const sockets: WebSocket[] = [];
  try {
    const limit = Math.min(openFileLimit('self'), openFileLimit(server.pid)) - FD_HEADROOM;
    const ports = ephemeralPorts() - FD_HEADROOM;
    let count = requested;
    let note: string | null = null;
    if (count > Math.min(limit, ports)) {
      count = Math.max(1, Math.min(limit, ports));
      note =
        limit <= ports
          ? `ulimit -n allows ${limit + FD_HEADROOM} open files: reduced to ${count} sockets (raise it with \`ulimit -n ${requested + 1024}\`)`
          : `only ${ports + FD_HEADROOM} ephemeral ports: reduced to ${count} sockets`;
      progress(`idle: ${note}`);
    }

    // The baseline checks nothing: its token is only a name.
    let tokens: string[] = Array.from({ length: count + 1 }, (_, i) => `idle${i}`);
    if (target === 'project') {
      const template = await registerAndLogin(server.url, 'idle-template');
      progress(`idle: seeding ${count} users`);
      tokens = [template.token, ...(await seedUsers(dbPath, template, 'idle', count, context.secretKey)).map((user) => user.token)];
    }
    // One socket opened and closed first, so code paths loaded on first use are in "before".
    (await openSocket(`${server.wsUrl}/ws?token=${tokens[0]}`)).close();
    await Bun.sleep(1_000);
    const rssBefore = memoryOf(server.pid)!.rss;

    progress(`idle ${target}: opening ${count} sockets, 500 at a time`);
    const openStart = performance.now();
    let closedEarly = 0;
    const opened = await openMany(
      count,
      (i) => `${server.wsUrl}/ws?token=${tokens[i + 1]}`,
      500,
      (n) => {
        if (n % 2_000 === 0) progress(`idle: ${n} open`);
      },
    );
    const openSeconds = (performance.now() - openStart) / 1000;
    sockets.push(...opened);
    for (const ws of opened) ws.addEventListener('close', () => closedEarly++);
    // Let the upgrade garbage settle a little; the server cannot be asked to collect it.
    await Bun.sleep(3_000);
    const rssAfter = memoryOf(server.pid)!.rss;
    const openAtFirstReading = opened.length - closedEarly;
    progress(`idle ${target}: ${SETTLE_SECONDS} s more for the second reading`);
    await Bun.sleep(SETTLE_SECONDS * 1000);
    const rssSettled = memoryOf(server.pid)!.rss;
    const stillOpen = opened.length - closedEarly;

    await closeAll(sockets, 10_000);
    return {
      requested,
      opened: opened.length,
      stillOpen,
      note,
      openSeconds,
      rssBeforeMb: rssBefore / 2 ** 20,
      rssAfterMb: rssAfter / 2 ** 20,
      perSocketKb: openAtFirstReading > 0 ? (rssAfter - rssBefore) / 1024 / openAtFirstReading : null,
      rssSettledMb: rssSettled / 2 ** 20,
      perSocketSettledKb: stillOpen > 0 ? (rssSettled - rssBefore) / 1024 / stillOpen : null,
    };
  } finally {
    for (const ws of sockets) ws.close();
    await server.stop();
  }
}
