/** A whole-number command-line option within [min, max]; exits 2 with one line naming it otherwise. */
export function intOption(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`--${name} must be an integer ${min}-${max} (got ${String(text)})\n`);
    process.exit(2);
  }
  return n;
}
