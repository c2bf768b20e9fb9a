import type { HttpRequest, HttpResponse } from 'uWebSockets.js';

/** The client's IP: from the proxy headers only when the gateway sits behind a trusted proxy. */
export function clientIp(res: HttpResponse, req: HttpRequest, trustProxy: boolean): string {
  if (trustProxy) {
    const real = req.getHeader('x-real-ip');
    if (real) return real;
    const forwarded = req.getHeader('x-forwarded-for').split(',')[0]?.trim();
    if (forwarded) return forwarded;
  }
  return Buffer.from(res.getRemoteAddressAsText()).toString();
}
