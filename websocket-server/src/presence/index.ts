export { presenceDefaults, presenceFragment, type PresenceSettings } from './options.js';
export {
  createPresence,
  type Presence,
  type PresenceDeps,
  type PresenceSetResult,
} from './presence-service.js';
export { createPresenceApi, type PresenceAnswer, type PresenceApi } from './presence-api.js';
export { registerPresenceRoutes } from './presence-routes.js';
export { PresenceCache } from './l1-cache.js';
export { presenceView, leaseEnd, type PresenceFields } from './record.js';
