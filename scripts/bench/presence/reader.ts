/**
 * Read load of the presence benchmark, one process (forked by cli.ts): GET /api/v2/presence/{user}
 * for random users of the churn set, open loop at `rate` per second over pipelined keep-alive
 * connections, for `durationMs`. Reports progress every second and, at the end, two latency
 * histograms (µs, HDR base64): from the scheduled send time (includes this process' own lag under
 * load) and from the actual send.
 */
import * as hdr from 'hdr-histogram-js';
import { latencyHistogram } from '../../load-test/stats.js';
import { PipelinedConnection } from './http-pipeline.js';

export interface ReaderConfig {
  port: number;
  token: string;
  users: string[];
  rate: number;
  durationMs: number;
  connections: number;
  /** Requests waiting at most per connection; beyond it the schedule slips (counted as `late`). */
  maxInFlight: number;
}

export type ReaderMessage =
  | { type: 'ready' }
  | { type: 'tick'; answered: number; errors: number }
  | {
      type: 'done';
      answered: number;
      errors: number;
      late: number;
      statuses: Record<string, number>;
      fromSchedule: string;
      fromSend: string;
    };

const send = (m: ReaderMessage) => {
  if (process.connected) process.send?.(m);
};
// The benchmark went away (it failed or was stopped): so does its load.
process.once('disconnect', () => process.exit(0));

async function run(config: ReaderConfig): Promise<void> {
  const fromSchedule = latencyHistogram();
  const fromSend = latencyHistogram();
  const statuses: Record<string, number> = {};
  let answered = 0;
  let errors = 0;
  let late = 0;
  const scheduled: number[][] = [];
  const conns = Array.from({ length: config.connections }, (_, i) => {
    scheduled[i] = [];
    const queue = scheduled[i] as number[];
    return new PipelinedConnection(
      config.port,
      (status, _body, sentAt) => {
        const t = performance.now();
        const planned = queue.shift() ?? sentAt;
        answered++;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status !== 200) errors++;
        fromSend.recordValue(Math.max(1, Math.round((t - sentAt) * 1000)));
        fromSchedule.recordValue(Math.max(1, Math.round((t - planned) * 1000)));
      },
      () => void errors++,
    );
  });
  await Promise.all(conns.map((c) => c.ready));
  // Every reader starts at the same moment, once all of them are connected.
  send({ type: 'ready' });
  await new Promise<void>((go) => process.once('message', () => go()));
  const paths = config.users.map(
    (u) =>
      `GET /api/v2/presence/${encodeURIComponent(u)} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${config.token}\r\n\r\n`,
  );
  const start = performance.now();
  const end = start + config.durationMs;
  let issued = 0;
  let next = 0;
  const tick = setInterval(() => send({ type: 'tick', answered, errors }), 1000);
  await new Promise<void>((resolve) => {
    const pump = () => {
      const now = performance.now();
      if (now >= end) return resolve();
      const due = Math.floor(((now - start) * config.rate) / 1000);
      while (issued < due) {
        const planned = start + (issued * 1000) / config.rate;
        const conn = conns[next] as PipelinedConnection;
        const queue = scheduled[next] as number[];
        next = (next + 1) % conns.length;
        if (!conn.open || conn.inFlight >= config.maxInFlight) {
          // Skipped, not queued: an open loop that cannot keep up says so instead of hiding it.
          late++;
          issued++;
          continue;
        }
        queue.push(planned);
        conn.send(paths[Math.floor(Math.random() * paths.length)] as string, performance.now());
        issued++;
      }
      // A timer, not setImmediate: a spinning generator would take a core from the gateway it measures.
      setTimeout(pump, 1);
    };
    pump();
  });
  // Answers still under way get a moment, then the connections go.
  const drainUntil = performance.now() + 2000;
  while (conns.some((c) => c.inFlight > 0) && performance.now() < drainUntil) {
    await new Promise((r) => setTimeout(r, 20));
  }
  clearInterval(tick);
  for (const c of conns) c.close();
  send({
    type: 'done',
    answered,
    errors,
    late,
    statuses,
    fromSchedule: hdr.encodeIntoCompressedBase64(fromSchedule),
    fromSend: hdr.encodeIntoCompressedBase64(fromSend),
  });
}

process.once('message', (config: ReaderConfig) => {
  run(config).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`reader failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
});
