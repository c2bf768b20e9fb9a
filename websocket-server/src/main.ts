import { SERVICE, configFragments } from './config.js';
import { createGateway } from './gateway.js';
import { runGatewayProcess } from './gateway-process.js';
import { loadStaticFiles } from './static-files.js';
import { loadUws } from './uws.js';

await runGatewayProcess(SERVICE, configFragments, async (deps) => {
  const { uws, native } = loadUws();
  if (!native) {
    deps.logger.fatal('uWebSockets.js native addon did not load (pure-JS fallback); refusing to run');
    process.exit(1);
  }
  const staticDir = deps.settings.staticDir;
  return createGateway({
    ...deps,
    uws,
    ...(staticDir ? { staticFiles: await loadStaticFiles(staticDir) } : {}),
  });
});
