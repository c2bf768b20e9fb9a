// zod/mini as in http-api.ts: `npm run stack -- status` reads this through `@relay/common/ops`
// and should not load the whole of zod (nor the rest of `@relay/common`) to print a table.
import * as z from 'zod/mini';

/**
 * The ops answers every service gives on its HTTP port (SPEC §2: `/health`, `/ready`,
 * `/metrics`). `/ready` is read by machines (load balancers, `npm run stack -- status`, the soak
 * test) and by people during an incident, so it names each dependency and why it fails.
 */

/** One dependency as `/ready` reports it. `reason` only when failing; it never holds a secret. */
export const dependencyStatusSchema = z.object({
  status: z.enum(['ok', 'failing']),
  reason: z.optional(z.string()),
});
export type DependencyStatus = z.infer<typeof dependencyStatusSchema>;

/**
 * `GET /ready`: 200 with `status: "ready"`, or 503 with `status: "not_ready"` and `failing` listing
 * the checks that fail (in `checks` order). Loose: a service may add fields.
 */
export const readyBodySchema = z.looseObject({
  status: z.enum(['ready', 'not_ready']),
  service: z.string(),
  failing: z.array(z.string()),
  checks: z.record(z.string(), dependencyStatusSchema),
});
export type ReadyBody = z.infer<typeof readyBodySchema>;
