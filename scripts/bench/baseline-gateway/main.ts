/**
 * The baseline gateway as a process: the same environment, transports and shutdown order as
 * websocket-server/src/main.ts (both run `runGatewayProcess`), so a benchmark can run it beside
 * the uWS gateways unchanged. Only the defaults differ: APP_NAME `baseline-gateway` and PORT 8083.
 *
 *   PORT=8083 JWT_SECRET=<same as the gateways> KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \
 *   REDIS_URL=redis://127.0.0.1:6379 SERVER_ID=baseline-gateway \
 *   node --import tsx --conditions=source scripts/bench/baseline-gateway/main.ts
 *
 * or through the harness with `baselineGateway` from ./service.ts (`BASELINE_GATEWAY_PORT`).
 */
import { httpFragment } from '@relay/common';
import { configFragments } from '../../../websocket-server/src/config.js';
import { runGatewayProcess } from '../../../websocket-server/src/gateway-process.js';
import { BASELINE_SERVICE, createBaselineGateway } from './gateway.js';

await runGatewayProcess(
  BASELINE_SERVICE,
  { ...configFragments, http: httpFragment({ service: BASELINE_SERVICE, port: 8083 }) },
  createBaselineGateway,
);
