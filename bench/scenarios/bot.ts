import { createRoom, registerAndLogin, seedParticipants, seedUsers } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';
import type { CpuShares } from '../lib/proc';
import { CpuWindow, spawnFakeGemini } from '../lib/proc';
import { closeAll, openMany, openSocket, until } from '../lib/sockets';
import type { Summary } from '../lib/stats';
import { summarize } from '../lib/stats';

export interface BotConfig {
  listeners: number;
  chunks: number;
  /** The fake Gemini's pause between chunks. */
  delayMs: number;
}

export interface BotResult extends BotConfig {
  /** Listeners that received the completion, and those that also received every chunk. */
  completedListeners: number;
  allChunksListeners: number;
  /** Per chunk: last listener's receive time − first listener's, in ms. */
  spreadMs: Summary;
  /** `/bot go` sent → first chunk at the first listener. */
  firstChunkMs: number | null;
  /** `/bot go` sent → the completion frame at the last listener. */
  endToEndMs: number | null;
  /** The fake's own pacing: chunks × delay (a floor: timers sleep at least the delay). */
  pacingMs: number;
  /** (end-to-end − pacing) / chunks: what the whole path adds per chunk. */
  overheadPerChunkMs: number | null;
  botError: string | null;
  errorFrames: number;
  peakRssMb: number;
  /** CPU used during the window, in cores: server, this client, everything else. */
  cpu: CpuShares;
}

const FAKE_KEY = 'bench-fake-gemini-key';

/**
 * One room of N `/ws` listeners and a fake Gemini streaming `chunks` deltas `delayMs` apart. Measures
 * how far apart the listeners receive each chunk (the room fan-out's spread) and the answer's
 * end-to-end time against the fake's pacing.
 */
export async function runBot(context: BenchContext, config: BotConfig): Promise<BotResult> {
  const fake = await spawnFakeGemini({ logDir: context.logDir('fake-gemini'), chunks: config.chunks, delayMs: config.delayMs, apiKey: FAKE_KEY });
  const { server, dbPath } = await context
    .startProject('bot', { GEMINI_API_KEY: FAKE_KEY, GEMINI_BASE_URL: fake.baseUrl, BOT_MAX_CONCURRENT_CALLS: '8' })
    .catch(async (error: unknown) => {
      await fake.stop();
      throw error;
    });
  const sockets: WebSocket[] = [];
  try {
    const asker = await registerAndLogin(server.url, 'asker');
    const chatId = await createRoom(server.url, asker, 'bot room');
    progress(`bot: seeding ${config.listeners} listeners and opening their sockets`);
    const listeners = await seedUsers(dbPath, asker, 'listener', config.listeners, context.secretKey);
    seedParticipants(
      dbPath,
      chatId,
      listeners.map((l) => l.id),
    );

    const first = new Float64Array(config.chunks); // 0 = not yet received (performance.now() is > 0)
    const last = new Float64Array(config.chunks);
    const counts = new Int32Array(config.chunks);
    const seen = new Uint8Array(config.listeners);
    const received = new Int32Array(config.listeners); // chunks per listener; also its next chunk's index
    let completed = 0;
    let lastComplete = 0;
    let errorFrames = 0;
    let botError: string | null = null;

    const opened = await openMany(config.listeners, (i) => `${server.wsUrl}/ws?token=${listeners[i]!.token}`, 250);
    sockets.push(...opened);
    opened.forEach((ws, listener) => {
      ws.onmessage = (event) => {
        const data = event.data as string;
        if (!data.startsWith('{"type":"bot_stream"')) {
          if (data.startsWith('{"type":"message"')) seen[listener] = 1;
          else if (data.startsWith('{"type":"error"')) errorFrames++;
          return;
        }
        const now = performance.now();
        if (data.includes('"is_complete":true')) {
          completed++;
          if (now > lastComplete) lastComplete = now;
          if (botError === null && data.includes('"error":')) botError = (JSON.parse(data) as { error: string }).error;
          return;
        }
        // Frames of one socket arrive in order, so the count so far is this chunk's index.
        const index = received[listener]!++;
        if (index < config.chunks) {
          if (first[index] === 0) first[index] = now;
          last[index] = now;
          counts[index]!++;
        }
      };
      ws.send(`{"type":"join","chat_id":${chatId}}`);
    });
    const askerSocket = await openSocket(`${server.wsUrl}/ws?token=${asker.token}`);
    sockets.push(askerSocket);
    askerSocket.onmessage = (event) => {
      if ((event.data as string).startsWith('{"type":"error"')) errorFrames++;
    };
    askerSocket.send(`{"type":"join","chat_id":${chatId}}`);
    await until(
      () => seen.every((s) => s === 1),
      () => askerSocket.send(`{"type":"message","chat_id":${chatId},"content":"probe"}`),
      `all ${config.listeners} listeners to receive a probe`,
    );

    progress(`bot: /bot go → ${config.chunks} chunks × ${config.delayMs} ms to ${config.listeners} listeners`);
    const cpu = new CpuWindow(server.pid);
    cpu.start();
    const askedAt = performance.now();
    askerSocket.send(`{"type":"message","chat_id":${chatId},"content":"/bot go"}`);
    await until(
      () => completed === config.listeners,
      () => {},
      'every listener to receive the completed answer',
      {
        everyMs: 20,
        timeoutMs: 60_000 + config.chunks * config.delayMs * 2,
      },
    ).catch((error: unknown) => progress(String(error)));
    cpu.stop();

    const spreads: number[] = [];
    for (let i = 0; i < config.chunks; i++) if (counts[i] === config.listeners) spreads.push(last[i]! - first[i]!);
    const pacingMs = config.chunks * config.delayMs;
    const endToEndMs = completed === config.listeners ? lastComplete - askedAt : null;
    const result: BotResult = {
      ...config,
      completedListeners: completed,
      allChunksListeners: received.filter((n) => n === config.chunks).length,
      spreadMs: summarize(spreads.sort((a, b) => a - b)),
      firstChunkMs: first[0] ? first[0] - askedAt : null,
      endToEndMs,
      pacingMs,
      overheadPerChunkMs: endToEndMs === null ? null : (endToEndMs - pacingMs) / config.chunks,
      botError,
      errorFrames,
      peakRssMb: 0,
      cpu: cpu.result,
    };
    await closeAll(sockets);
    await server.stop();
    result.peakRssMb = server.peakRss() / 2 ** 20;
    return result;
  } finally {
    for (const ws of sockets) ws.close();
    await server.stop();
    await fake.stop();
  }
}
