/**
 * A gateway on in-process transports in a process of its own, for tests that must start it with
 * another environment (LD_PRELOAD): prints `{"port":…}` once it listens, closes on SIGTERM.
 */
import { startGateway } from './gateway-harness.js';

const harness = await startGateway();
process.stdout.write(`${JSON.stringify({ port: Number(new URL(harness.base).port) })}\n`);
process.once('SIGTERM', () => {
  void harness.close().finally(() => process.exit(0));
});
