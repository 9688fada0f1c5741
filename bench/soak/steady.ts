import { readFileSync } from 'node:fs';
import type { BenchUser } from '../lib/api';
import { setupRooms } from '../lib/api';
import { progress } from '../lib/context';
import type { CpuShares, ServerProcess } from '../lib/proc';
import { CpuWindow } from '../lib/proc';
import { until } from '../lib/sockets';
import { num, streamingTable } from '../lib/table';
import { clock, mb, ms } from './format';
import { ChurningSubscriber } from './graphql-subscribers';
import { restLoad } from './http-load';
import { RssRecorder } from './rss';
import type { Settings } from './settings';
import { SoakRun } from './soak-run';
import { askEvenly, ChurningMember, paceMessages, RoomSender } from './ws-load';

/** A rejoining member stays away at most this long, or shorter so a replay brings about REPLAY_BUDGET messages. */
const MAX_OFFLINE_MS = 2_000;
const REPLAY_BUDGET = 400;
/** The last echoes and bot answers get this long after the load stops. */
const DRAIN_MS = 30_000;

/** What the steady phase produced, gathered up to the server's exit. */
export interface SteadyResult {
  run: SoakRun;
  targetRate: number;
  steadySeconds: number;
  rss: RssRecorder;
  peakRssMb: number;
  cpu: CpuShares;
  /** The server exited on its own while the load ran. */
  serverDied: boolean;
  exit: string;
  serverLogLines: string[];
  /** Asks acknowledged whose answer did not complete within the drain. */
  unansweredAsks: number;
}

/**
 * Runs the mixed load against `server` at half of `peak` for the configured time, prints a row per
 * interval, lets the last echoes and answers arrive, closes every connection, and stops the server.
 */
