import type { TestProject } from 'vitest/node';
import { ensureInstalled, startService, stopService, serviceEndpoints } from '../scripts/infra/harness.js';
export default async function setup(project: TestProject) {
  await ensureInstalled(['kafka', 'redis']);
  const started: string[] = [];
  for (const name of ['kafka', 'redis'] as const) {
    const s = await startService(name, { reportStarted: started });
    void s;
  }
  const ep = serviceEndpoints();
  project.provide('kafkaBrokers', ep.kafkaBrokers);
  project.provide('redisUrl', ep.redisUrl);
  return async () => {
    for (const n of started.reverse()) await stopService(n as 'kafka' | 'redis');
  };
}
declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    redisUrl: string;
  }
}
