import { join } from 'node:path';
import { createApp } from './app';
import { loadConfig } from './config';
import { MAX_BODY_BYTES, MULTIPART_OVERHEAD_BYTES } from './http-edge';
import { exitOnStartFailure } from './start-failure';
import { createLogger } from './log';

/** After the grace period, storing the stopped answers and closing get this long; then the process exits regardless. */
const EXIT_MARGIN_MS = 500;

/**
 * Applies pending migrations in a child process (src/migrate.ts): the schema engine is some 40 MB
 * of WebAssembly that the server would otherwise keep for its whole life after one use.
 */
async function migrateInChildProcess(): Promise<void> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'migrate.ts')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await child.exited;
  // The child has said why; its exit code (78 for a configuration error) is this process's.
  if (code !== 0) process.exit(code);
}

/** `npm start`: reads the configuration, migrates the database, and serves. */
async function main() {
  const config = loadConfig();
  await migrateInChildProcess();
  const log = createLogger({ level: config.logLevel });
  const app = await createApp(config, { log, migrate: false });
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    // Uploads may be this large; every other route stops reading at MAX_BODY_BYTES (src/http-edge.ts).
    maxRequestBodySize: Math.max(MAX_BODY_BYTES, config.uploads.maxBytes + MULTIPART_OVERHEAD_BYTES),
    fetch: (request, server) => app.fetch(request, server),
    websocket: app.websocket,
  });
  log.info(`Gemini Coop listening on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${server.port}`);
  // SIGTERM drains: accept nothing new, give running answers SHUTDOWN_GRACE_MS to finish (then store
  // them stopped or failed), close sockets with 1001 so clients reconnect elsewhere, then release the
  // database. A hung database or Redis cannot keep the process past the deadline.
  const shutdown = async () => {
    log.info('Shutting down: draining');
    const deadlineMs = config.shutdownGraceMs + EXIT_MARGIN_MS;
    setTimeout(() => {
      log.error(`Shutdown did not finish within ${deadlineMs} ms: exiting anyway`);
      process.exit(1);
    }, deadlineMs).unref();
    void server.stop();
    await app.drain(config.shutdownGraceMs);
    await server.stop(true);
    await app.close();
    process.exit(0);
  };
  const onSignal = () =>
    void shutdown().catch((error: unknown) => {
      log.error({ err: error }, 'Shutdown failed');
      process.exit(1);
    });
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

main().catch(exitOnStartFailure);
