/**
 * `npm run soak`: the server under a steady mixed load for a fixed time (10 minutes by default), to
 * see what a short bench cannot: memory that keeps growing, errors that come with time, and any
 * acknowledged message the database does not have. See `bun bench/soak.ts --help`.
 *
 * First a short burst (the bench's `/ws` fan-out scenario, on a server of its own) finds the peak
 * rate of acknowledged `/ws` messages; then a fresh server takes half that rate, steadily, with
 * members rejoining by cursor, `/bot` asks against the local Gemini stand-in, logins and history
 * reads over REST, and graphql-ws subscribers coming and going. Everything runs on 127.0.0.1 and
 * every loop is bounded; a watchdog ends the process if anything overruns.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchContext, progress } from './lib/context';
import { spawnFakeGemini } from './lib/proc';
import { num } from './lib/table';
import { runFanout } from './scenarios/fanout';
import { ms } from './soak/format';
import { report } from './soak/report';
import type { Settings } from './soak/settings';
import { settings } from './soak/settings';
import type { SteadyResult } from './soak/steady';
import { steady } from './soak/steady';

/**
 * The limits stay on, as in production, so their code runs; they are set far above what the soak
 * sends, so nothing is refused (a sender socket sends a few hundred frames a second at most).
 */
const HIGH_LIMITS = { WS_RATE_LIMIT: '100000', BOT_RATE_LIMIT: '100000', LOGIN_RATE_LIMIT: '100000' } as const;
const FAKE_GEMINI_KEY = 'soak-fake-gemini-key';
/** Setup (burst, registrations) and the final checks get this long on top of the steady phase before the watchdog fires. */
const WATCHDOG_SLACK_SECONDS = 600;

/** The peak: acknowledged `/ws` messages a second, from the bench's fan-out scenario with the soak's room shape. */
async function measurePeak(context: BenchContext, config: Settings): Promise<number> {
  const members = config.senders + config.churners;
  console.log(
    `\nPeak: bench's /ws fan-out scenario, ${config.rooms} rooms × ${members} members, 4 in flight per room, ${config.peakSeconds} s after 1 s warm-up`,
  );
  const burst = await runFanout(
    context,
    { rooms: config.rooms, members, inflight: 4, seconds: config.peakSeconds, warmupSeconds: 1 },
    { target: 'project', receivers: 'ws' },
  );
  const { serverCores, clientCores, otherCores } = burst.cpu;
  console.log(
    `  ${num(burst.messagesPerSecond, 0)} messages/s acknowledged, p99 ${ms(burst.latencyMs.p99)} ms; ${burst.errorFrames} error frames; ` +
      `CPU server / client / other ${num(serverCores, 2)} / ${num(clientCores, 2)} / ${num(otherCores, 2)}`,
  );
  return burst.messagesPerSecond;
}

async function main() {
  const config = settings();
  const tmpRoot = mkdtempSync(join(tmpdir(), 'gemini-coop-soak-'));
  const watchdog = setTimeout(
    () => {
      console.log(`\nWATCHDOG: the soak overran ${config.seconds + WATCHDOG_SLACK_SECONDS} s; stopping. Logs in ${tmpRoot}`);
      process.exit(2);
    },
    (config.seconds + WATCHDOG_SLACK_SECONDS) * 1000,
  );
  const context = new BenchContext(tmpRoot);
  const startedAt = new Date().toISOString();

  console.log('Gemini Coop soak — a steady mixed load on loopback (127.0.0.1)');
  console.log(`  Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Bun ${Bun.version}; load average at start ${num(loadavg()[0], 2)}.`);
  console.log('  Client and server share the cores: "CPU cores server / client / other" says who was busy.');

  const peak = { rate: config.peak ?? (await measurePeak(context, config)), measured: config.peak === null };
  const fake = await spawnFakeGemini({
    logDir: context.logDir('fake-gemini'),
    chunks: config.botChunks,
    delayMs: config.botChunkDelayMs,
    apiKey: FAKE_GEMINI_KEY,
  });
  let result: SteadyResult;
  let dbPath: string;
  try {
    const project = await context.startProject('soak', { GEMINI_API_KEY: FAKE_GEMINI_KEY, GEMINI_BASE_URL: fake.baseUrl, ...HIGH_LIMITS });
    dbPath = project.dbPath;
    try {
      result = await steady(project.server, config, peak.rate);
    } finally {
      await project.server.stop();
    }
  } finally {
    await fake.stop();
  }

  progress('soak: checking every acknowledged message and every connection against the database');
  const stored = result.run.ledger.verify(dbPath);
  const deliveries = result.run.audit.verify(dbPath);
  const failures = report(peak, result, stored, deliveries);
  clearTimeout(watchdog);

  const resultsDir = join(import.meta.dir, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const outFile = join(resultsDir, 'soak-latest.json');
  const { tally } = result.run;
  writeFileSync(
    outFile,
    JSON.stringify(
      {
        startedAt,
        config,
        peak,
        targetRate: result.targetRate,
        steadySeconds: result.steadySeconds,
        rss: { samples: result.rss.samples, peakMb: result.peakRssMb, slopeMbPerHourSecondHalf: result.rss.slopeMbPerHour(result.steadySeconds / 2) },
        totals: { ...tally.totals, notSent: tally.notSent, unconfirmed: tally.unconfirmed, unansweredAsks: result.unansweredAsks },
        ackLatencyMs: tally.ackLatencyMs.summary(),
        botFirstChunkMs: tally.botFirstChunkMs.summary(),
        errors: Object.fromEntries(tally.errors),
        stored: { ...stored, missing: stored.missing.slice(0, 1000), mismatched: stored.mismatched.slice(0, 1000) },
        deliveries,
        cpu: result.cpu,
        server: { exit: result.exit, died: result.serverDied, stderrLines: result.serverLogLines.slice(0, 50) },
        failures,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nJSON: ${outFile}`);
  if (config.keep || failures.length) console.log(`Databases and server logs kept in ${tmpRoot}`);
  else rmSync(tmpRoot, { recursive: true, force: true });
  if (failures.length) {
    console.log(`FAILED: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log('PASSED: every acknowledged message is stored and the server lived through the load.');
  // Keep-alive connections may hold the event loop: the report is complete.
  process.exit(0);
}

await main();
