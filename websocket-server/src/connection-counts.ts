/** The connection caps of one gateway (`MAX_CONNECTIONS*`). */
export interface ConnectionLimits {
  maxConnectionsPerUser: number;
  maxConnectionsPerIp: number;
  maxConnections: number;
}

/** Why an upgrade is over a cap: the reason in the 429/503 answer and the rejection metric. */
export type OverLimit =
  | { status: 429; reason: 'too_many_connections' | 'too_many_connections_from_ip' }
  | { status: 503; reason: 'server_full' };

/**
 * Connections a gateway holds, counted from the moment an upgrade is admitted (before the 101
 * goes out) until the socket closed or the upgrade was given up. Counting at admission, not at
 * open, means concurrent upgrades of one user or IP cannot all pass the check before any counts.
 */
export class ConnectionCounts {
  private total = 0;
  private readonly perUser = new Map<string, number>();
  private readonly perIp = new Map<string, number>();
  private readonly limits: ConnectionLimits;

  constructor(limits: ConnectionLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.total;
  }

  /** Which cap one more connection of `userid` from `ip` would pass, or null. */
  check(userid: string, ip: string): OverLimit | null {
    if (this.total >= this.limits.maxConnections) return { status: 503, reason: 'server_full' };
    if ((this.perIp.get(ip) ?? 0) >= this.limits.maxConnectionsPerIp) {
      return { status: 429, reason: 'too_many_connections_from_ip' };
    }
    if ((this.perUser.get(userid) ?? 0) >= this.limits.maxConnectionsPerUser) {
      return { status: 429, reason: 'too_many_connections' };
    }
    return null;
  }

  add(userid: string, ip: string): void {
    this.total++;
    this.perUser.set(userid, (this.perUser.get(userid) ?? 0) + 1);
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
  }

  /** Call once per `add` (the connection's `closed()` says when it is the first time). */
  remove(userid: string, ip: string): void {
    this.total--;
    decrement(this.perUser, userid);
    decrement(this.perIp, ip);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
