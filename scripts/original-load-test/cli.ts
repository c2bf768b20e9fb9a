/**
 * npm run load-test:original -- [--url http://127.0.0.1:8080] [--clients 100] [--messages 10]
 *
 * The original project's load test against a running relay (`npm start` with its defaults): exits 0
 * on PASS, 1 on FAIL, and prints the figures it judged by.
 */
import { parseArgs } from 'node:util';
import { runOriginalLoadTest } from './original-load-test.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    clients: { type: 'string', default: '100' },
    messages: { type: 'string', default: '10' },
  },
});
const result = await runOriginalLoadTest({
  url: values.url,
  clients: Number(values.clients),
  messagesPerClient: Number(values.messages),
  windowMs: 15_000,
  minRate: 100,
  minAnsweredRatio: 0.95,
  progress: (line) => process.stderr.write(`${line}\n`),
});
console.log(JSON.stringify(result, null, 2));
console.log(result.pass ? 'PASS' : 'FAIL');
process.exit(result.pass ? 0 : 1);
