/** What client-node's config.js takes from `./gen/index.js`, without the rest of that index (see lean-import-hook.ts). */
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
