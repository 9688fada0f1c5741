/**
 * `npm run bench`: capacity of the project's server on loopback, scenario by scenario, each against a
 * fresh server process on a fresh SQLite file. See `bun bench/run.ts --help`.
 *
 * Every loop is bounded (fixed durations, bounded waits), every child process is stopped at the end,
 * and the figures go to stdout as tables and to bench/results/latest.json.
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchContext, RATE_LIMITS_OFF } from './lib/context';
import type { CpuShares } from './lib/proc';
import { median, ratio } from './lib/stats';
import { num, table } from './lib/table';
import type { BotResult } from './scenarios/bot';
import { runBot } from './scenarios/bot';
import type { FanoutConfig, FanoutResult } from './scenarios/fanout';
import { CHAT_CLIENT_SUBSCRIPTION, runFanout } from './scenarios/fanout';
import type { HttpLoad } from './scenarios/http';
import { GRAPHQL_QUERY, runHttp } from './scenarios/http';
import type { IdleResult } from './scenarios/idle';
import type { ReactionCostResult } from './scenarios/reactions';
import { runReactionCost } from './scenarios/reactions';
import { runIdle, SETTLE_SECONDS } from './scenarios/idle';
import type { FilesResult } from './scenarios/files';
import { runFiles } from './scenarios/files';
import type { PresenceResult } from './scenarios/presence';
import { runPresence } from './scenarios/presence';
import type { ScaleResult } from './scenarios/scale';
import { BackendUnreachable, runScale, scaleFailures, scaleReport } from './scenarios/scale';
import type { SearchConfig } from './scenarios/search';
import { runSearch, searchReport } from './scenarios/search';

const SCENARIOS = ['ws', 'gql', 'bot', 'idle', 'http', 'scale', 'search', 'reactions', 'presence', 'files'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Settings extends FanoutConfig {
  only: Scenario[];
  /** --only named the scenarios: one that cannot run here (scale without PostgreSQL/Redis) fails instead of being skipped. */
  onlyNamed: boolean;
  listeners: number;
  chunks: number;
  chunkDelayMs: number;
  idleSockets: number;
  httpSeconds: number;
  search: SearchConfig;
  reactionSeconds: number;
  /** How many times the ws, gql and idle scenarios run (each round in full, one after the other). */
  rounds: number;
  keep: boolean;
}

const FULL = {
  rooms: 20,
  members: 10,
  inflight: 4,
  seconds: 10,
  warmup: 2,
  listeners: 1000,
  chunks: 500,
  'chunk-delay-ms': 2,
  'idle-sockets': 10_000,
  'http-seconds': 5,
  'search-messages': 1_000_000,
  'search-rooms': 1_000,
  'search-member-rooms': 50,
  'search-queries': 200,
  'reaction-seconds': 3,
  rounds: 1,
};
const QUICK: typeof FULL = {
  rooms: 4,
  members: 5,
  inflight: 4,
  seconds: 2,
  warmup: 1,
  listeners: 100,
  chunks: 100,
  'chunk-delay-ms': 2,
  'idle-sockets': 500,
  'http-seconds': 2,
  'search-messages': 50_000,
  'search-rooms': 100,
  'search-member-rooms': 10,
  'search-queries': 40,
  'reaction-seconds': 2,
  rounds: 1,
};

