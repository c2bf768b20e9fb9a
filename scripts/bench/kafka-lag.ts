/**
 * Consumer lag of the pipeline's two consumer groups, sampled while a scenario runs: a throughput is
 * only sustained if the lag stays flat (the consumers keep up), not just if the run ended.
 */
import { Kafka, logLevel } from 'kafkajs';
import { TOPICS } from '@relay/common';

/** The groups and topics of SPEC §3 (ai-consumer on prompts, message-relay on responses). */
const WATCHED = [
  { groupId: 'ai-consumer', topic: TOPICS.incoming },
  { groupId: 'message-relay', topic: TOPICS.responses },
] as const;

export interface LagSample {
  /** `performance.now()` of the sample, to line it up with a load test's send window. */
  at: number;
  /** Messages produced but not yet committed, per group. */
  lag: Record<string, number>;
}

export interface LagSampler {
  samples: LagSample[];
  stop(): Promise<LagSample[]>;
}

export async function startLagSampler(brokers: string[], intervalMs = 1000): Promise<LagSampler> {
  const kafka = new Kafka({ clientId: 'bench-lag', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const samples: LagSample[] = [];
  let stopped = false;

  async function sample(): Promise<void> {
    const lag: Record<string, number> = {};
    for (const { groupId, topic } of WATCHED) {
      const [ends, committed] = await Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId, topics: [topic] }),
      ]);
      const done = new Map(
        (committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)] as const),
      );
      lag[groupId] = ends.reduce((sum, p) => {
        const end = Number(p.high);
        const at = done.get(p.partition) ?? -1;
        // -1: nothing committed on that partition yet; count from its low watermark.
        return sum + Math.max(0, end - (at >= 0 ? at : Number(p.low)));
      }, 0);
    }
    samples.push({ at: performance.now(), lag });
  }

  const loop = (async () => {
    while (!stopped) {
      const next = performance.now() + intervalMs;
      await sample().catch(() => undefined);
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
  })();

  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
      await admin.disconnect();
      return samples;
    },
  };
}

/**
 * Whether the lag stayed flat: the largest lag (summed over groups) in the last third of the samples
 * is at most twice the largest in the first third plus `slack` messages. A consumer falling behind
 * grows its lag every second; one keeping up hovers around the same small backlog.
 */
export function lagIsFlat(samples: readonly LagSample[], slack: number): { flat: boolean; maxLag: number } {
  const totals = samples.map((s) => Object.values(s.lag).reduce((a, b) => a + b, 0));
  const third = Math.max(1, Math.floor(totals.length / 3));
  const first = Math.max(0, ...totals.slice(0, third));
  const last = Math.max(0, ...totals.slice(-third));
  return { flat: last <= 2 * first + slack, maxLag: Math.max(0, ...totals) };
}
