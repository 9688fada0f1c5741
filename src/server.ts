import { createApp } from './app';
import { ConfigError, loadConfig, redact } from './config';
import { MAX_BODY_BYTES } from './http-edge';

const SHUTDOWN_GRACE_MS = 10_000;

/** `npm start`: reads the configuration, opens the database (migrating it), and serves. */
async function main() {
  const config = loadConfig();
  const app = await createApp(config);
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    maxRequestBodySize: MAX_BODY_BYTES,
    fetch: (request, server) => app.fetch(request, server),
    websocket: app.websocket,
  });
  console.log(`Gemini Coop listening on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${server.port}`);
  // SIGTERM drains: accept nothing new, let running answers finish (or store them as failed),
  // close sockets with 1001 so clients reconnect elsewhere, then release the database.
  const shutdown = async () => {
    console.log('Shutting down: draining');
    void server.stop();
    await app.drain(SHUTDOWN_GRACE_MS);
    await server.stop(true);
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`Configuration error: ${redact(error.message)}`);
    process.exit(78);
  }
  // What failed may quote a connection URL: it is printed redacted, never as thrown.
  console.error(`Start-up failed: ${redact(error instanceof Error ? (error.stack ?? error.message) : String(error))}`);
  process.exit(1);
});
