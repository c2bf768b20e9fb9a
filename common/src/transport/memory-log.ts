/**
 * One partition of the in-process bus: an append-only log with absolute offsets whose oldest
 * records can be released, as Kafka's log start offset moves up when retention deletes segments.
 * Offsets are never reused: a released offset stays below `start`, a new record always gets `end`.
 */
export interface PartitionLog<T> {
  /** Offset of the oldest retained record (Kafka's log start offset). */
  readonly start: number;
  /** Offset the next record gets (Kafka's high watermark / log end offset). */
  readonly end: number;
  /** Records retained: `end − start`. */
  readonly size: number;
  /** Appends a record and returns its offset. */
  append(record: T): number;
  /** The record at `offset`, or undefined when it was released or does not exist yet. */
  get(offset: number): T | undefined;
  /** Releases every record below `offset` (clamped to `end`); returns how many went. */
  releaseBelow(offset: number): number;
}

/**
 * Released slots are cleared at once (their records can be collected); the array itself is
 * compacted once the released prefix is both large and at least half of it, so releasing costs
 * O(1) amortised and the array never holds more than twice what is retained (plus a constant).
 */
export function createPartitionLog<T>(): PartitionLog<T> {
  let records: Array<T | undefined> = [];
  /** Offset of `records[0]`. */
  let base = 0;
  /** Index in `records` of the oldest retained record. */
  let head = 0;
  const COMPACT_AT = 1024;

  return {
    get start() {
      return base + head;
    },
    get end() {
      return base + records.length;
    },
    get size() {
      return records.length - head;
    },
    append(record) {
      records.push(record);
      return base + records.length - 1;
    },
    get(offset) {
      if (!Number.isInteger(offset) || offset < base + head) return undefined;
      return records[offset - base];
    },
    releaseBelow(offset) {
      const upTo = Math.min(offset, base + records.length) - base;
      if (upTo <= head) return 0;
      const released = upTo - head;
      for (let i = head; i < upTo; i++) records[i] = undefined;
      head = upTo;
      if (head >= COMPACT_AT && head * 2 >= records.length) {
        records = records.slice(head);
        base += head;
        head = 0;
      }
      return released;
    },
  };
}
