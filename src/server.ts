import { createApp } from './app';
import { ConfigError, loadConfig } from './config';

/** `npm start`: reads the configuration, opens the database (migrating it), and serves. */
async function main() {
  const config = loadConfig();
  const app = await createApp(config);
  const server = Bun.serve({
    port: config.port,
    hostname: config.host,
    maxRequestBodySize: 1_048_576,
    fetch: (request, server) => app.fetch(request, server),
    websocket: app.websocket,
  });
  console.log(`Gemini Coop listening on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${server.port}`);
  const shutdown = async () => {
    await server.stop();
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`Configuration error: ${error.message}`);
    process.exit(78);
  }
  throw error;
});
