import type { Subprocess } from 'bun';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const BUN = process.execPath;
const ROOT = join(import.meta.dir, '..', '..');

/** Every child this bench started and has not yet seen exit: stopped if the bench itself is interrupted. */
const children = new Set<Subprocess>();
const killChildren = () => {
  for (const child of children) child.kill('SIGKILL');
};
process.once('exit', killChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killChildren();
    process.exit(130);
  });
}

/** A loopback port nobody is listening on right now (tiny race, harmless on a quiet machine). */
export function freePort(): number {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() });
  const port = probe.port!;
  void probe.stop(true);
  return port;
}

/** Resident set size now and its high-water mark, in bytes, from /proc (Linux only). */
export function memoryOf(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** The user and kernel CPU seconds a process has used so far, from /proc/<pid>/stat (clock ticks of 1/100 s). */
export function cpuTimesOf(pid: number): { user: number; system: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces; the numeric fields start after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 }; // utime, stime (fields 14 and 15 of stat)
  } catch {
    return null;
  }
}

/** User + system CPU seconds a process has used so far. */
export function cpuSecondsOf(pid: number): number | null {
  const times = cpuTimesOf(pid);
  return times && times.user + times.system;
}

/** This (client) process's CPU seconds. */
export const clientCpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** CPU seconds the whole machine has been busy (all cores, all processes), from /proc/stat. */
export function machineBusySeconds(): number | null {
  try {
    const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
    return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
  } catch {
    return null;
  }
}

export interface CpuShares {
  /** The server under test, in cores (1.0 = one core busy the whole window). */
  serverCores: number | null;
  /** This bench process. */
  clientCores: number | null;
  /** Everything else on the machine: other work competing for the same cores makes figures noisy. */
  otherCores: number | null;
  /** The part of serverCores spent in the kernel (socket writes and reads, file writes), where known. */
  serverKernelCores?: number | null;
}

/**
 * CPU shares over a window: shows which side — server, client, or someone else — was busy, since the
 * client shares the machine's cores with the server.
 */
export class CpuWindow {
  private readonly window: ProcessCpuWindow<'server'>;
  private kernelAtStart = NaN;
  result: CpuShares = { serverCores: null, clientCores: null, otherCores: null, serverKernelCores: null };

  constructor(private readonly pid: number) {
    this.window = new ProcessCpuWindow({ server: () => [pid] });
  }

  start(): void {
    this.window.start();
    this.kernelAtStart = cpuTimesOf(this.pid)?.system ?? NaN;
  }

  stop(): void {
    const { groups, clientCores, otherCores, seconds } = this.window.stop();
    const kernel = ((cpuTimesOf(this.pid)?.system ?? NaN) - this.kernelAtStart) / seconds;
    this.result = { serverCores: groups.server, clientCores, otherCores, serverKernelCores: Number.isFinite(kernel) ? kernel : null };
  }
}

/** The processes one figure covers; listed again at each end of the window, since some (database backends) come and go. */
export type ProcessGroup = () => readonly number[];

/** Cores used over a window by each group of processes, by this bench process, and by the rest of the machine. */
export interface GroupCpuShares<G extends string> {
  /** Null when none of the group's processes could be read at the end (gone, or not on this machine). */
  groups: Record<G, number | null>;
  clientCores: number | null;
  otherCores: number | null;
  /** How long the window was, wall clock. */
  seconds: number;
}

/**
 * CPU shares of several groups of processes over one window (servers, the database, Redis). Groups
 * must not overlap, or "other" would be short by what two groups both counted.
 */
export class ProcessCpuWindow<G extends string> {
  private startedAt = 0;
  private startClient = NaN;
  private startMachine = NaN;
  private startByPid = new Map<number, number>();

  constructor(private readonly groups: Record<G, ProcessGroup>) {}

  start(): void {
    this.startByPid = new Map();
    for (const group of Object.values<ProcessGroup>(this.groups)) {
      for (const pid of group()) {
        const seconds = cpuSecondsOf(pid);
        if (seconds !== null) this.startByPid.set(pid, seconds);
      }
    }
    this.startClient = clientCpuSeconds();
    this.startMachine = machineBusySeconds() ?? NaN;
    this.startedAt = performance.now();
  }

  /** A process that started during the window counts whole; one that ended during it is missed. */
  stop(): GroupCpuShares<G> {
    const wall = (performance.now() - this.startedAt) / 1000;
    const share = (value: number) => (Number.isFinite(value) ? Math.max(0, value / wall) : null);
    const groups = {} as Record<G, number | null>;
    let grouped = 0;
    for (const name of Object.keys(this.groups) as G[]) {
      const used = this.groups[name]().flatMap((pid) => {
        const now = cpuSecondsOf(pid);
        return now === null ? [] : [now - (this.startByPid.get(pid) ?? 0)];
      });
      const seconds = used.reduce((sum, each) => sum + each, 0);
      grouped += seconds;
      groups[name] = used.length ? share(seconds) : null;
    }
    const client = clientCpuSeconds() - this.startClient;
    const machine = (machineBusySeconds() ?? NaN) - this.startMachine;
    return { groups, clientCores: share(client), otherCores: share(machine - grouped - client), seconds: wall };
  }
}

