/**
 * npm run bench:compression -- [--rounds 3] [--users 200] [--answers 50] [--seconds 15]
 *   [--settings off,shared,dedicated] [--json scripts/bench/results/compression-latest.json]
 *
 * What `WS_COMPRESSION` costs and saves on the gateway's delivery path (BENCHMARKS.md
 * "Compression"). One gateway process (real uWS, real Redis pub/sub) per setting; `--users`
 * streaming sockets (`ws`, which offers permessage-deflate as browsers do); this process publishes
 * answers on the users' channels as the relay does: `--answers` a second, each 60 word deltas and
 * a final, spread over the users. Per setting and round: the gateway's CPU per frame, bytes on the
 * wire per frame and per answer (what the clients' TCP sockets read), the clients' own CPU per
 * frame (inflating is theirs to pay), and the gateway's RSS. Settings are interleaved, a new order
 * each round; medians of the rounds. Redis is started when not running and stopped again.
 * Bounded: rounds × settings × (seconds + a few), then it stops what it started.
 */
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { REDIS_KEYS, type ServerFrame } from '@relay/common';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { payload } from '../../websocket-server/src/testing/frames.js';
import { createTokenService } from '../../websocket-server/src/token-service.js';
import { serviceEndpoints, startService, stopService } from '../infra/harness.js';
import { repoRoot } from '../infra/paths.js';
import { startGatewayProcess, stopGatewayProcess } from './gateway-process.js';
import { cpuSecondsByGroup, ownCpuSeconds, rssBytes } from './proc-stats.js';
import { intOption, writeResults } from './cli-options.js';
import { median } from './report.js';

const SETTINGS = ['off', 'shared', 'dedicated'] as const;
type Setting = (typeof SETTINGS)[number];

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    users: { type: 'string', default: '200' },
    answers: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '15' },
    settings: { type: 'string', default: SETTINGS.join(',') },
    json: { type: 'string', default: 'scripts/bench/results/compression-latest.json' },
  },
});

const rounds = intOption('rounds', values.rounds, 1, 10);
const userCount = intOption('users', values.users, 1, 5000);
const answersPerSecond = intOption('answers', values.answers, 1, 1000);
const seconds = intOption('seconds', values.seconds, 3, 120);
const settings = (values.settings ?? '').split(',').map((s) => s.trim()) as Setting[];
for (const s of settings) {
  if (!SETTINGS.includes(s)) {
    process.stderr.write(`--settings: unknown ${s} (one of ${SETTINGS.join(', ')})\n`);
    process.exit(2);
  }
}
const jsonPath = resolve(repoRoot, values.json ?? 'scripts/bench/results/compression-latest.json');

const DELTAS_PER_ANSWER = 60;
const FRAMES_PER_ANSWER = DELTAS_PER_ANSWER + 1;
/** Words like the mock model's, so the deltas compress as a real answer's would (not better). */
const WORDS = [
  'the',
  'a',
  'relay',
  'streams',
  'softly',
  'clouds',
  'silver',
  'across',
  'drift',
  'amber',
  'calm',
  'bright',
  'answer',
  'token',
  'every',
  'frame',
  'of',
  'river',
  'light',
  'stone',
  'over',
  'and',
  'quiet',
  'morning',
  'signal',
  'through',
  'window',
  'green',
  'field',
  'slowly',
];

const log = (line: string) => process.stderr.write(`[compression-bench] ${line}\n`);
const secret = 'compression-bench-secret-'.repeat(2);
const tokens = createTokenService({ secret, ttlSeconds: 3600 });

interface RoundResult {
  setting: Setting;
  round: number;
  negotiated: boolean;
  framesPublished: number;
  framesReceived: number;
  framesPerSecond: number;
  gatewayUsPerFrame: number;
  clientUsPerFrame: number;
  wireBytesPerFrame: number;
  wireBytesPerAnswer: number;
  payloadBytesPerFrame: number;
  gatewayRssMb: number;
  /** The gateway's RSS growth from connecting the sockets (before any frame), per socket. */
  rssPerSocketKb: number;
}

interface User {
  userid: string;
  socket: WebSocket;
  tcp: { bytesRead: number };
  frames: number;
}

