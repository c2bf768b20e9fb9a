import type {
  Bus,
  BusMessage,
  BusRecord,
  FatalHandler,
  SubscribeOptions,
  Subscription,
  TopicSpec,
} from './bus.js';
import { partitionFor } from './bus.js';
import { once } from '../lifecycle/once.js';

interface StoredRecord {
  key: string | null;
  value: string;
  headers: Record<string, string>;
  timestamp: number;
}

interface Member {
  topics: Set<string>;
  options: SubscribeOptions;
  /** `${topic}:${partition}` of partitions this member owns. */
  owned: Set<string>;
  running: Set<string>;
  closed: boolean;
  failed: boolean;
  joined: boolean;
  idle: Set<() => void>;
}

interface Group {
  committed: Map<string, number>;
  members: Member[];
}

export interface MemoryBusOptions {
  /** Partitions for topics created implicitly by publish. @default 1 */
  defaultPartitions?: number;
  onFatal?: FatalHandler;
}

/**
 * In-process bus with Kafka's semantics where our code depends on them: partitions by key, per-group
 * committed offsets, commit after the handler resolves, redelivery of uncommitted messages to the
 * next owner of a partition, partitions spread over the members of a group.
 */
export function createMemoryBus(options: MemoryBusOptions = {}): Bus {
  const topics = new Map<string, StoredRecord[][]>();
  const groups = new Map<string, Group>();
  let connected = false;
  let crashed = false;

  function topicLog(topic: string): StoredRecord[][] {
    let parts = topics.get(topic);
    if (!parts) {
      parts = Array.from({ length: options.defaultPartitions ?? 1 }, () => []);
      topics.set(topic, parts);
    }
    return parts;
  }

  function rebalance(group: Group): void {
    const live = group.members.filter((m) => !m.closed && !m.failed);
    for (const m of group.members) m.owned.clear();
    const slots: string[] = [];
    const allTopics = new Set(live.flatMap((m) => [...m.topics]));
    for (const t of allTopics) topicLog(t).forEach((_, p) => slots.push(`${t}:${p}`));
    let i = 0;
    for (const slot of slots) {
      const topic = slot.slice(0, slot.lastIndexOf(':'));
      const candidates = live.filter((m) => m.topics.has(topic));
      if (candidates.length === 0) continue;
      const owner = candidates[i++ % candidates.length];
      owner?.owned.add(slot);
    }
    for (const m of live) {
      m.joined = true;
      for (const slot of m.owned) pump(group, m, slot);
    }
  }

  /** Delivers the next uncommitted record of a partition to its owner, one at a time. */
  function pump(group: Group, member: Member, slot: string): void {
    if (member.closed || member.failed || member.running.has(slot) || !member.owned.has(slot)) return;
    const sep = slot.lastIndexOf(':');
    const topic = slot.slice(0, sep);
    const partition = Number(slot.slice(sep + 1));
    const log = topicLog(topic)[partition] ?? [];
    let next = group.committed.get(slot);
    if (next === undefined) {
      next = member.options.fromBeginning ? 0 : log.length;
      group.committed.set(slot, next);
    }
    const record = log[next];
    if (!record) {
      if (member.running.size === 0) for (const resolve of member.idle) resolve();
      return;
    }
    const offset = next;
    const message: BusMessage = {
      topic,
      partition,
      offset: String(offset),
      key: record.key,
      value: record.value,
      headers: { ...record.headers },
      timestamp: record.timestamp,
    };
    member.running.add(slot);
    // A macrotask boundary between messages, as a network consumer would have.
    setImmediate(() => {
      member.options.handler(message).then(
        () => {
          member.running.delete(slot);
          // Commit only if this member still owns the partition (a rebalance may have moved it).
          if (!member.failed && member.owned.has(slot) && group.committed.get(slot) === offset) {
            group.committed.set(slot, offset + 1);
          }
          pump(group, member, slot);
          if (member.running.size === 0) for (const resolve of member.idle) resolve();
        },
        (err: unknown) => {
          member.running.delete(slot);
          member.failed = true;
          crashed = true;
          options.onFatal?.(err instanceof Error ? err : new Error(String(err)));
          for (const resolve of member.idle) resolve();
          rebalance(group);
        },
      );
    });
  }

  const bus: Bus = {
    kind: 'memory',
    async connect() {
      connected = true;
    },
    async ensureTopics(specs: TopicSpec[]) {
      for (const { topic, partitions } of specs) {
        const existing = topics.get(topic);
        if (!existing)
          topics.set(
            topic,
            Array.from({ length: partitions }, () => []),
          );
      }
    },
    async publish(topic: string, records: BusRecord[]) {
      if (!connected) throw new Error('memory bus is not connected');
      const parts = topicLog(topic);
      const touched = new Set<number>();
      for (const r of records) {
        const p = partitionFor(r.key, parts.length);
        parts[p]?.push({ key: r.key, value: r.value, headers: r.headers ?? {}, timestamp: Date.now() });
        touched.add(p);
      }
      for (const group of groups.values()) {
        for (const m of group.members) for (const p of touched) pump(group, m, `${topic}:${p}`);
      }
    },
    async subscribe(subOptions: SubscribeOptions): Promise<Subscription> {
      let group = groups.get(subOptions.groupId);
      if (!group) {
        group = { committed: new Map(), members: [] };
        groups.set(subOptions.groupId, group);
      }
      for (const t of subOptions.topics) topicLog(t);
      const member: Member = {
        topics: new Set(subOptions.topics),
        options: subOptions,
        owned: new Set(),
        running: new Set(),
        closed: false,
        failed: false,
        joined: false,
        idle: new Set(),
      };
      const g = group;
      g.members.push(member);
      rebalance(g);
      return {
        get ready() {
          return member.joined && !member.failed && !member.closed;
        },
        close: once(async () => {
          member.closed = true;
          if (member.running.size > 0 && !member.failed) {
            await new Promise<void>((resolve) => member.idle.add(resolve));
          }
          g.members = g.members.filter((m) => m !== member);
          rebalance(g);
        }),
      };
    },
    healthy: () => connected && !crashed,
    close: once(async () => {
      connected = false;
      await Promise.all(
        [...groups.values()].flatMap((g) =>
          g.members.map(async (m) => {
            m.closed = true;
            if (m.running.size > 0 && !m.failed) await new Promise<void>((resolve) => m.idle.add(resolve));
          }),
        ),
      );
    }),
  };
  return bus;
}
