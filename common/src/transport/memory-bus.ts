import type {
  Bus,
  BusMessage,
  BusRecord,
  FatalHandler,
  PartitionLag,
  SubscribeOptions,
  Subscription,
  TopicSpec,
} from './bus.js';
import { partitionFor } from './bus.js';
import { createLaneScheduler, type LaneScheduler } from './lane-scheduler.js';
import { createPartitionLog, type PartitionLog } from './memory-log.js';
import { createOffsetWatermarks, type OffsetWatermarks } from './offset-watermarks.js';
import { laneKey, resolveConsumption, slotKey, type ResolvedConsumption } from './subscribe-options.js';
import { once } from '../lifecycle/once.js';
import { failing, OK } from '../readiness/checks.js';

interface StoredRecord {
  key: string | null;
  value: string;
  headers: Record<string, string>;
  timestamp: number;
}

interface Member {
  topics: Set<string>;
  options: SubscribeOptions;
  consumption: ResolvedConsumption;
  /** Slots (`slotKey`) of partitions this member owns. */
  owned: Set<string>;
  watermarks: OffsetWatermarks;
  scheduler: LaneScheduler<BusMessage>;
  /** close() was called: nothing new starts. */
  closed: boolean;
  /** Left the group: nothing it finishes is committed any more. */
  left: boolean;
  failed: boolean;
  joined: boolean;
  waitingForRoom: boolean;
  leaving: Promise<void> | undefined;
}

interface Group {
  /** Next offset to read per slot. */
  committed: Map<string, number>;
  members: Member[];
}

export interface MemoryBusOptions {
  /** Partitions for topics created implicitly by publish. @default 1 */
  defaultPartitions?: number;
  /**
   * Records kept per partition that no active group holds: the newest this many of a topic that
   * nobody consumes (yet, or any more), like Kafka's retention. What an active group has not
   * committed is never released; what every active group committed is released at once.
   * @default 1000
   */
  retainRecords?: number;
  onFatal?: FatalHandler;
}

/** What one partition retains, for tests and diagnostics. */
export interface PartitionRetention {
  partition: number;
  /** Offset of the oldest retained record. */
  start: number;
  /** Offset the next record gets. */
  end: number;
}

export interface MemoryBus extends Bus {
  /** Per partition of `topic`, which offsets are retained; empty for an unknown topic. */
  retention(topic: string): PartitionRetention[];
}

function parseSlot(slot: string): { topic: string; partition: number } {
  const sep = slot.lastIndexOf('|');
  return { topic: slot.slice(0, sep), partition: Number(slot.slice(sep + 1)) };
}

/**
 * In-process bus with Kafka's semantics where our code depends on them: partitions by key, per-group
 * committed offsets, watermark commits after handlers resolve, the same concurrency and ordering
 * options as the Kafka bus, redelivery of uncommitted messages to the next owner of a partition,
 * partitions spread over the members of a group.
 *
 * Bounded like a broker with retention, so the embedded default can run for weeks: offsets stay
 * absolute, and a partition releases the records below the lowest offset committed by the groups
 * that hold it (groups with members subscribed to the topic). A group without members holds
 * nothing: its topic keeps the newest `retainRecords` per partition, and a group coming back to an
 * offset released meanwhile starts over like a new one (Kafka's offset reset). A new group with
 * `fromBeginning` starts at the oldest retained record.
 */
