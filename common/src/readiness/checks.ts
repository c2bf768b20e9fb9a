import type { DependencyStatus, ReadyBody } from '../contract/ops-api.js';

/** A dependency as a service sees it right now: answering, or failing and why. */
export type DependencyCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Checks by dependency name (`kafka`, `redis`, `model`, …), in the order `/ready` lists them. */
export type ReadinessChecks = Readonly<Record<string, DependencyCheck>>;

/** What a service component answers when asked whether it is ready. */
export interface Readiness {
  /** Every check ok. */
  ready: boolean;
  checks: ReadinessChecks;
}

export const OK: DependencyCheck = Object.freeze({ ok: true });

/**
 * Reasons end up in a public-ish HTTP body and in `npm run stack -- status`; errors from client
 * libraries may quote a connection URL, which can carry a password. Long messages (stack traces of
 * an aggregate error) would drown the table, so one line of bounded length.
 */
const MAX_REASON_LENGTH = 200;

/** `reason` made safe to show: URL credentials and token-like query values removed, one short line. */
export function safeReason(reason: string): string {
  const line = reason
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1***@')
    .replace(/([?&](?:token|password|key|secret)=)[^&\s]*/gi, '$1***')
    .replace(/\s+/g, ' ')
    .trim();
  const bounded = line.length > MAX_REASON_LENGTH ? `${line.slice(0, MAX_REASON_LENGTH - 1)}…` : line;
  return bounded || 'failing';
}

export function failing(reason: string): DependencyCheck {
  return { ok: false, reason: safeReason(reason) };
}

/** An error as a reason: its code (ECONNREFUSED, …) when the message does not already say it. */
export function errorReason(err: unknown): string {
  if (!(err instanceof Error)) return safeReason(String(err));
  const code = (err as { code?: unknown }).code;
  const message = err.message || err.name;
  return safeReason(typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message);
}

/** Draining is not a dependency, but it is why a healthy process says 503: named like one. */
export function drainingCheck(draining: boolean): DependencyCheck {
  return draining ? failing('shutting down') : OK;
}

export function readinessOf(checks: ReadinessChecks): Readiness {
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

/** Several components in one process (the embedded app): each check named `<part>.<check>`. */
export function combinedReadiness(parts: Readonly<Record<string, Readiness>>): Readiness {
  const checks: Record<string, DependencyCheck> = {};
  for (const [part, readiness] of Object.entries(parts)) {
    for (const [name, check] of Object.entries(readiness.checks)) checks[`${part}.${name}`] = check;
  }
  return readinessOf(checks);
}

/**
 * The `/ready` answer of every service (the ops server and the gateway's uWS app both send this):
 * 200 when every check is ok, else 503 with the failing ones named.
 */
export function readyResponse(
  service: string,
  readiness: Readiness,
): { statusCode: 200 | 503; body: ReadyBody } {
  const checks: Record<string, DependencyStatus> = {};
  const failingNames: string[] = [];
  for (const [name, check] of Object.entries(readiness.checks)) {
    if (check.ok) {
      checks[name] = { status: 'ok' };
    } else {
      checks[name] = { status: 'failing', reason: check.reason };
      failingNames.push(name);
    }
  }
  const ready = readiness.ready && failingNames.length === 0;
  return {
    statusCode: ready ? 200 : 503,
    body: { status: ready ? 'ready' : 'not_ready', service, failing: failingNames, checks },
  };
}
