/**
 * One gateway of a benchmark (presence, compression), in a process of its own: real uWS, real Redis
 * (store and pub/sub), an in-process bus (neither bench touches Kafka, and a broker would only take
 * CPU from the 2-core machine). Prints `{"port":…}` once it listens; closes on SIGTERM.
 * Env: REDIS_URL, PORT (0: a free one), SERVER_ID, JWT_SECRET, WS_COMPRESSION, and PRESENCE_* /
 * gateway limits.
 */
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';
import { createRedisPubSub, createRedisStore } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { startGateway } from '../../websocket-server/src/testing/gateway-harness.js';

const env = process.env;
const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const serverId = env.SERVER_ID ?? 'bench-gw';
const store = createRedisStore({ url: redisUrl, logger: silentLogger, connectionName: serverId });
const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger, connectionName: serverId });
const passed = Object.fromEntries(
  Object.entries(env).filter(
    (e): e is [string, string] =>
      e[1] !== undefined &&
      /^(PRESENCE_|RATE_LIMIT_|MAX_CONNECTIONS|WS_COMPRESSION$|TOKEN_TTL_SECONDS$|JWT_SECRET$)/.test(e[0]),
  ),
);
const harness = await startGateway({ store, pubsub, serverId, port: Number(env.PORT ?? 0), env: passed });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(harness.base).port) })}\n`);
// SIGUSR2: how late the event loop ran since the previous SIGUSR2 (ms), then a fresh count. The
// bench asks at the start and the end of a run, to tell the gateway's own stalls from the machine's.
// The GC pauses over the same span tell how much of that delay is the collector's.
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
let gc = { count: 0, totalMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++;
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });
process.on('SIGUSR2', () => {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const round = (x: number) => Math.round(x * 100) / 100;
  const eventLoopDelayMs = {
    p50: ms(delay.percentile(50)),
    p99: ms(delay.percentile(99)),
    max: ms(delay.max),
    gcPauses: gc.count,
    gcTotalMs: round(gc.totalMs),
    gcMaxMs: round(gc.maxMs),
  };
  process.stdout.write(`${JSON.stringify({ eventLoopDelayMs })}\n`);
  delay.reset();
  gc = { count: 0, totalMs: 0, maxMs: 0 };
});
process.once('SIGTERM', () => {
  void harness
    .close()
    .then(() => Promise.all([store.close(), pubsub.close()]))
    .finally(() => process.exit(0));
});
