import WebSocket from 'ws';

/**
 * The original project's own load test, as its users ran it (issue 13 describes it): N clients, each
 * fetches its own token with `POST /token?userid=user{i}` (all from one address), connects with the
 * original protocol (no streaming, no acks), sends its M messages back to back without waiting, and
 * waits up to `windowMs` for M `response` frames. It passes with ≥ N connections opened, answers per
 * elapsed second ≥ `minRate`, and more than `minAnsweredRatio` of the messages answered.
 */
export interface OriginalLoadTestOptions {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  clients: number;
  messagesPerClient: number;
  windowMs: number;
  minRate: number;
  minAnsweredRatio: number;
  progress?: (line: string) => void;
}

export interface OriginalLoadTestResult {
  connectionsOpened: number;
  tokenFailures: number;
  sent: number;
  answered: number;
  errors: Record<string, number>;
  elapsedMs: number;
  answersPerSecond: number;
  pass: boolean;
  checks: { connections: boolean; throughput: boolean; delivery: boolean };
}

export async function runOriginalLoadTest(options: OriginalLoadTestOptions): Promise<OriginalLoadTestResult> {
  const log = options.progress ?? (() => undefined);
  const wsUrl = options.url.replace(/^http/, 'ws');
  let opened = 0;
  let tokenFailures = 0;
  let sent = 0;
  let answered = 0;
  const errors: Record<string, number> = {};
  const sockets: WebSocket[] = [];
  const started = performance.now();
  let lastAnswerAt = started;

  const client = async (i: number): Promise<void> => {
    const userid = `user${i}`;
    const res = await fetch(`${options.url}/token?userid=${userid}`, { method: 'POST' }).catch(
      () => undefined,
    );
    if (!res || res.status !== 200) {
      tokenFailures++;
      return;
    }
    const { token } = (await res.json()) as { token: string };
    const socket = new WebSocket(`${wsUrl}/ws?token=${encodeURIComponent(token)}&userid=${userid}`);
    sockets.push(socket);
    let mine = 0;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.windowMs);
      socket.on('open', () => {
        opened++;
        for (let k = 0; k < options.messagesPerClient; k++) {
          socket.send(
            JSON.stringify({ type: 'message', content: `Load test message ${k} from ${userid}`, userid }),
          );
          sent++;
        }
      });
      socket.on('message', (data) => {
        const frame = JSON.parse(String(data)) as { type?: string; code?: string };
        if (frame.type === 'response') {
          answered++;
          mine++;
          lastAnswerAt = performance.now();
          if (mine === options.messagesPerClient) {
            clearTimeout(timer);
            resolve();
          }
        } else if (frame.type === 'error') {
          const code = frame.code ?? 'error';
          errors[code] = (errors[code] ?? 0) + 1;
        }
      });
      socket.on('error', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  };

  const ticker = setInterval(
    () => log(`[original-load-test] ${opened} open, ${sent} sent, ${answered} answered`),
    1000,
  );
  try {
    await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
  } finally {
    clearInterval(ticker);
    for (const s of sockets) s.terminate();
  }
  const elapsedMs = Math.max(1, lastAnswerAt - started);
  const answersPerSecond = answered / (elapsedMs / 1000);
  const total = options.clients * options.messagesPerClient;
  const checks = {
    connections: opened >= options.clients,
    throughput: answersPerSecond >= options.minRate,
    delivery: answered / total > options.minAnsweredRatio,
  };
  return {
    connectionsOpened: opened,
    tokenFailures,
    sent,
    answered,
    errors,
    elapsedMs: Math.round(elapsedMs),
    answersPerSecond: Math.round(answersPerSecond * 10) / 10,
    pass: checks.connections && checks.throughput && checks.delivery,
    checks,
  };
}
