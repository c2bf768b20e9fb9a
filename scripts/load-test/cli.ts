/**
 * npm run load-test -- [--preset 100x10] [--url http://127.0.0.1:8080] [--users N] [--messages M]
 *   [--rate msgs/s] [--no-stream] [--duration s] [--grace s] [--connect-rate n/s]
 *   [--source-addresses 127.0.0.1-127.0.0.8] [--token-source post|secret:<file>] [--json out.json]
 *   [--model-ttft-ms T --model-token-ms I]   (the mock's settings: report the pipeline's own cost)
 *
 * Works against `npm start`, the local stack (nginx on :8080) or any deployment of the protocol.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runLoadTest } from './load-test.js';
import { PRESETS, expandAddresses, loadTestOptionsSchema, type PresetName } from './options.js';
import { formatTable } from './stats.js';

const { values } = parseArgs({
  options: {
    preset: { type: 'string' },
    url: { type: 'string' },
    users: { type: 'string' },
    messages: { type: 'string' },
    rate: { type: 'string' },
    'no-stream': { type: 'boolean' },
    duration: { type: 'string' },
    grace: { type: 'string' },
    'connect-rate': { type: 'string' },
    'source-addresses': { type: 'string' },
    'token-source': { type: 'string' },
    'content-length': { type: 'string' },
    'model-ttft-ms': { type: 'string' },
    'model-token-ms': { type: 'string' },
    json: { type: 'string' },
  },
});

const preset = values.preset ? PRESETS[values.preset as PresetName] : undefined;
if (values.preset && !preset) {
  console.error(`unknown preset ${values.preset}; one of ${Object.keys(PRESETS).join(', ')}`);
  process.exit(2);
}
const parsed = loadTestOptionsSchema.safeParse({
  ...preset,
  ...(values.url && { url: values.url }),
  ...(values.users && { users: values.users }),
  ...(values.messages && { messages: values.messages }),
  ...(values.rate && { rate: values.rate }),
  ...(values['no-stream'] && { stream: false }),
  ...(values.duration && { duration: values.duration }),
  ...(values.grace && { grace: values.grace }),
  ...(values['connect-rate'] && { connectRate: values['connect-rate'] }),
  ...(values['source-addresses'] && { sourceAddresses: expandAddresses(values['source-addresses']) }),
  ...(values['token-source'] && { tokenSource: values['token-source'] }),
  ...(values['content-length'] && { contentLength: values['content-length'] }),
  ...(values['model-ttft-ms'] && { modelTtftMs: values['model-ttft-ms'] }),
  ...(values['model-token-ms'] && { modelTokenMs: values['model-token-ms'] }),
  ...(values.json && { json: values.json }),
});
if (!parsed.success) {
  const issue = parsed.error.issues[0];
  console.error(`load-test: --${String(issue?.path[0] ?? 'options')}: ${issue?.message}`);
  process.exit(2);
}
const options = parsed.data;
process.stderr.write(
  `[load] ${options.users} users × ${options.messages} messages at ${options.rate || 'max'}/s against ${options.url} (stream ${options.stream ? 'on' : 'off'}, at most ${options.duration}s)\n`,
);
const result = await runLoadTest(options, (line) => process.stderr.write(`${line}\n`));
const m = result.messages;
console.log(
  `\nconnections: ${result.connections.open}/${result.connections.attempted} open, ${result.connections.failed} failed ${JSON.stringify(result.connections.failures)}, closed by server ${JSON.stringify(result.connections.closedByServer)}`,
);
console.log(
  `messages: sent ${m.sent}, acked ${m.acked}, answered ${m.answered}, lost ${m.lost}, unanswered ${m.unanswered}, errors ${JSON.stringify(m.errors)}`,
);
console.log(
  `achieved rate: ${result.achievedRate.toFixed(1)} msgs/s; frames received: ${result.framesPerSecond.toFixed(1)}/s; ${result.durationS.toFixed(1)} s\n`,
);
console.log(
  formatTable({
    connect: result.latencyMs.connect,
    ack: result.latencyMs.ack,
    'first delta': result.latencyMs.firstDelta,
    'delta gap': result.latencyMs.deltaGap,
    final: result.latencyMs.final,
  }),
);
if (result.overheadMs) {
  console.log('\npipeline overhead (model time subtracted):');
  console.log(
    formatTable({
      'first delta': result.overheadMs.firstDelta,
      'delta gap': result.overheadMs.deltaGap,
      final: result.overheadMs.final,
    }),
  );
}
if (options.json) await writeFile(options.json, `${JSON.stringify(result, null, 2)}\n`);
process.exitCode = m.lost > 0 ? 1 : 0;