const HELP = `bun bench/run.ts [flags]   (npm run bench -- [flags])

  --only=ws,gql,bot,idle,http,scale,search,reactions,presence
                                 scenarios to run (default: all; scale, and search's PostgreSQL half, are skipped
                                 with a note when PostgreSQL or Redis does not answer, and fail when named here)
  --quick                        small sizes for a smoke run (explicit flags still win)
  --rooms N --members N          /ws, graphql-ws and scale fan-out shape (default ${FULL.rooms} × ${FULL.members})
  --inflight N                   messages each room's sender keeps in flight (default ${FULL.inflight})
  --seconds N --warmup N         measured window and warm-up before it (default ${FULL.seconds} s, ${FULL.warmup} s)
  --listeners N                  /ws listeners in the bot room (default ${FULL.listeners})
  --chunks N --chunk-delay-ms N  the fake Gemini's answer (default ${FULL.chunks} × ${FULL['chunk-delay-ms']} ms)
  --idle-sockets N               idle authenticated /ws sockets (default ${FULL['idle-sockets']})
  --http-seconds N               duration of each HTTP load (default ${FULL['http-seconds']} s)
  --reaction-seconds N           reactions: each window, messages then reactions, after 1 s warm-up (default ${FULL['reaction-seconds']} s)
  --search-messages N --search-rooms N --search-member-rooms N --search-queries N
                                 search's history (default ${FULL['search-messages'].toLocaleString('en-US')} messages in ${FULL['search-rooms']} rooms, the searcher in
                                 ${FULL['search-member-rooms']}) and queries per row (default ${FULL['search-queries']}); seeding 1,000,000 takes minutes
  --rounds N                     run ws, gql and idle N times (default ${FULL.rounds}): the machine is noisy, and the
                                 targets table at the end gives each round's ratio, their median and how many met it
  --keep                         keep the temp dir (databases, server logs)

  scale and search use BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres: a database is created
  there and dropped at the end) and BENCH_REDIS_URL (default redis://127.0.0.1:6379, under a prefix of its own).`;

function settings(): Settings {
  const numeric = Object.keys(FULL) as (keyof typeof FULL)[];
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(numeric.map((name) => [name, { type: 'string' as const }])),
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const defaults = values.quick ? QUICK : FULL;
  const pick = (name: keyof typeof FULL): number => {
    const raw = (values as Record<string, unknown>)[name] as string | undefined;
    if (raw === undefined) return defaults[name];
    const value = Number(raw);
    if (!Number.isInteger(value) || value < (name === 'warmup' ? 0 : 1)) throw new Error(`--${name}=${raw}: expected a positive whole number`);
    return value;
  };
  const only = (values.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()) as Scenario[];
  const unknown = only.filter((s) => !SCENARIOS.includes(s));
  if (unknown.length) throw new Error(`--only: unknown scenario ${unknown.join(', ')} (choose from ${SCENARIOS.join(', ')})`);
  return {
    only,
    onlyNamed: values.only !== undefined,
    rooms: pick('rooms'),
    members: pick('members'),
    inflight: pick('inflight'),
    seconds: pick('seconds'),
    warmupSeconds: pick('warmup'),
    listeners: pick('listeners'),
    chunks: pick('chunks'),
    chunkDelayMs: pick('chunk-delay-ms'),
    idleSockets: pick('idle-sockets'),
    httpSeconds: pick('http-seconds'),
    search: {
      messages: pick('search-messages'),
      rooms: pick('search-rooms'),
      searcherRooms: pick('search-member-rooms'),
      queries: pick('search-queries'),
    },
    reactionSeconds: pick('reaction-seconds'),
    rounds: pick('rounds'),
    keep: values.keep ?? false,
  };
}

const ms = (value: number | null | undefined) => num(value, 2);
const mb = (value: number | null | undefined) => num(value, 1);
const times = (value: number | null) => (value === null ? '—' : `${num(value, 3)}×`);
const cores = ({ cpu }: { cpu: CpuShares }) => `${num(cpu.serverCores, 2)} / ${num(cpu.clientCores, 2)} / ${num(cpu.otherCores, 2)}`;

/**
 * The server's CPU time for each delivery, split where it was spent: JavaScript and the runtime (user), or
 * the kernel's sockets and files. On loopback the kernel's share includes the receiving socket's side.
 */
function microsPerDelivery({ cpu, deliveriesPerSecond }: FanoutResult): string {
  const { serverCores, serverKernelCores } = cpu;
  if (serverCores == null || serverKernelCores == null || deliveriesPerSecond <= 0) return '—';
  const micros = (coresUsed: number) => num((coresUsed * 1e6) / deliveriesPerSecond, 2);
  return `${micros(serverCores - serverKernelCores)} / ${micros(serverKernelCores)}`;
}

