/** Receives one human-readable line at a time, already prefixed with `[infra]`. */
export type Progress = (line: string) => void;

/** Progress goes to stderr so `status --json` can own stdout. */
export const stderrProgress: Progress = (line) => {
  process.stderr.write(`${line}\n`);
};

export function scoped(progress: Progress, scope: string): (message: string) => void {
  return (message) => progress(`[infra] ${scope}: ${message}`);
}

export function seconds(sinceMs: number): string {
  return `${((performance.now() - sinceMs) / 1000).toFixed(1)}s`;
}
