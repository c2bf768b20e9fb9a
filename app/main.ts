/**
 * `npm start`: the whole pipeline in one process on http://localhost:8080/ — in-process transports
 * and the bundled mock model unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL / OPENAI_API_KEY are set.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { bootService } from '@relay/common';
import { SERVICE, chooseTransports, configFragments } from './config.js';
import { createEmbeddedApp } from './embedded-app.js';
import { loadSitesOrExit, logSites } from '@relay/websocket-server';

// Tokens need a signing secret; a single local process can make its own (tokens die with it).
const env = { ...process.env };
const ephemeralSecret = !env.JWT_SECRET;
if (ephemeralSecret) env.JWT_SECRET = randomBytes(32).toString('hex');
// A developer's machine: the original `POST /token?userid=` (dev tokens) and the demo site for the
// widget, on loopback only unless told otherwise (a non-loopback HOST with dev tokens is refused
// unless DEV_TOKENS_ALLOW_PUBLIC=true as well).
env.DEV_TOKENS ??= 'true';
env.DEMO_SITE ??= 'true';
env.HOST ??= '127.0.0.1';

const { config, logger, metrics, shutdown, tracer } = await bootService(
  {
    env,
    exit: (code) => process.exit(code),
    stderr: process.stderr,
    on: (signal, listener) => process.on(signal, listener),
  },
  SERVICE,
  configFragments,
);

const sites = loadSitesOrExit(config.gateway, config.http.host, (line) => {
  process.stderr.write(`${line}\n`);
  process.exit(1);
});
logSites(logger, sites);

const transports = chooseTransports(env);
const app = await createEmbeddedApp({
  config,
  transports,
  logger,
  metrics,
  tracer,
  sites,
  staticDir: fileURLToPath(new URL('../websocket-server/public', import.meta.url)),
  onFatal: (err) => {
    logger.fatal({ err }, 'a consumer failed for good');
    void shutdown.shutdown('consumer failed', 1);
  },
});
shutdown.add('app', () => app.close());
try {
  const started = await app.start();
  if (ephemeralSecret) logger.info('JWT_SECRET not set: tokens are signed with a secret made for this run');
  logger.info(
    { port: started.port, bus: started.bus, store: started.store, model: started.model },
    `ai-relay (embedded) on http://localhost:${started.port}/ — bus: ${started.bus === 'kafka' ? 'Kafka' : 'in-process'}, store: ${started.store === 'redis' ? 'Redis' : 'in-process'}, model: ${started.model}`,
  );
} catch (err) {
  logger.fatal({ err }, 'start failed');
  await shutdown.shutdown('start failed', 1);
}