async function connectUsers(port: number, stamp: string): Promise<User[]> {
  return Promise.all(
    Array.from({ length: userCount }, async (_, i) => {
      const userid = `dev-comp-${stamp}-${i}`;
      const { token } = await tokens.issue(userid);
      const socket = new WebSocket(
        `ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}&stream=1&ack=1`,
      );
      const user: User = { userid, socket, tcp: { bytesRead: 0 }, frames: 0 };
      socket.once('upgrade', (res) => (user.tcp = res.socket));
      socket.on('message', () => user.frames++);
      await new Promise<void>((resolveOpen, reject) => {
        socket.once('open', () => resolveOpen());
        socket.once('error', reject);
      });
      return user;
    }),
  );
}

/**
 * Publishes `answersPerSecond` answers for `seconds` on the users' channels, each frame with an
 * increasing event id, paced in 10 ms ticks (pipelined per tick). Returns frames and payload bytes.
 */
async function publishAnswers(redis: Redis, users: User[]): Promise<{ frames: number; bytes: number }> {
  const framesPerSecond = answersPerSecond * FRAMES_PER_ANSWER;
  const total = framesPerSecond * seconds;
  const base = Date.now();
  let n = 0;
  let bytes = 0;
  let answer = 0;
  let seq = 0;
  let words: string[] = [];
  const started = performance.now();
  while (n < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * framesPerSecond));
    const pipeline = redis.pipeline();
    for (; n < due; n++) {
      const user = users[answer % users.length] as User;
      const requestId = `comp-${base}-${answer}`;
      let frame: ServerFrame;
      if (seq < DELTAS_PER_ANSWER) {
        const word = WORDS[(answer * 7 + seq * 13) % WORDS.length] as string;
        const delta = seq === 0 ? word : ` ${word}`;
        words.push(delta);
        frame = { type: 'response.delta', request_id: requestId, seq, delta, userid: user.userid };
        seq++;
      } else {
        frame = {
          type: 'response',
          content: words.join(''),
          userid: user.userid,
          timestamp: new Date().toISOString(),
          processing_time_ms: 600,
          request_id: requestId,
          finish_reason: 'stop',
        };
        words = [];
        seq = 0;
        answer++;
      }
      const text = payload(frame, `${base}-${n}`);
      bytes += Buffer.byteLength(text);
      pipeline.publish(REDIS_KEYS.userChannel(user.userid), text);
    }
    await pipeline.exec();
    await sleep(10);
  }
  return { frames: n, bytes };
}

