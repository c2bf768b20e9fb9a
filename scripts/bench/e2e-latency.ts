/**
 * End-to-end latency of one message, one at a time: client send → `ack` and → final `response`,
 * through whatever URL is given (default: the local stack's nginx). Prints progress, then the
 * median and tail of N runs. Bounded: N messages, each with a timeout.
 *
 *   npm run stack -- up   (with MOCK_OPENAI_TTFT_MS=0 MOCK_OPENAI_TOKEN_MS=0 to isolate the pipeline)
 *   npm run bench:latency -- --url http://127.0.0.1:8080 --count 100
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    count: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    timeout: { type: 'string', default: '10000' },
  },
});
const base = values.url.replace(/\/$/, '');
const count = Number(values.count);
const warmup = Number(values.warmup);
const timeoutMs = Number(values.timeout);

// A fresh user every PER_USER messages keeps the probe under the default per-user rate limit
// (20 per 10 s) on any deployment; connecting is not part of what is measured.
const PER_USER = 15;
let ws: WebSocket | undefined;
let waiting: ((frame: { type: string; request_id?: string }) => void) | undefined;

async function connect(n: number): Promise<WebSocket> {
  const userid = `latency-${Date.now().toString(36)}-${n}`;
  const tokenRes = await fetch(`${base}/token?userid=${userid}`, { method: 'POST' });
  if (!tokenRes.ok) throw new Error(`POST /token: HTTP ${tokenRes.status}`);
  const { token } = (await tokenRes.json()) as { token: string };
  const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/ws?token=${token}&userid=${userid}&ack=1`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.on('message', (data) =>
    waiting?.(JSON.parse(String(data)) as { type: string; request_id?: string }),
  );
  return socket;
}

async function once(i: number): Promise<{ ack: number; final: number }> {
  const id = `lat-${i}`;
  const started = performance.now();
  let ack = NaN;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`message ${i}: no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    waiting = (frame) => {
      if (frame.request_id !== id) return;
      if (frame.type === 'ack') ack = performance.now() - started;
      else if (frame.type === 'response' || frame.type === 'error') {
        clearTimeout(timer);
        if (frame.type === 'error') reject(new Error(`message ${i}: error frame ${JSON.stringify(frame)}`));
        else resolve({ ack, final: performance.now() - started });
      }
    };
    ws?.send(JSON.stringify({ type: 'message', content: `latency probe ${i}`, id }));
  });
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const acks: number[] = [];
const finals: number[] = [];
for (let i = 0; i < warmup + count; i++) {
  if (i % PER_USER === 0) {
    ws?.close();
    ws = await connect(i / PER_USER);
  }
  const r = await once(i);
  if (i >= warmup) {
    acks.push(r.ack);
    finals.push(r.final);
  }
  if ((i + 1) % 10 === 0) process.stderr.write(`\r[latency] ${i + 1}/${warmup + count} messages`);
}
process.stderr.write('\n');
ws?.close();

for (const [name, xs] of [
  ['ack', acks],
  ['final response', finals],
] as const) {
  const s = [...xs].sort((a, b) => a - b);
  const f = (q: number) => quantile(s, q).toFixed(2);
  console.log(
    `${name.padEnd(15)} n=${s.length}  p50 ${f(0.5)} ms  p90 ${f(0.9)} ms  p99 ${f(0.99)} ms  max ${(s.at(-1) ?? NaN).toFixed(2)} ms`,
  );
}
