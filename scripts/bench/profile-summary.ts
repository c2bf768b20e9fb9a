/**
 * npm run bench:profile -- <file.cpuprofile | dir> [--top 25]
 *
 * Self time by function (and by package) of V8 CPU profiles, as written by `node --cpu-prof`
 * (`npm run bench -- --profile` runs the services that way): the text form of a flame graph's
 * widest frames, to find what dominates a hot path. Open the file in Chrome DevTools or speedscope
 * for the full graph.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});
const top = Number(values.top);

/** Where a frame's code lives: a package name, `node:` internals, or the repo path. */
function origin(url: string): string {
  if (url === '') return '(native/vm)';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  return /\/work\/[^/]+\/([^/]+\/(?:src\/)?)/.exec(url)?.[1] ?? url;
}

async function summarize(file: string): Promise<void> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs.entries()]
    .filter(([id]) => ['(idle)', '(program)'].includes(byId.get(id)?.callFrame.functionName ?? ''))
    .reduce((a, [, us]) => a + us, 0);
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || ['(idle)', '(program)'].includes(frame.functionName)) continue;
    const where = frame.url ? `${frame.url.replace(/^.*\/work\/[^/]+\//, '')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    byOrigin.set(origin(frame.url), (byOrigin.get(origin(frame.url)) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)}%`;
  console.log(
    `\n== ${basename(file)}: ${(busy / 1e6).toFixed(2)} s busy of ${(total / 1e6).toFixed(2)} s sampled`,
  );
  console.log('-- by package');
  for (const [name, us] of [...byOrigin].sort((a, b) => b[1] - a[1]).slice(0, 12))
    console.log(`${pct(us)}  ${name}`);
  console.log('-- by function (self time)');
  for (const [name, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${pct(us)}  ${name}`);
}

for (const path of positionals) {
  const files = (await stat(path)).isDirectory()
    ? (await readdir(path)).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f))
    : [path];
  for (const file of files) await summarize(file);
}