export async function steady(server: ServerProcess, config: Settings, peak: number): Promise<SteadyResult> {
  const run = new SoakRun();
  const targetRate = peak / 2;
  let serverDied = false;
  void server.proc.exited.then((code) => {
    serverDied = run.running;
    run.stop(`the server exited (code ${code}, signal ${server.proc.signalCode ?? 'none'})`);
  });

  progress(`soak: registering ${config.rooms * (config.senders + config.churners)} users (argon2id, 8 at a time)`);
  const rooms = await setupRooms(server.url, config.rooms, config.senders + config.churners);
  const socketUrl = (user: BenchUser) => `${server.wsUrl}/ws?token=${user.token}`;
  const senders = rooms.flatMap((room) =>
    room.members.slice(0, config.senders).map((user, i) => new RoomSender(run, socketUrl(user), user, room.chatId, i === 0)),
  );
  const askers = senders.filter((sender) => sender.asker);
  const offlineMs = Math.min(MAX_OFFLINE_MS, (REPLAY_BUDGET / (targetRate / config.rooms)) * 1000);
  const churners = rooms.flatMap((room) => room.members.slice(config.senders).map((user) => new ChurningMember(run, socketUrl(user), room.chatId, offlineMs)));
  const subscribers = Array.from({ length: config.graphqlSubscribers }, (_, i) => {
    const room = rooms[i % rooms.length]!;
    return new ChurningSubscriber(run, `${server.wsUrl}/graphql`, room.members.at(-1)!, room.chatId);
  });

  const rss = new RssRecorder(server.pid);
  const cpu = new CpuWindow(server.pid);
  const inflight = () => senders.reduce((n, s) => n + s.inflight, 0);
  const progressTable = streamingTable(
    [
      'time',
      'RSS MB',
      'acked/s',
      'ack p50 ms',
      'ack p99 ms',
      'in flight',
      'deliveries/s',
      'rejoins',
      'bot answers',
      'bot 1st chunk p50 ms',
      'logins',
      'errors',
    ],
    [5, 7, 8, 8, 8, 6, 10, 5, 5, 6, 4, 5],
  );
  const printInterval = (elapsedSeconds: number) => {
    const interval = run.tally.takeInterval();
    const perSecond = (count: number) => num(count / interval.seconds, 0);
    console.log(
      progressTable.row([
        clock(elapsedSeconds),
        mb(rss.latest()),
        perSecond(interval.acked),
        ms(interval.ackLatencyMs.p50),
        ms(interval.ackLatencyMs.p99),
        inflight(),
        perSecond(interval.wsDeliveries + interval.graphqlDeliveries),
        interval.wsReconnects + interval.graphqlReconnects,
        interval.botAnswers,
        ms(interval.botFirstChunkMs.p50),
        interval.logins,
        run.tally.errorCount(),
      ]),
    );
  };

  const loops: Promise<void>[] = [];
  // Every loop ends within one of its steps once the run stops; the bound is for a stuck server.
  const loopsEnded = () => Promise.race([Promise.all(loops), Bun.sleep(30_000)]);
  let steadySeconds = 0;
  let unansweredAsks = 0;
  try {
    await Promise.all(senders.map((sender) => sender.connect()));
    console.log(
      `\nSoak: ${config.rooms} rooms; ${num(targetRate, 0)} messages/s (half the peak) from ${config.senders} senders a room; ${config.churners} members a room ` +
        `rejoining with "after" (offline ≤ ${num(offlineMs, 0)} ms); a /bot ask a room every ${config.botEverySeconds} s ` +
        `(${config.botChunks} chunks × ${config.botChunkDelayMs} ms); ${config.graphqlSubscribers} graphql-ws subscribers; a login every ` +
        `${config.loginEverySeconds} s, a history read every ${config.historyEverySeconds} s. For ${clock(config.seconds)} (m:ss), a row every ${config.reportEverySeconds} s.`,
    );
    console.log(progressTable.header);
    rss.start();
    cpu.start();
    const startedAt = performance.now();
    loops.push(
      paceMessages(run, senders, targetRate),
      askEvenly(run, askers, config.botEverySeconds),
      ...churners.map((member) => member.churn()),
      ...subscribers.map((subscriber) => subscriber.churn()),
      ...restLoad(run, server.url, rooms, { loginEverySeconds: config.loginEverySeconds, historyEverySeconds: config.historyEverySeconds }),
    );
    const endAt = startedAt + config.seconds * 1000;
    for (let reportAt = startedAt + config.reportEverySeconds * 1000; run.running && performance.now() < endAt;) {
      await run.pause(Math.min(reportAt, endAt) - performance.now());
      // The row due at the very end is the final one, printed below.
      if (performance.now() >= reportAt && performance.now() < endAt) {
        printInterval((performance.now() - startedAt) / 1000);
        reportAt += config.reportEverySeconds * 1000;
      }
    }
    run.stop('the time was up');
    steadySeconds = (performance.now() - startedAt) / 1000;
    rss.stop();
    cpu.stop();
    printInterval(steadySeconds);
    console.log(`  stopped: ${run.stopReason}`);
    await loopsEnded();

    // What was sent before the end still gets its echo and its answer, within bounds.
    if (!serverDied) {
      await until(
        () => inflight() === 0 && askers.every((s) => s.awaitingAnswers === 0),
        () => {},
        'the last echoes and answers',
        { everyMs: 50, timeoutMs: DRAIN_MS },
      ).catch((error: unknown) => progress(String(error)));
      unansweredAsks = askers.reduce((n, s) => n + s.awaitingAnswers, 0);
    }
    run.tally.unconfirmed += inflight();
  } finally {
    run.stop('the soak failed');
    rss.stop();
    await loopsEnded();
    await Promise.all(senders.map((sender) => sender.close()));
  }
  const code = await server.stop();
  return {
    run,
    targetRate,
    steadySeconds,
    rss,
    peakRssMb: server.peakRss() / 2 ** 20,
    cpu: cpu.result,
    serverDied,
    exit: `code ${code}, signal ${server.proc.signalCode ?? 'none'}`,
    serverLogLines: readFileSync(server.errorLogPath, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== ''),
    unansweredAsks,
  };
}
