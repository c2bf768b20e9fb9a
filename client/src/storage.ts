/**
 * The part of `localStorage` the client uses. The caller injects it (`window.localStorage`, a
 * `sessionStorage`, a file-backed one in Node, {@link memoryStorage} in tests); the client never
 * reaches for a global one.
 */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A storage that forgets everything with the process: the default, and the tests'. */
export function memoryStorage(): StorageLike & { readonly size: number } {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
    get size() {
      return items.size;
    },
  };
}

/**
 * Reads and writes JSON values under one prefix. A storage that throws (Safari's private mode, a
 * full quota, a blocked third-party frame) only loses persistence, never the chat.
 */
export function storedValues(storage: StorageLike, prefix: string) {
  return {
    get(key: string): unknown {
      try {
        const raw = storage.getItem(`${prefix}:${key}`);
        return raw === null ? undefined : (JSON.parse(raw) as unknown);
      } catch {
        // Unreadable or corrupt: as if nothing had been kept.
        return undefined;
      }
    },
    set(key: string, value: unknown): void {
      try {
        storage.setItem(`${prefix}:${key}`, JSON.stringify(value));
      } catch {
        // Quota or policy: the value lives on in memory for this page only.
        return;
      }
    },
    remove(key: string): void {
      try {
        storage.removeItem(`${prefix}:${key}`);
      } catch {
        return;
      }
    },
  };
}

export type StoredValues = ReturnType<typeof storedValues>;
