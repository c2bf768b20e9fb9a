import { describe, expect, it } from 'vitest';
import { httpFragment, logFragment } from '../config/fragments.js';
import { tracingFragment } from '../tracing/options.js';
import { noopTracer } from '../tracing/tracer.js';
import { waitFor } from '../testing/wait-for.js';
import { bootService, type ProcessHandle } from './boot.js';

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** A process stand-in; `exit` throws (as the real one never returns) only where asked. */
function fakeProcess(env: Record<string, string>, exitThrows = true) {
  const written: string[] = [];
  const signals = new Map<string, () => void>();
  const exits: number[] = [];
  const proc: ProcessHandle = {
    env,
    exit: (code) => {
      exits.push(code);
      if (exitThrows) throw new Exit(code);
      return undefined as never;
    },
    stderr: { write: (text: string) => written.push(text) },
    on: (signal, listener) => signals.set(signal, listener),
  };
  return { proc, written, signals, exits };
}

const fragments = {
  http: httpFragment({ service: 'svc', port: 1234 }),
  log: logFragment,
  tracing: tracingFragment({ service: 'svc' }),
};

describe('bootService', () => {
  it('builds config, logger, metrics and shutdown, and wires SIGTERM/SIGINT', async () => {
    const { proc, signals, exits } = fakeProcess({ SERVER_ID: 'svc-1', LOG_LEVEL: 'silent' }, false);
    const booted = await bootService(proc, 'svc', fragments);
    expect(booted.config.http).toMatchObject({ port: 1234, serverId: 'svc-1' });
    expect(booted.logger.level).toBe('silent');
    // No OTEL_* variable: tracing off, the no-op tracer, no SDK.
    expect(booted.tracer).toBe(noopTracer);
    expect([...signals.keys()].sort()).toEqual(['SIGINT', 'SIGTERM']);
    signals.get('SIGTERM')?.();
    expect(booted.shutdown.draining).toBe(true);
    await waitFor(() => exits.length === 1);
    expect(exits).toEqual([0]);
  });

  it('a bad value writes one line naming the variable and exits 1', async () => {
    const { proc, written, exits } = fakeProcess({ PORT: 'eighty' });
    await expect(bootService(proc, 'svc', fragments)).rejects.toThrow(Exit);
    expect(exits).toEqual([1]);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/^config error: PORT .*\n$/);
  });
});
