/**
 * npm run dlq -- list   [--topic <dlq topic>] [--limit N]
 * npm run dlq -- replay [--topic <dlq topic>] [--limit N] [--dry-run]
 *
 * Broker: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092). Without --topic both DLQ topics of
 * SPEC §3 are used. Reads from the beginning up to where each topic ends now, then stops.
 */
import { parseArgs } from 'node:util';
import {
  DLQ_TOPICS,
  formatDeadLetter,
  listDeadLetters,
  ReplayError,
  replayDeadLetters,
  type ReplaySummary,
} from './dlq.js';

const USAGE = `usage: npm run dlq -- <command> [options]
  list     print dead letters, one line each (time, source topic/partition@offset, key, error, value)
  replay   re-publish each dead letter's original key and value to its source topic

options:
  --topic <name>   DLQ topic (default: ${DLQ_TOPICS.join(' and ')})
  --limit <N>      at most N records per topic (list default: 100; replay default: all)
  --dry-run        replay: say what would be published, publish nothing

broker: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092)`;

class UsageError extends Error {}

function parseLimit(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--limit must be a positive integer (got "${raw}")`);
  return n;
}

function printSummary(s: ReplaySummary): void {
  const targets = Object.entries(s.byTarget)
    .map(([topic, n]) => `${topic}: ${n}`)
    .join(', ');
  console.log(
    `${s.topic}: read ${s.read}, ${s.dryRun ? 'would replay' : 'replayed'} ${s.replayed}, skipped ${s.skipped}${targets ? ` (${targets})` : ''}`,
  );
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        topic: { type: 'string' },
        limit: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const [command] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const brokers = (process.env.KAFKA_BOOTSTRAP_SERVERS ?? '127.0.0.1:9092')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  const topics = values.topic ? [values.topic] : [...DLQ_TOPICS];
  const onWarning = (message: string) => console.error(`[dlq] warning: ${message}`);

  if (command === 'list') {
    const limit = parseLimit(values.limit, 100);
    for (const topic of topics) {
      const { result, letters } = await listDeadLetters({ brokers, topic, limit, onWarning });
      if (!result.exists) {
        console.log(`${topic}: no such topic (nothing dead-lettered yet)`);
        continue;
      }
      console.log(
        `${topic}: ${letters.length} record(s)${letters.length === limit ? ` (first ${limit})` : ''}`,
      );
      for (const letter of letters) console.log(`  ${formatDeadLetter(letter)}`);
    }
    return 0;
  }

  if (command === 'replay') {
    const limit = parseLimit(values.limit, Number.POSITIVE_INFINITY);
    const dryRun = values['dry-run'];
    for (const topic of topics) {
      try {
        const summary = await replayDeadLetters({
          brokers,
          topic,
          limit,
          dryRun,
          onWarning,
          onProgress: ({ letter, action, target, reason }) => {
            const at = `${letter.dlqTopic}/${letter.partition}@${letter.offset}`;
            const key = letter.record?.key ?? letter.key ?? '(none)';
            console.log(
              action === 'skipped'
                ? `  skipped      ${at}: ${reason ?? ''}`
                : `  ${action === 'replayed' ? 'replayed    ' : 'would replay'} ${at} → ${target ?? '?'} key=${key}`,
            );
          },
        });
        printSummary(summary);
      } catch (err) {
        if (err instanceof ReplayError) printSummary(err.summary);
        throw err;
      }
    }
    return 0;
  }

  throw new UsageError(`unknown command "${command}"\n${USAGE}`);
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(`[dlq] ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
