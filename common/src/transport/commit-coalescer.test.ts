import { describe, expect, it } from 'vitest';
import { createCommitCoalescer } from './commit-coalescer.js';
import { waitFor } from '../testing/wait-for.js';

function controlledCommits() {
  const sent: Array<{ slot: string; offset: bigint; settle: (err?: Error) => void }> = [];
  const errors: unknown[] = [];
  const coalescer = createCommitCoalescer({
    commit: (slot, offset) =>
      new Promise<void>((resolve, reject) =>
        sent.push({ slot, offset, settle: (err) => (err ? reject(err) : resolve()) }),
      ),
    onError: (err) => errors.push(err),
  });
  return { coalescer, sent, errors };
}

describe('commit coalescer', () => {
  it('keeps one commit in flight per partition and follows it with the latest watermark', async () => {
    const { coalescer, sent } = controlledCommits();
    coalescer.request('t|0', 1n);
    coalescer.request('t|0', 2n);
    coalescer.request('t|0', 3n);
    coalescer.request('t|1', 7n);
    expect(sent.map((s) => `${s.slot}@${s.offset}`)).toEqual(['t|0@1', 't|1@7']);
    sent[0]?.settle();
    await waitFor(() => sent.length === 3);
    expect(sent[2]?.offset).toBe(3n);
    sent[1]?.settle();
    sent[2]?.settle();
    await coalescer.flush();
    expect(coalescer.committed('t|0')).toBe(3n);
    expect(coalescer.committed('t|1')).toBe(7n);
    coalescer.request('t|0', 3n);
    expect(sent).toHaveLength(3);
  });

  it('spaces the commits of a partition by minIntervalMs, committing the latest after the pause', async () => {
    const at: Array<{ offset: bigint; t: number }> = [];
    const t0 = performance.now();
    const coalescer = createCommitCoalescer({
      minIntervalMs: 50,
      commit: (_slot, offset) => {
        at.push({ offset, t: performance.now() - t0 });
        return Promise.resolve();
      },
      onError: () => {},
    });
    coalescer.request('t|0', 1n);
    await new Promise((r) => setTimeout(r, 5));
    coalescer.request('t|0', 2n);
    coalescer.request('t|0', 3n);
    await waitFor(() => at.length === 2);
    await coalescer.flush();
    expect(at.map((c) => c.offset)).toEqual([1n, 3n]);
    expect((at[1]?.t ?? 0) - (at[0]?.t ?? 0)).toBeGreaterThanOrEqual(45);
  });

  it('reports a failed commit and tries again on the next request', async () => {
    const { coalescer, sent, errors } = controlledCommits();
    coalescer.request('t|0', 5n);
    sent[0]?.settle(new Error('rebalance in progress'));
    await coalescer.flush();
    expect(errors).toHaveLength(1);
    expect(coalescer.committed('t|0')).toBeUndefined();
    coalescer.request('t|0', 5n);
    expect(sent).toHaveLength(2);
    sent[1]?.settle();
    await coalescer.flush();
    expect(coalescer.committed('t|0')).toBe(5n);
  });

  it('sends nothing more for a dropped partition or after stop', async () => {
    const { coalescer, sent } = controlledCommits();
    coalescer.request('t|0', 1n);
    coalescer.request('t|0', 2n);
    coalescer.drop('t|0');
    sent[0]?.settle();
    await new Promise((r) => setImmediate(r));
    expect(sent).toHaveLength(1);
    coalescer.stop();
    coalescer.request('t|1', 1n);
    expect(sent).toHaveLength(1);
  });
});