function fanoutRows(results: FanoutResult[]): (string | number | null)[][] {
  const each = <T>(f: (r: FanoutResult) => T) => results.map(f);
  return [
    ['deliveries/s', ...each((r) => num(r.deliveriesPerSecond, 0))],
    ['messages/s (acknowledged)', ...each((r) => num(r.messagesPerSecond, 0))],
    ['delivery latency p50 ms', ...each((r) => ms(r.latencyMs.p50))],
    ['delivery latency p99 ms', ...each((r) => ms(r.latencyMs.p99))],
    ['delivery latency max ms', ...each((r) => ms(r.latencyMs.max))],
    ['sent / acknowledged (run)', ...each((r) => `${num(r.sent, 0)} / ${num(r.acknowledged, 0)}`)],
    ['stored (SELECT count(*))', ...each((r) => num(r.stored, 0))],
    ['delivered / expected (run)', ...each((r) => `${num(r.delivered, 0)} / ${num(r.expectedDeliveries, 0)}`)],
    ['error frames', ...each((r) => r.errorFrames)],
    ['unexpected socket closes', ...each((r) => r.unexpectedCloses)],
    ['server peak RSS MB under load', ...each((r) => mb(r.peakRssMb))],
    ['CPU cores server / client / other', ...each(cores)],
    ['server CPU µs a delivery: user / kernel', ...each(microsPerDelivery)],
    ['setup s (REST, argon2-bound)', ...each((r) => num(r.setupSeconds, 1))],
  ];
}

type Ratios = Record<'deliveriesPerSecond' | 'p50' | 'p99' | 'peakRss', number | null>;

/** `measured` against `reference`, figure by figure. */
const fanoutRatios = (measured: FanoutResult, reference: FanoutResult): Ratios => ({
  deliveriesPerSecond: ratio(measured.deliveriesPerSecond, reference.deliveriesPerSecond),
  p50: ratio(measured.latencyMs.p50, reference.latencyMs.p50),
  p99: ratio(measured.latencyMs.p99, reference.latencyMs.p99),
  peakRss: ratio(measured.peakRssMb, reference.peakRssMb),
});

/** What one round of the ws, gql and idle scenarios measured (each absent when its scenario did not run). */
interface Round {
  ws?: { project: FanoutResult; baseline: FanoutResult; groupBaseline: FanoutResult; ratios: { row: Ratios; group: Ratios } };
  gql?: { gql: FanoutResult; ws: FanoutResult; ratios: Ratios };
  idle?: { project: IdleResult; baseline: IdleResult; ratios: Record<'perSocket' | 'perSocketSettled' | 'rssBefore', number | null> };
}

/** The ratios the project's performance is held to, each read off one round. */
const TARGETS: { label: string; limit: number; atMost?: true; read: (round: Round) => number | null | undefined }[] = [
  { label: '/ws deliveries/s ÷ group-commit baseline', limit: 0.8, read: (round) => round.ws?.ratios.group.deliveriesPerSecond },
  { label: '/ws p99 ÷ group-commit baseline', limit: 1.5, atMost: true, read: (round) => round.ws?.ratios.group.p99 },
  { label: 'graphql-ws deliveries/s ÷ /ws', limit: 0.5, read: (round) => round.gql?.ratios.deliveriesPerSecond },
  { label: 'graphql-ws p99 ÷ /ws', limit: 1.5, atMost: true, read: (round) => round.gql?.ratios.p99 },
  { label: 'peak RSS under the /ws load ÷ group-commit baseline', limit: 3, atMost: true, read: (round) => round.ws?.ratios.group.peakRss },
  { label: 'idle socket ÷ baseline, 3 s after', limit: 1.5, atMost: true, read: (round) => round.idle?.ratios.perSocket },
  { label: `idle socket ÷ baseline, ${3 + SETTLE_SECONDS} s after`, limit: 1.5, atMost: true, read: (round) => round.idle?.ratios.perSocketSettled },
];

