/**
 * Opens many idle WebSocket connections to one gateway, one user each (so each is a real Redis
 * channel subscription too), spread over 127.0.0.x source addresses (each has ~28k ephemeral ports).
 */
import WebSocket from 'ws';

export interface IdleConnections {
  opened: number;
  failed: number;
  failures: Record<string, number>;
  /** Seconds from the first connect to the last open. */
  seconds: number;
  close(): Promise<void>;
}

export interface OpenIdleOptions {
  /** ws://host:port of the gateway (no path). */
  wsBase: string;
  count: number;
  token: (userid: string) => Promise<string>;
  sourceAddresses: readonly string[];
  /** Connections being set up at once. */
  concurrency: number;
  progress: (line: string) => void;
  /** Connections already open from an earlier call: user ids continue after them. */
  offset?: number;
  prefix: string;
}

/** Opens `count` connections, `concurrency` at a time; resolves when each has opened or failed. */
export async function openIdleConnections(options: OpenIdleOptions): Promise<IdleConnections> {
  const sockets: WebSocket[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  let failed = 0;
  const offset = options.offset ?? 0;
  const started = performance.now();
  const ticker = setInterval(
    () =>
      options.progress(
        `[bench] connections: ${sockets.length}/${options.count} open, ${failed} failed, ${((performance.now() - started) / 1000).toFixed(0)} s`,
      ),
    2000,
  );

  async function worker(): Promise<void> {
    while (next < options.count) {
      const i = offset + next++;
      const userid = `${options.prefix}-${i}`;
      const localAddress = options.sourceAddresses[i % Math.max(1, options.sourceAddresses.length)];
      try {
        const token = await options.token(userid);
        const ws = new WebSocket(`${options.wsBase}/ws?token=${token}&userid=${userid}`, {
          perMessageDeflate: false,
          ...(localAddress && { localAddress }),
        });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
          ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        });
        // An idle socket must stay open: errors after the open are counted, not thrown.
        ws.on('error', () => undefined);
        sockets.push(ws);
      } catch (err) {
        failed++;
        const reason =
          err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
        failures[reason] = (failures[reason] ?? 0) + 1;
      }
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, worker));
  clearInterval(ticker);
  const seconds = (performance.now() - started) / 1000;
  return {
    opened: sockets.length,
    failed,
    failures,
    seconds,
    async close() {
      await Promise.all(
        sockets.map(
          (ws) =>
            new Promise<void>((resolve) => {
              if (ws.readyState === WebSocket.CLOSED) return resolve();
              ws.once('close', () => resolve());
              ws.terminate();
            }),
        ),
      );
    },
  };
}