/**
 * Every process of this machine named `name` (its /proc/<pid>/comm, e.g. `postgres`) whose command
 * line passes `where`: a PostgreSQL backend's command line names its user and database.
 */
export function processesNamed(name: string, where: (commandLine: string) => boolean = () => true): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== name) continue;
      if (where(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' '))) pids.push(Number(entry));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return pids;
}

export interface ServerProcess {
  proc: Subprocess;
  pid: number;
  url: string;
  wsUrl: string;
  /** Highest VmRSS seen by the 200 ms poller, in bytes (VmHWM is folded in at stop). */
  peakRss: () => number;
  /** Starts a window of RSS polling (e.g. the load, without the set-up before it); `peak()` is its highest VmRSS, in bytes. */
  rssWindow: () => { peak: () => number };
  /** SIGTERM, then wait (SIGKILL after 10 s); returns the exit code. */
  stop: () => Promise<number | null>;
  /** The last lines the process wrote, for error reports. */
  logTail: () => string;
  /** Where its stderr goes, to be read whole after a long run. */
  errorLogPath: string;
}

export interface SpawnOptions {
  /** Script to run with Bun, relative to the repository root. */
  script: string;
  args?: string[];
  env: Record<string, string>;
  /** Where stdout/stderr go (files in the run's temp dir). */
  logDir: string;
  name: string;
  /** Path answering 200 once the process is ready. */
  healthPath?: string;
  /** Ready as soon as the path answers with any status (for servers without a health route). */
  anyStatus?: boolean;
  port: number;
}

/**
 * Runs a server as a child process (Bun directly, not through npm, so signals reach it), waits for
 * its health check, and polls its RSS every 200 ms so the peak is known whatever happens later.
 */
export async function spawnServer(options: SpawnOptions): Promise<ServerProcess> {
  const outPath = join(options.logDir, `${options.name}.out.log`);
  const errPath = join(options.logDir, `${options.name}.err.log`);
  // BENCH_PROFILE_DIR=<dir> writes a CPU profile of the project server (markdown) there on exit.
  const profile = process.env.BENCH_PROFILE_DIR && options.name === 'server' ? ['--cpu-prof-md', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  const proc = Bun.spawn([BUN, ...profile, options.script, ...(options.args ?? [])], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdout: Bun.file(outPath),
    stderr: Bun.file(errPath),
    stdin: 'ignore',
  });
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  const url = `http://127.0.0.1:${options.port}`;
  let peak = 0;
  let windowPeak = 0;
  const poll = setInterval(() => {
    const memory = memoryOf(proc.pid);
    if (memory && memory.rss > peak) peak = memory.rss;
    if (memory && memory.rss > windowPeak) windowPeak = memory.rss;
  }, 200);
  const logTail = () =>
    [outPath, errPath]
      .filter((path) => existsSync(path))
      .map((path) => readFileSync(path, 'utf8').split('\n').slice(-20).join('\n'))
      .join('\n');

  const server: ServerProcess = {
    proc,
    pid: proc.pid,
    url,
    wsUrl: `ws://127.0.0.1:${options.port}`,
    peakRss: () => Math.max(peak, memoryOf(proc.pid)?.hwm ?? 0),
    rssWindow: () => {
      windowPeak = memoryOf(proc.pid)?.rss ?? 0;
      return { peak: () => Math.max(windowPeak, memoryOf(proc.pid)?.rss ?? 0) };
    },
    logTail,
    errorLogPath: errPath,
    async stop() {
      const memory = memoryOf(proc.pid);
      if (memory) peak = Math.max(peak, memory.hwm, memory.rss);
      clearInterval(poll);
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const code = await proc.exited;
      clearTimeout(killer);
      return code;
    },
  };

  // Bounded wait: 30 s is far more than migrations + start-up take.
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) {
      clearInterval(poll);
      throw new Error(`${options.name} exited during start-up (code ${proc.exitCode}):\n${logTail()}`);
    }
    try {
      const response = await fetch(url + (options.healthPath ?? '/health'));
      if (response.ok || options.anyStatus) break;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) {
      await server.stop();
      throw new Error(`${options.name} did not become healthy within 30 s:\n${logTail()}`);
    }
    await Bun.sleep(50);
  }
  return server;
}

/**
 * The local Gemini stand-in as a child process. Its port is chosen here and passed in, so there is no
 * need to parse its "listening on" line; health is "answers HTTP at all" (it 404s unknown paths).
 */
export async function spawnFakeGemini(options: {
  logDir: string;
  chunks: number;
  delayMs: number;
  apiKey: string;
}): Promise<ServerProcess & { baseUrl: string }> {
  const port = freePort();
  const fake = await spawnServer({
    name: 'fake-gemini',
    script: 'test/support/fake-gemini.ts',
    args: ['--port', String(port), '--chunks', String(options.chunks), '--chunk-delay-ms', String(options.delayMs), '--api-key', options.apiKey],
    env: {},
    logDir: options.logDir,
    port,
    healthPath: '/',
    anyStatus: true,
  });
  return { ...fake, baseUrl: fake.url };
}