async function oneRound(setting: Setting, round: number, redisUrl: string): Promise<RoundResult> {
  const gateway = await startGatewayProcess({
    name: `bench-compression-${setting}`,
    port: 0,
    redisUrl,
    env: {
      JWT_SECRET: secret,
      TOKEN_TTL_SECONDS: '3600',
      MAX_CONNECTIONS_PER_IP: '100000',
      WS_COMPRESSION: setting,
    },
  });
  const redis = new Redis(redisUrl, { lazyConnect: true });
  const users: User[] = [];
  try {
    await redis.connect();
    const pid = gateway.child.pid ?? -1;
    const rssIdle = await rssBytes(pid);
    users.push(...(await connectUsers(gateway.port, `${Date.now().toString(36)}-${setting}`)));
    // The gateway subscribes each user's channel after the open; give the SUBSCRIBEs a moment.
    await sleep(1000);
    const rssConnected = await rssBytes(pid);
    const negotiated = users.every((u) => u.socket.extensions.includes('permessage-deflate'));
    const bytesBefore = users.reduce((s, u) => s + u.tcp.bytesRead, 0);
    const cpuBefore = (await cpuSecondsByGroup({ gateway: [pid] })).gateway ?? 0;
    const clientBefore = ownCpuSeconds();
    const started = performance.now();
    const published = await publishAnswers(redis, users);
    // Let the last frames arrive (every published frame has one socket to go to).
    const deadline = Date.now() + 5000;
    const received = () => users.reduce((s, u) => s + u.frames, 0);
    while (received() < published.frames && Date.now() < deadline) await sleep(20);
    const elapsed = (performance.now() - started) / 1000;
    const cpuAfter = (await cpuSecondsByGroup({ gateway: [pid] })).gateway ?? 0;
    const clientCpu = ownCpuSeconds() - clientBefore;
    const wire = users.reduce((s, u) => s + u.tcp.bytesRead, 0) - bytesBefore;
    const frames = received();
    const result: RoundResult = {
      setting,
      round,
      negotiated,
      framesPublished: published.frames,
      framesReceived: frames,
      framesPerSecond: Math.round(frames / elapsed),
      gatewayUsPerFrame: Math.round(((cpuAfter - cpuBefore) * 1e6) / Math.max(1, frames)),
      clientUsPerFrame: Math.round((clientCpu * 1e6) / Math.max(1, frames)),
      wireBytesPerFrame: Math.round((wire / Math.max(1, frames)) * 10) / 10,
      wireBytesPerAnswer: Math.round((wire / Math.max(1, frames)) * FRAMES_PER_ANSWER),
      payloadBytesPerFrame: Math.round((published.bytes / Math.max(1, published.frames)) * 10) / 10,
      gatewayRssMb: Math.round((await rssBytes(pid)) / 1e5) / 10,
      rssPerSocketKb: Math.round((rssConnected - rssIdle) / users.length / 102.4) / 10,
    };
    log(
      `round ${round} ${setting}: ${result.framesPerSecond} frames/s (${frames}/${published.frames} received), gateway ${result.gatewayUsPerFrame} µs/frame, wire ${result.wireBytesPerFrame} B/frame for ${result.payloadBytesPerFrame} B of JSON (${result.wireBytesPerAnswer} B/answer), client ${result.clientUsPerFrame} µs/frame, gateway RSS ${result.gatewayRssMb} MB (${result.rssPerSocketKb} KB per socket connected)${negotiated ? '' : ', NOT negotiated'}`,
    );
    return result;
  } finally {
    for (const u of users) u.socket.terminate();
    redis.disconnect();
    await stopGatewayProcess(gateway);
  }
}

async function main(): Promise<void> {
  const redisUrl = serviceEndpoints().redisUrl;
  const started: string[] = [];
  await startService('redis', { reportStarted: started });
  const results: RoundResult[] = [];
  try {
    log(
      `${rounds} round(s) × ${settings.join('/')}: ${userCount} streaming sockets, ${answersPerSecond} answers/s × ${FRAMES_PER_ANSWER} frames for ${seconds} s`,
    );
    for (let round = 1; round <= rounds; round++) {
      // A new order each round, so no setting always runs first (or right after the same one).
      const order = settings.map((_, i) => settings[(i + round - 1) % settings.length] as Setting);
      for (const setting of order) results.push(await oneRound(setting, round, redisUrl));
    }
  } finally {
    if (started.includes('redis')) await stopService('redis');
  }
  const medians = Object.fromEntries(
    settings.map((setting) => {
      const of = results.filter((r) => r.setting === setting);
      const m = (pick: (r: RoundResult) => number) => median(of.map(pick));
      return [
        setting,
        {
          framesPerSecond: m((r) => r.framesPerSecond),
          gatewayUsPerFrame: m((r) => r.gatewayUsPerFrame),
          gatewayUsPerFrameRuns: of.map((r) => r.gatewayUsPerFrame),
          wireBytesPerFrame: m((r) => r.wireBytesPerFrame),
          wireBytesPerAnswer: m((r) => r.wireBytesPerAnswer),
          payloadBytesPerFrame: m((r) => r.payloadBytesPerFrame),
          clientUsPerFrame: m((r) => r.clientUsPerFrame),
          gatewayRssMb: m((r) => r.gatewayRssMb),
          rssPerSocketKb: m((r) => r.rssPerSocketKb),
          lost: of.reduce((s, r) => s + Math.max(0, r.framesPublished - r.framesReceived), 0),
        },
      ];
    }),
  );
  await writeResults(jsonPath, {
    options: { rounds, users: userCount, answersPerSecond, seconds, framesPerAnswer: FRAMES_PER_ANSWER },
    medians,
    runs: results,
  });
  log(`results in ${jsonPath}`);
}

await main();
