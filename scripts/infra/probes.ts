import { request } from 'node:http';
import { connect } from 'node:net';

/** Status code of a GET, or null when nothing answers within `timeoutMs`. */
export function httpStatus(url: string, timeoutMs = 1_000): Promise<number | null> {
  return new Promise((resolvePromise) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolvePromise(res.statusCode ?? null);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolvePromise(null));
    req.end();
  });
}

/** Status and body (parsed as JSON, else undefined) of a GET, or null when nothing answers in time. */
export function httpJson(url: string, timeoutMs = 1_000): Promise<{ status: number; body: unknown } | null> {
  return new Promise((resolvePromise) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.once('error', () => resolvePromise(null));
      res.once('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolvePromise({ status: res.statusCode ?? 0, body });
      });
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolvePromise(null));
    req.end();
  });
}

/** Sends `payload` over a fresh TCP connection and resolves with the first bytes received. */
export function tcpExchange(port: number, payload: string, timeoutMs = 1_000): Promise<string | null> {
  return new Promise((resolvePromise) => {
    const socket = connect({ host: '127.0.0.1', port });
    let done = false;
    const finish = (value: string | null): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolvePromise(value);
    };
    socket.setTimeout(timeoutMs, () => finish(null));
    socket.once('connect', () => socket.write(payload));
    socket.once('data', (data) => finish(data.toString('utf8')));
    socket.once('error', () => finish(null));
    socket.once('close', () => finish(null));
  });
}
