import { describe, expect, it } from 'vitest';
import { createCircuitBreaker, type BreakerState, type FailureVerdict } from './circuit-breaker.js';
import { CircuitOpenError } from './upstream-errors.js';

class Boom extends Error {
  constructor(readonly verdict: FailureVerdict) {
    super(verdict);
  }
}
const classify = (error: unknown): FailureVerdict => (error instanceof Boom ? error.verdict : 'failure');

function setup(threshold = 3, cooldownMs = 1000) {
  let clock = 0;
  const transitions: Array<[BreakerState, BreakerState]> = [];
  const breaker = createCircuitBreaker({
    failureThreshold: threshold,
    cooldownMs,
    now: () => clock,
    onStateChange: (state, previous) => transitions.push([previous, state]),
  });
  const ok = () => breaker.run(async () => 'ok', classify);
  const fail = (verdict: FailureVerdict = 'failure') =>
    breaker.run(async () => Promise.reject(new Boom(verdict)), classify).catch((e: unknown) => e);
  return {
    breaker,
    transitions,
    ok,
    fail,
    advance: (ms: number) => void (clock += ms),
  };
}

describe('circuit breaker', () => {
  it('opens after N consecutive failures and then fails fast without calling', async () => {
    const { breaker, fail, transitions } = setup(3);
    await fail();
    await fail();
    expect(breaker.state).toBe('closed');
    await fail();
    expect(breaker.state).toBe('open');
    expect(transitions).toEqual([['closed', 'open']]);
    let called = false;
    const refused = await breaker
      .run(async () => {
        called = true;
      }, classify)
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CircuitOpenError);
    expect(refused).toMatchObject({ code: 'upstream_unavailable' });
    expect(called).toBe(false);
  });

  it('a success (or a provider answer judged success) resets the count', async () => {
    const { breaker, fail, ok } = setup(3);
    await fail();
    await fail();
    await ok();
    await fail();
    await fail();
    expect(breaker.state).toBe('closed');
    await fail('success');
    await fail();
    await fail();
    expect(breaker.state).toBe('closed');
    // Ignored outcomes neither count nor reset.
    await fail('ignore');
    await fail();
    expect(breaker.state).toBe('open');
  });

  it('half-opens after the cool-down; a successful trial closes it', async () => {
    const { breaker, fail, ok, advance, transitions } = setup(1, 1000);
    await fail();
    advance(999);
    expect(breaker.state).toBe('open');
    const early = await fail();
    expect(early).toBeInstanceOf(CircuitOpenError);
    expect((early as CircuitOpenError).retryInMs).toBe(1);
    advance(1);
    expect(breaker.state).toBe('half_open');
    await expect(ok()).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
  });

  it('lets one trial through at a time; a failed trial opens it again for a full cool-down', async () => {
    const { breaker, advance } = setup(1, 1000);
    await breaker.run(async () => Promise.reject(new Boom('failure')), classify).catch(() => undefined);
    advance(1000);
    let release: (value: string) => void = () => {};
    const trial = breaker.run(() => new Promise<string>((r) => (release = r)), classify);
    await expect(breaker.run(async () => 'second', classify)).rejects.toBeInstanceOf(CircuitOpenError);
    release('first');
    await expect(trial).resolves.toBe('first');
    expect(breaker.state).toBe('closed');

    await breaker.run(async () => Promise.reject(new Boom('failure')), classify).catch(() => undefined);
    advance(1000);
    await breaker.run(async () => Promise.reject(new Boom('failure')), classify).catch(() => undefined);
    expect(breaker.state).toBe('open');
    advance(999);
    expect(breaker.state).toBe('open');
    advance(1);
    expect(breaker.state).toBe('half_open');
  });

  it('an ignored trial (cancelled) keeps it half-open and frees the trial slot', async () => {
    const { breaker, fail, ok, advance } = setup(1, 100);
    await fail();
    advance(100);
    await fail('ignore');
    expect(breaker.state).toBe('half_open');
    await expect(ok()).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
  });
});
