import { z } from 'zod';

/** What a Turnstile-compatible `siteverify` answers; only `success` matters here. */
const siteverifySchema = z.looseObject({ success: z.boolean() });

export interface CaptchaVerifier {
  /**
   * Whether `response` (the widget's captcha token) passes the site's check. Throws when the
   * verifier cannot be asked (unreachable, timeout, not JSON): that is an outage, not a failed test.
   */
  verify(site: { secret: string; verifyUrl: string }, response: string, remoteIp: string): Promise<boolean>;
}

/**
 * Server-side captcha check against a Turnstile-compatible `siteverify` URL (form-encoded `secret`,
 * `response`, `remoteip`; JSON `{"success": …}`), as the original system did with Turnstile. The URL
 * is per site, so tests run a local verifier.
 */
export function createCaptchaVerifier(
  options: { timeoutMs?: number; fetch?: typeof fetch } = {},
): CaptchaVerifier {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 5000;
  return {
    async verify(site, response, remoteIp) {
      const res = await doFetch(site.verifyUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ secret: site.secret, response, remoteip: remoteIp }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) throw new Error(`captcha verifier answered HTTP ${res.status}`);
      const parsed = siteverifySchema.safeParse(await res.json());
      if (!parsed.success) throw new Error('captcha verifier answered something else than {"success": …}');
      return parsed.data.success;
    },
  };
}
