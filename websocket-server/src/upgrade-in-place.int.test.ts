/**
 * The dropped socket: a WebSocket that got its 101 and was then closed (1006, no frame) by uWS
 * itself. This uWS build's res.cork() misses an upgrade made inside it when the socket's block was
 * shrunk in place (glibc always does), then runs its HTTP connection-close check on the new
 * WebSocket, reading the HTTP state from the tail the shrink gave back to the heap. Whether that
 * memory says "close" depends on who reused it, so the pipeline test lost one socket in a few runs.
 * The preload below makes the tail say "close" for every upgrade: an upgrade made from a promise
 * inside res.cork() is then dropped every time; the gateway upgrades inside uWS' upgrade handler.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, fetchToken, type TestClient } from './testing/ws-client.js';

const here = dirname(fileURLToPath(import.meta.url));
const SOCKETS = 32;
/** HttpResponseData's HTTP_CONNECTION_CLOSE bit, with HTTP_RESPONSE_PENDING clear. */
const CONNECTION_CLOSE = '0x10';

describe('upgrade with the socket block shrunk in place (LD_PRELOAD, built with cc)', () => {
  let dir = '';
  let child: ChildProcess | undefined;
  let stderr = '';
  let base = '';
  const clients: TestClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'realloc-in-place-'));
    const lib = join(dir, 'realloc-in-place.so');
    const source = join(here, 'testing', 'realloc-in-place.c');
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', lib, source, '-ldl'], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cc ${source}: ${cc.stderr}`);
    const started = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', join(here, 'testing', 'gateway-child.ts')],
      {
        env: { ...process.env, LD_PRELOAD: lib, UWS_REALLOC_TAIL_BYTE: CONNECTION_CLOSE },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child = started;
    let stdout = '';
    started.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    started.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const port = await waitFor(() => /\{"port":(\d+)\}/.exec(stdout)?.[1], {
      timeoutMs: 30_000,
      message: () => `the gateway child did not start: ${stderr}`,
    });
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every socket stays open and gets its acks', async () => {
    const opened = await Promise.all(
      Array.from({ length: SOCKETS }, async (_, i) => {
        const userid = `in-place-${i}`;
        const token = await fetchToken(base, userid);
        return connectClient(`${base.replace('http', 'ws')}/ws?token=${token}&userid=${userid}&ack=1`);
      }),
    );
    clients.push(...opened);
    // The fault was injected into each of these upgrades (otherwise this test would prove nothing).
    expect(stderr.match(/^realloc-in-place:/gm)?.length ?? 0).toBeGreaterThanOrEqual(SOCKETS);
    for (const c of opened)
      for (let k = 0; k < 3; k++) c.send({ type: 'message', content: `m${k}`, id: `m${k}` });
    await Promise.all(
      opened.map((c, i) =>
        waitFor(() => c.frames.filter((f) => f.type === 'ack').length === 3, {
          timeoutMs: 10_000,
          message: () =>
            `socket ${i}: ${c.frames.length} frames, ${c.closed ? `closed ${c.closed.code}` : 'open'}`,
        }),
      ),
    );
    expect(opened.filter((c) => c.closed !== null)).toEqual([]);
  });
});
