import type { ServiceDefinition } from '../../infra/harness.js';
import { jwtSecret, nodeService } from '../../stack/services.js';

/**
 * The baseline gateway for the infra harness (start/stop by pid, ready on `/ready`), beside the
 * stack's uWS gateways: same JWT secret, so one token works on both, and the same proxy setting.
 */
export const baselineGateway: ServiceDefinition = nodeService({
  name: 'baseline-gateway',
  port: { variable: 'BASELINE_GATEWAY_PORT', port: 8083 },
  entry: 'scripts/bench/baseline-gateway/main.ts',
  readyPath: '/ready',
  async env(context) {
    return { JWT_SECRET: await jwtSecret(context.env), TRUST_PROXY: 'true' };
  },
});