export function createMemoryBus(options: MemoryBusOptions = {}): MemoryBus {
  const topics = new Map<string, PartitionLog<StoredRecord>[]>();
  const groups = new Map<string, Group>();
  const retainRecords = options.retainRecords ?? 1000;
  if (!Number.isInteger(retainRecords) || retainRecords < 0) {
    throw new TypeError(`invalid memory bus option retainRecords: ${retainRecords}`);
  }
  let connected = false;
  let crashed = false;

  const newLogs = (n: number) => Array.from({ length: n }, () => createPartitionLog<StoredRecord>());

  function topicLog(topic: string): PartitionLog<StoredRecord>[] {
    let parts = topics.get(topic);
    if (!parts) {
      parts = newLogs(options.defaultPartitions ?? 1);
      topics.set(topic, parts);
    }
    return parts;
  }

  /**
   * Releases what nobody can ask for any more: below the lowest committed offset of the groups
   * holding the partition, or, when no group holds it, all but the newest `retainRecords`.
   */
  function trim(topic: string, partition: number): void {
    const log = topics.get(topic)?.[partition];
    if (!log || log.size === 0) return;
    const slot = slotKey(topic, partition);
    let floor = Number.POSITIVE_INFINITY;
    for (const group of groups.values()) {
      if (!group.members.some((m) => m.topics.has(topic))) continue;
      // A member that has not been handed this partition yet sets its group's position on its first
      // pump; until then the group holds everything retained.
      const committed = group.committed.get(slot);
      floor = Math.min(floor, committed ?? log.start);
    }
    log.releaseBelow(Number.isFinite(floor) ? floor : log.end - retainRecords);
  }

  function trimTopic(topic: string): void {
    topics.get(topic)?.forEach((_, p) => trim(topic, p));
  }

  const active = (m: Member) => !m.closed && !m.failed && !m.left;

  function rebalance(group: Group): void {
    // A failed member keeps its partitions until it closes, as a stuck Kafka consumer does.
    const live = group.members.filter((m) => !m.closed && !m.left);
    const next = new Map<Member, Set<string>>(group.members.map((m) => [m, new Set<string>()]));
    const allTopics = new Set(live.flatMap((m) => [...m.topics]));
    let i = 0;
    for (const t of allTopics) {
      const candidates = live.filter((m) => m.topics.has(t));
      if (candidates.length === 0) continue;
      topicLog(t).forEach((_, p) =>
        next.get(candidates[i++ % candidates.length] as Member)?.add(slotKey(t, p)),
      );
    }
    for (const m of group.members) {
      const owned = next.get(m) ?? new Set<string>();
      for (const slot of m.owned) {
        if (owned.has(slot)) continue;
        // Revoked: queued messages are the next owner's now; running ones finish uncommitted.
        m.scheduler.cancelQueued((tag) => tag === slot);
        m.watermarks.drop(slot);
      }
      m.owned = owned;
    }
    for (const m of live) {
      m.joined = true;
      pumpMember(group, m);
    }
  }

  function pumpMember(group: Group, member: Member): void {
    for (const slot of member.owned) pump(group, member, slot);
  }

  /** Hands the owner of a partition its next records while its scheduler has room. */
  function pump(group: Group, member: Member, slot: string): void {
    const { topic, partition } = parseSlot(slot);
    const log = topicLog(topic)[partition];
    if (!log) return;
    while (active(member) && member.owned.has(slot)) {
      if (!member.scheduler.hasRoom()) {
        waitForRoom(group, member);
        return;
      }
      let next = member.watermarks.nextOffset(slot);
      if (next === undefined) {
        let committed = group.committed.get(slot);
        // No position yet, or one released while the group had no members: start like a new group.
        if (committed === undefined || committed < log.start) {
          committed = member.options.fromBeginning ? log.start : log.end;
          group.committed.set(slot, committed);
        }
        next = BigInt(committed);
      }
      const record = log.get(Number(next));
      if (!record) return;
      const ticket = member.watermarks.track(slot, next);
      if (!ticket) return;
      const message: BusMessage = {
        topic,
        partition,
        offset: String(next),
        key: record.key,
        value: record.value,
        headers: { ...record.headers },
        timestamp: record.timestamp,
      };
      member.scheduler.submit({
        lane: laneKey(member.consumption.ordering, slot, record.key),
        tag: slot,
        item: message,
        run: async () => {
          // A macrotask boundary before each message, as a network consumer would have.
          await new Promise((resolve) => setImmediate(resolve));
          // Not started yet: after close or a failure it stays unfinished (redelivered).
          if (member.closed || member.failed || member.left) return;
          try {
            await member.options.handler(message);
          } catch (err) {
            fail(member, err);
            return;
          }
          const watermark = member.watermarks.finish(ticket);
          if (watermark !== undefined && !member.left && member.owned.has(slot)) {
            group.committed.set(slot, Number(watermark));
            trim(topic, partition);
          }
        },
      });
    }
  }

  function waitForRoom(group: Group, member: Member): void {
    if (member.waitingForRoom) return;
    member.waitingForRoom = true;
    void member.scheduler.room().then(() => {
      member.waitingForRoom = false;
      pumpMember(group, member);
    });
  }

  function fail(member: Member, err: unknown): void {
    if (member.failed) return;
    member.failed = true;
    member.scheduler.stop();
    crashed = true;
    options.onFatal?.(err instanceof Error ? err : new Error(String(err)));
  }

  function leave(group: Group, member: Member): Promise<void> {
    return (member.leaving ??= drainAndLeave(group, member));
  }

  async function drainAndLeave(group: Group, member: Member): Promise<void> {
    member.closed = true;
    member.scheduler.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      member.scheduler.idle(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, member.consumption.drainTimeoutMs))),
    ]);
    clearTimeout(timer);
    member.left = true;
    group.members = group.members.filter((m) => m !== member);
    for (const slot of member.owned) member.watermarks.drop(slot);
    member.owned.clear();
    rebalance(group);
    // A group left without members holds nothing any more.
    for (const topic of member.topics) trimTopic(topic);
  }

  const bus: MemoryBus = {
    kind: 'memory',
    async connect() {
      connected = true;
    },
    async ensureTopics(specs: TopicSpec[]) {
      for (const { topic, partitions } of specs) {
        if (!topics.has(topic)) topics.set(topic, newLogs(partitions));
      }
    },
    async publish(topic: string, records: BusRecord[]) {
      if (!connected) throw new Error('memory bus is not connected');
      const parts = topicLog(topic);
      const touched = new Set<number>();
      for (const r of records) {
        const p = partitionFor(r.key, parts.length);
        parts[p]?.append({ key: r.key, value: r.value, headers: r.headers ?? {}, timestamp: Date.now() });
        touched.add(p);
      }
      for (const group of groups.values()) {
        for (const m of group.members) for (const p of touched) pump(group, m, slotKey(topic, p));
      }
      // Only a partition nobody holds can have grown past what it may keep.
      for (const p of touched) trim(topic, p);
    },
    async subscribe(subOptions: SubscribeOptions): Promise<Subscription> {
      const consumption = resolveConsumption(subOptions);
      const observer = subOptions.onWaitingChange;
      let group = groups.get(subOptions.groupId);
      if (!group) {
        group = { committed: new Map(), members: [] };
        groups.set(subOptions.groupId, group);
      }
      for (const t of subOptions.topics) topicLog(t);
      const member: Member = {
        topics: new Set(subOptions.topics),
        options: subOptions,
        consumption,
        owned: new Set(),
        watermarks: createOffsetWatermarks(),
        scheduler: createLaneScheduler<BusMessage>({
          concurrency: consumption.concurrency,
          maxQueued: consumption.maxQueued,
          onTaskError: (err) => fail(member, err),
          ...(observer ? { onWaitingChange: () => observer(() => member.scheduler.waiting()) } : {}),
        }),
        closed: false,
        left: false,
        failed: false,
        joined: false,
        waitingForRoom: false,
        leaving: undefined,
      };
      const g = group;
      g.members.push(member);
      rebalance(g);
      return {
        get ready() {
          return member.joined && !member.failed && !member.closed;
        },
        close: once(() => leave(g, member)),
      };
    },
    healthy: () => connected && !crashed,
    health: () =>
      crashed ? failing('a consumer failed for good') : connected ? OK : failing('not connected'),
    retention: (topic) =>
      (topics.get(topic) ?? []).map((log, partition) => ({ partition, start: log.start, end: log.end })),
    async consumerLag(groupId: string, wanted: string[]): Promise<PartitionLag[]> {
      const committed = groups.get(groupId)?.committed;
      // What the group still has to read of what is retained: a position below the log's start
      // (released while the group had no members) counts from the start, where it resumes.
      return wanted.flatMap((topic) =>
        topicLog(topic).map((log, partition) => ({
          topic,
          partition,
          lag: log.end - Math.max(committed?.get(slotKey(topic, partition)) ?? log.start, log.start),
        })),
      );
    },
    close: once(async () => {
      connected = false;
      await Promise.all([...groups.values()].flatMap((g) => [...g.members].map((m) => leave(g, m))));
    }),
  };
  return bus;
}
