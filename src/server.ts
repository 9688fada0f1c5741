import { createApp } from './app';
import { ConfigError, loadConfig, redact } from './config';
import { MAX_BODY_BYTES } from './http-edge';
import { createLogger } from './log';

/** After the grace period, storing the stopped answers and closing get this long; then the process exits regardless. */
const EXIT_MARGIN_MS = 500;

/** `npm start`: reads the configuration, opens the database (migrating it), and serves. */
async function main() {
  const config = loadConfig();
  const log = createLogger({ level: config.logLevel });
  const app = await createApp(config, { log });
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    maxRequestBodySize: MAX_BODY_BYTES,
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

main().catch((error: unknown) => {
  // LOG_LEVEL itself may be what is wrong: a failed start is always reported.
  const log = createLogger({ level: 'info' });
  if (error instanceof ConfigError) {
    log.fatal(`Configuration error: ${redact(error.message)}`);
    process.exit(78);
  }
  // What failed may quote a connection URL: the error serializer hides its passwords.
  log.fatal({ err: error }, 'Start-up failed');
  process.exit(1);
});
