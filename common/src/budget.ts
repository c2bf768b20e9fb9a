import { REDIS_KEYS } from './contract/redis-keys.js';
import type { KeyValueStore } from './transport/store.js';

/** The UTC day a daily budget counts in, `YYYY-MM-DD`. */
export function utcDay(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 10);
}

/** Counters outlive their day by a day, so a request that straddles midnight still finds its own. */
const COUNTER_TTL_MS = 2 * 86_400_000;

/** Whose daily model-token budgets a request spends, and their limits (0: none). */
export interface BudgetScope {
  userid: string;
  site: string | undefined;
  limits: { user: number; site: number };
}

/**
 * Daily model-token budgets per user and per site (docs/identity.md, "Budgets"): the gateway asks
 * before it takes a message, the consumer asks again before the model call and adds what an answer
 * used. Counters are Redis fixed windows keyed by the UTC day.
 */
export interface DailyBudgets {
  /** Which budget is used up, or null. */
  exceeded(scope: BudgetScope, nowMs: number): Promise<'user' | 'site' | null>;
  /** Adds `tokens` to the user's and the site's counters of the day. */
  spend(scope: BudgetScope, tokens: number, nowMs: number): Promise<void>;
}

export function createDailyBudgets(store: KeyValueStore): DailyBudgets {
  const used = async (key: string) => Number((await store.get(key)) ?? 0);
  return {
    async exceeded({ userid, site, limits }, nowMs) {
      const day = utcDay(nowMs);
      const [user, whole] = await Promise.all([
        limits.user > 0 ? used(REDIS_KEYS.userBudget(userid, day)) : 0,
        limits.site > 0 && site !== undefined ? used(REDIS_KEYS.siteBudget(site, day)) : 0,
      ]);
      if (limits.user > 0 && user >= limits.user) return 'user';
      if (limits.site > 0 && whole >= limits.site) return 'site';
      return null;
    },
    async spend({ userid, site }, tokens, nowMs) {
      if (tokens <= 0) return;
      const day = utcDay(nowMs);
      const amount = Math.ceil(tokens);
      // Counted even without a limit: an operator who sets one later sees the day's usage so far.
      await Promise.all([
        store.incrementWindow(REDIS_KEYS.userBudget(userid, day), COUNTER_TTL_MS, amount),
        site !== undefined
          ? store.incrementWindow(REDIS_KEYS.siteBudget(site, day), COUNTER_TTL_MS, amount)
          : undefined,
      ]);
    },
  };
}