/** Each target's value in every round, their median, and in how many rounds it was met; targets no round measured are left out. */
function targetsOf(rounds: Round[]) {
  return TARGETS.map(({ label, limit, atMost, read }) => {
    const values = rounds.map((round) => read(round) ?? null);
    const measured = values.filter((value): value is number => value !== null).sort((a, b) => a - b);
    const met = measured.filter((value) => (atMost ? value <= limit : value >= limit)).length;
    return { label, limit, atMost, values, median: median(measured), met };
  }).filter((target) => target.median !== null);
}

/** Rounds every number of the JSON dump to 3 decimals: the precision the figures have. */
const rounded = (value: unknown): unknown =>
  typeof value === 'number'
    ? Math.round(value * 1000) / 1000
    : Array.isArray(value)
      ? value.map(rounded)
      : value && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rounded(v)]))
        : value;

async function main() {
  const config = settings();
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const tmpRoot = mkdtempSync(join(tmpdir(), 'gemini-coop-bench-'));
  const context = new BenchContext(tmpRoot);
  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    bun: Bun.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverageAtStart: loadavg()[0] ?? 0,
  };
  const results: Record<string, unknown> = {};
  const failures: string[] = [];

  console.log('Gemini Coop bench — capacity on loopback (127.0.0.1)');
  console.log(
    `  Rate limits are turned OFF on the server under test (${Object.entries(RATE_LIMITS_OFF)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}):`,
  );
  console.log('  this measures capacity, not the limits (with them on, one /ws socket may send 20 frames/s).');
  console.log(`  Machine: ${machine.cores} cores (${machine.cpu}), Bun ${machine.bun}. The bench client runs on the same cores as the`);
  console.log('  server and can itself be the bottleneck: "CPU cores server / client / other" shows who was busy during each');
  console.log('  window (1.00 = one core); "other" is the rest of the machine, which makes figures noisy when it is not ~0.');
  console.log('  Latencies are measured in the client process: send time embedded in the message → receive time.');
  if (machine.loadAverageAtStart > 0.5) {
    console.log(`  NOTE: the machine was already busy at start (load average ${num(machine.loadAverageAtStart, 2)}): expect noisy figures.`);
  }

  /** Runs a scenario; a failure is reported and the others still run. */
  const scenario = async (name: Scenario, title: string, run: () => Promise<void>) => {
    if (!config.only.includes(name)) return;
    console.log(`\n${title}`);
    const t = performance.now();
    try {
      await run();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push(`${name}: ${message}`);
      results[name] = { error: message };
      console.log(`  FAILED: ${message}`);
    }
    console.log(`  (scenario took ${num((performance.now() - t) / 1000, 0)} s)`);
  };

  const fanout: FanoutConfig = config;
  const shape = `${config.rooms} rooms × ${config.members} members, ${config.inflight} in flight per room, ${config.seconds} s after ${config.warmupSeconds} s warm-up`;

  /** What each round of ws, gql and idle measured, for the targets table at the end. */
  const rounds: Round[] = Array.from({ length: config.rounds }, () => ({}));
  const ofRound = (index: number) => (config.rounds > 1 ? ` (round ${index + 1} of ${config.rounds})` : '');

  for (const [index, round] of rounds.entries()) {
    await scenario('ws', `1. /ws fan-out vs baselines — ${shape}${ofRound(index)}`, async () => {
      const project = await runFanout(context, fanout, { target: 'project', receivers: 'ws' });
      const row = await runFanout(context, fanout, { target: 'baseline', receivers: 'ws', commit: 'row' });
      const group = await runFanout(context, fanout, { target: 'baseline', receivers: 'ws', commit: 'group' });
      round.ws = { project, baseline: row, groupBaseline: group, ratios: { row: fanoutRatios(project, row), group: fanoutRatios(project, group) } };
      const { ratios } = round.ws;
      const rows = fanoutRows([project, row, group]);
      for (const [rowIndex, key] of [
        [0, 'deliveriesPerSecond'],
        [2, 'p50'],
        [3, 'p99'],
        [10, 'peakRss'],
      ] as const) {
        rows[rowIndex]!.push(times(ratios.row[key]), times(ratios.group[key]));
      }
      console.log(table(['', 'project', 'baseline row', 'baseline group', 'project/row', 'project/group'], rows));
      console.log('  baselines = bench/baseline-server.ts: bare Bun.serve, same frames, bun:sqlite WAL, server.publish; "row" commits');
      console.log('  each message, "group" every message read in one turn of the event loop in one transaction (as the project does).');
      console.log('  No auth, membership check, validation, ORM, pub/sub layer or GraphQL.');
    });

    await scenario('gql', `2. graphql-ws fan-out vs /ws — ${shape}; receivers are messageAdded subscribers, senders on /ws${ofRound(index)}`, async () => {
      const gql = await runFanout(context, fanout, { target: 'project', receivers: 'graphql-ws' });
      const ws = round.ws?.project ?? (await runFanout(context, fanout, { target: 'project', receivers: 'ws' }));
      const ratios = fanoutRatios(gql, ws);
      round.gql = { gql, ws, ratios };
      const rows = fanoutRows([gql, ws]);
      rows[0]!.push(times(ratios.deliveriesPerSecond));
      rows[2]!.push(times(ratios.p50));
      rows[3]!.push(times(ratios.p99));
      rows[10]!.push(times(ratios.peakRss));
      console.log(table(['', 'project graphql-ws', 'project /ws', 'graphql-ws//ws'], rows));
      console.log(`  graphql-ws selection: ${CHAT_CLIENT_SUBSCRIPTION}`);
      console.log('  Both kinds of receiver find the send time in the frame text without parsing it.');
    });
  }
  results.ws = rounds.flatMap((round) => round.ws ?? []);
  results.gql = rounds.flatMap((round) => round.gql ?? []);

  await scenario(
    'bot',
    `3. Bot fan-out — 1 room, ${config.listeners} /ws listeners, fake Gemini ${config.chunks} chunks × ${config.chunkDelayMs} ms`,
    async () => {
      const bot: BotResult = await runBot(context, { listeners: config.listeners, chunks: config.chunks, delayMs: config.chunkDelayMs });
      results.bot = bot;
      console.log(
        table(
          ['', 'value'],
          [
            ['listeners completed / with every chunk', `${bot.completedListeners} / ${bot.allChunksListeners} of ${bot.listeners}`],
            ['per-chunk spread mean ms (last − first listener)', ms(bot.spreadMs.mean)],
            ['per-chunk spread p50 ms', ms(bot.spreadMs.p50)],
            ['per-chunk spread p99 ms', ms(bot.spreadMs.p99)],
            ['per-chunk spread max ms', ms(bot.spreadMs.max)],
            ['first chunk after /bot go ms', ms(bot.firstChunkMs)],
            ['end-to-end ms (/bot go → last listener complete)', ms(bot.endToEndMs)],
            [`fake's pacing ms (${bot.chunks} × ${bot.delayMs})`, ms(bot.pacingMs)],
            ['added per chunk ms ((end-to-end − pacing) / chunks)', ms(bot.overheadPerChunkMs)],
            ['bot error', bot.botError ?? 'none'],
            ['error frames', bot.errorFrames],
            ['server peak RSS MB', mb(bot.peakRssMb)],
            ['CPU cores server / client / other', cores(bot)],
          ],
        ),
      );
      console.log(`  The spread includes the client handling ${config.listeners} frames per chunk on a shared core; listeners are`);
      console.log('  seeded straight into SQLite (registering them through argon2id would take minutes); their sockets still authenticate.');
      console.log('  The pacing is a floor: the fake sleeps at least the delay between chunks.');
    },
  );

  for (const [index, round] of rounds.entries()) {
    await scenario(
      'idle',
      `4. Idle sockets — ${config.idleSockets} /ws sockets (authenticated, one user each, on the project), fresh servers${ofRound(index)}`,
      async () => {
        const project: IdleResult = await runIdle(context, config.idleSockets, 'project');
        const baseline: IdleResult = await runIdle(context, config.idleSockets, 'baseline');
        const ratios = {
          perSocket: ratio(project.perSocketKb, baseline.perSocketKb),
          perSocketSettled: ratio(project.perSocketSettledKb, baseline.perSocketSettledKb),
          rssBefore: ratio(project.rssBeforeMb, baseline.rssBeforeMb),
        };
        round.idle = { project, baseline, ratios };
        console.log(
          table(
            ['', 'project', 'baseline', 'project/baseline'],
            [
              ['sockets requested / opened / still open', ...[project, baseline].map((idle) => `${idle.requested} / ${idle.opened} / ${idle.stillOpen}`), ''],
              ['time to open s (500 at a time)', num(project.openSeconds, 1), num(baseline.openSeconds, 1), ''],
              ['server RSS before MB', mb(project.rssBeforeMb), mb(baseline.rssBeforeMb), times(ratios.rssBefore)],
              ['server RSS 3 s after MB', mb(project.rssAfterMb), mb(baseline.rssAfterMb), ''],
              ['per socket KB, 3 s after', num(project.perSocketKb, 1), num(baseline.perSocketKb, 1), times(ratios.perSocket)],
              [`server RSS ${3 + SETTLE_SECONDS} s after MB`, mb(project.rssSettledMb), mb(baseline.rssSettledMb), ''],
              [
                `per socket KB, ${3 + SETTLE_SECONDS} s after`,
                num(project.perSocketSettledKb, 1),
                num(baseline.perSocketSettledKb, 1),
                times(ratios.perSocketSettled),
              ],
            ],
          ),
        );
        for (const idle of [project, baseline]) if (idle.note) console.log(`  NOTE: ${idle.note}`);
        console.log('  Read 3 s after the last socket opened, the RSS still holds garbage of the upgrades that the collector and the');
        console.log(`  allocator give back over the next seconds; ${3 + SETTLE_SECONDS} s after, it holds what idle sockets keep.`);
      },
    );
  }
  results.idle = rounds.flatMap((round) => round.idle ?? []);

  await scenario('http', `5. HTTP — closed loop, ${config.httpSeconds} s each`, async () => {
    const loads: HttpLoad[] = await runHttp(context, {
      seconds: config.httpSeconds,
      loginConcurrency: 8,
      graphqlConcurrency: 32,
      chats: 5,
      membersPerChat: 10,
    });
    results.http = loads;
    console.log(
      table(
        ['', 'concurrency', 'requests/s', 'p50 ms', 'p99 ms', 'failures', 'CPU server / client / other'],
        loads.map((l) => [l.name, l.concurrency, num(l.requestsPerSecond, 1), ms(l.latencyMs.p50), ms(l.latencyMs.p99), l.failures, cores(l)]),
      ),
    );
    console.log('  login: argon2id (19 MiB, t=2) verification dominates by design; the last row is that ceiling measured alone');
    console.log('  (its "CPU server" is the idle server, its "client" the hashing).');
    console.log(`  GraphQL: ${GRAPHQL_QUERY} as a member of 5 chats × 10 participants, with a Bearer token.`);
  });

  await scenario('scale', `6. Scale-out — ${shape}; one instance, then two on one PostgreSQL database and one Redis`, async () => {
    let scale: ScaleResult;
    try {
      scale = await runScale(context, fanout);
    } catch (error) {
      if (!(error instanceof BackendUnreachable) || config.onlyNamed) throw error;
      results.scale = { skipped: error.message };
      console.log(`  SKIPPED: ${error.message}`);
      return;
    }
    results.scale = scale;
    console.log(scaleReport(scale));
    const problems = scaleFailures(scale);
    if (problems) throw new Error(problems);
  });

  const { search } = config;
  await scenario(
    'search',
    `7. Message search — ${num(search.messages, 0)} messages in ${num(search.rooms, 0)} rooms, on SQLite and PostgreSQL; the searcher is in ${search.searcherRooms}`,
    async () => {
      if (search.searcherRooms > search.rooms) throw new Error('--search-member-rooms cannot exceed --search-rooms');
      const result = await runSearch(context, search, config.onlyNamed);
      results.search = result;
      console.log(searchReport(result, search));
    },
  );
  const reactionShape = `${config.rooms} rooms × ${config.members} members, ${config.inflight} in flight per room, ${config.reactionSeconds} s each after 1 s warm-up`;
  await scenario('reactions', `8. The cost of a reaction — ${reactionShape}; messages, then reactions, to the same /ws receivers`, async () => {
    const cost: ReactionCostResult = await runReactionCost(context, { ...fanout, seconds: config.reactionSeconds, warmupSeconds: 1 });
    results.reactions = cost;
    const { messages, reactions } = cost;
    console.log(
      table(
        ['', 'messages', 'reactions', 'reactions/messages'],
        [
          ['deliveries/s', num(messages.deliveriesPerSecond, 0), num(reactions.deliveriesPerSecond, 0), times(cost.deliveriesRatio)],
          [
            'events/s (acknowledged: messages, reaction changes)',
            num(messages.messagesPerSecond, 0),
            num(reactions.changesPerSecond, 0),
            times(cost.eventsRatio),
          ],
          ['latency p50 ms (message delivery; reaction echo)', ms(messages.latencyMs.p50), ms(reactions.echoLatencyMs.p50), ''],
          ['latency p99 ms', ms(messages.latencyMs.p99), ms(reactions.echoLatencyMs.p99), ''],
          [
            'delivered / expected (run)',
            `${num(messages.delivered, 0)} / ${num(messages.expectedDeliveries, 0)}`,
            `${num(reactions.delivered, 0)} / ${num(reactions.expectedDeliveries, 0)}`,
            '',
          ],
          ['error frames', messages.errorFrames, reactions.errorFrames, ''],
          ['unexpected socket closes', messages.unexpectedCloses, reactions.unexpectedCloses, ''],
          ['CPU cores server / client / other', cores(messages), cores(reactions), ''],
          ['setup s (users seeded into SQLite)', num(cost.setupSeconds, 1), '', ''],
        ],
      ),
    );
    console.log("  One server, the same rooms and sockets: the message fan-out first, then each room's sender toggling reactions on one");
    console.log('  message (each in-flight slot its own emoji, so every change is real and pushed to every member, the sender included).');
    console.log('  A reaction change costs two SQL statements (the message with its reactions in one read, and the insert or delete),');
    console.log("  and carries the message's reactions; a message costs one batched insert. The machine is shared: figures are noisy.");
    if (reactions.errorFrames > 0 || reactions.delivered !== reactions.expectedDeliveries) {
      throw new Error(`reactions: ${reactions.errorFrames} error frames, ${reactions.delivered} of ${reactions.expectedDeliveries} deliveries`);
    }
  });
  await scenario('presence', `9. Presence changes against the /ws fan-out — ${shape}, PRESENCE_GRACE_MS=0`, async () => {
    const presence: PresenceResult = await runPresence(context, fanout);
    results.presence = presence;
    const { quiet, churned } = presence;
    console.log(
      table(
        ['', 'fan-out alone', 'with presence churn', 'churn/alone'],
        [
          ['message deliveries/s', num(quiet.deliveriesPerSecond, 0), num(churned.deliveriesPerSecond, 0), times(presence.deliveriesRatio)],
          ['delivery latency p50 ms', ms(quiet.latencyMs.p50), ms(churned.latencyMs.p50), times(ratio(churned.latencyMs.p50, quiet.latencyMs.p50))],
          ['delivery latency p99 ms', ms(quiet.latencyMs.p99), ms(churned.latencyMs.p99), times(ratio(churned.latencyMs.p99, quiet.latencyMs.p99))],
          ['delivered / expected (run)', ...[quiet, churned].map((load) => `${num(load.delivered, 0)} / ${num(load.expectedDeliveries, 0)}`), ''],
          ['error frames / unexpected closes', ...[quiet, churned].map((load) => `${load.errorFrames} / ${load.unexpectedCloses}`), ''],
          ['presence changes/s (online + offline)', '', num(presence.changesPerSecond, 0), ''],
          [`presence pushes/s (changes × ${config.members} members)`, '', num(presence.presencePushesPerSecond, 0), ''],
          ['presence pushes / message deliveries', '', times(presence.pushesToDeliveries), ''],
          ['message deliveries/s given up per presence change/s', '', num(presence.deliveriesPerChange, 1), ''],
          ['CPU cores server / client / other (churned window)', '', cores(presence), ''],
        ],
      ),
    );
    console.log(`  One extra member per room opens and closes a /ws socket in a loop (${config.rooms} churners): with no grace each`);
    console.log('  cycle is an online and an offline change, each written (offline: last_seen_at), looked up (who shares a chat)');
    console.log('  and pushed to the room. A change costs its socket open (token check, memberships) too. Both loads run on');
    console.log('  one server, one after the other: repeat runs before trusting a difference ("other" shows how busy the machine was).');
  });

  await scenario(
    'files',
    '10. Files — uploads and downloads of 20 MiB against Bun doing the same unchecked, then 20 uploads at once of 5 MiB and of 20 MiB',
    async () => {
      const files: FilesResult = await runFiles(context);
      results.files = files;
      const { uploadMbPerSecond: up, downloadMbPerSecond: down, concurrent } = files;
      console.log(
        table(
          ['', 'project', 'Bun alone', 'project/Bun'],
          [
            ['upload MB/s (multipart, sniffed, streamed to disk)', num(up.project, 0), num(up.bun, 0), times(ratio(up.project, up.bun))],
            ['download MB/s (signed link)', num(down.project, 0), num(down.bun, 0), times(ratio(down.project, down.bun))],
          ],
        ),
      );
      console.log(
        table(
          ['uploads at once', 'sent MB', 'seconds', 'server RSS before MB', 'peak during MB', 'rise MB'],
          concurrent.map((run) => [
            `${run.clients} × ${run.fileMb} MiB`,
            num(run.sentMb, 0),
            num(run.seconds, 1),
            mb(run.rssBeforeMb),
            mb(run.peakRssMb),
            mb(run.peakRssMb - run.rssBeforeMb),
          ]),
        ),
      );
      console.log(`  The server reads ${files.maxConcurrentUploads} upload bodies at once (MAX_CONCURRENT_UPLOADS); the others wait their turn unread.`);
      const [small, large] = concurrent;
      if (small && large) {
        const growth = ratio(large.peakRssMb - large.rssBeforeMb, small.peakRssMb - small.rssBeforeMb);
        console.log(
          `  Files ${num(large.fileMb / small.fileMb, 0)} times larger raised the peak ${times(growth)} as much; an upload held whole would add its whole size (${num(large.sentMb, 0)} MB).`,
        );
      }
    },
  );

  const targets = targetsOf(rounds);
  if (targets.length > 0) {
    results.targets = targets;
    console.log(
      `\nTargets — each ratio as a round measured it${config.rounds > 1 ? `, ${config.rounds} rounds` : ''}; the machine is noisy: run --rounds=3 or more`,
    );
    console.log(
      table(
        ['', 'target', ...rounds.map((_, index) => `round ${index + 1}`), 'median', 'met'],
        targets.map((target) => [
          target.label,
          `${target.atMost === undefined ? '≥' : '≤'} ${target.limit}×`,
          ...target.values.map(times),
          times(target.median),
          `${target.met} of ${target.values.filter((value) => value !== null).length}`,
        ]),
      ),
    );
  }

  const durationSeconds = (performance.now() - started) / 1000;
  const resultsDir = join(import.meta.dir, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const outFile = join(resultsDir, 'latest.json');
  writeFileSync(
    outFile,
    JSON.stringify(
      rounded({
        startedAt,
        durationSeconds,
        machine,
        config,
        rateLimits: RATE_LIMITS_OFF,
        notes: { measures: 'capacity (rate limits off), loopback, client and server on the same cores' },
        results,
        failures,
      }),
      null,
      2,
    ) + '\n',
  );
  console.log(`\nTotal run time ${num(durationSeconds, 0)} s. JSON: ${outFile}`);
  if (config.keep || failures.length) console.log(`Databases and server logs kept in ${tmpRoot}`);
  else rmSync(tmpRoot, { recursive: true, force: true });
  if (failures.length) {
    console.log(`${failures.length} scenario(s) failed:\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  // Client sockets and keep-alive connections may hold the event loop: the report is complete.
  process.exit(0);
}

await main();
