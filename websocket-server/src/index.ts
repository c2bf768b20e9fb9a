export * from './config.js';
export { createGateway, type Gateway, type GatewayDeps } from './gateway.js';
export { createTokenService, type TokenService } from './token-service.js';
export { loadStaticFiles, type StaticFile } from './static-files.js';
export { loadUws, type Uws } from './uws.js';
export { loadSites, originAllowed, type Site, type Sites, type SitesFile } from './sites/sites.js';
