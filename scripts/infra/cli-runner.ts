import { InfraError } from './errors.js';

export type Command = (args: readonly string[]) => Promise<void>;

/**
 * The command dispatch both `npm run infra` and `npm run stack` share: usage on no/unknown command,
 * one `[prefix] error:` line (plus an InfraError's details, e.g. a log tail) on failure. Returns the
 * exit code; `onFailure` may print a hint for the command that failed.
 */
export async function runCli(
  prefix: string,
  usage: string,
  commands: Readonly<Record<string, Command>>,
  argv: readonly string[],
  onFailure?: (command: string) => void,
): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.error(usage);
    return command === undefined ? 2 : 0;
  }
  const handler = commands[command];
  if (!handler) {
    console.error(`[${prefix}] error: unknown command "${command}"\n${usage}`);
    return 2;
  }
  try {
    await handler(args);
    return 0;
  } catch (error) {
    console.error(`[${prefix}] error: ${error instanceof Error ? error.message : String(error)}`);
    if (error instanceof InfraError && error.details) console.error(error.details.replace(/^/gm, '  | '));
    onFailure?.(command);
    return 1;
  }
}
