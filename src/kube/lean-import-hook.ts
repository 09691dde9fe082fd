/**
 * A module resolve hook (node:module register) used by `serve` and `audit`
 * when they connect to a cluster. client-node's `dist/config.js` (the
 * KubeConfig class) imports `./gen/index.js` for two small names, and that
 * index loads every generated model and API class: about 50 MB of heap per
 * replica that we never use. The hook points that one import at
 * client-node-gen.js, which re-exports the two names from their own
 * modules. Nothing else is redirected.
 */
const LEAN_GEN = new URL('./client-node-gen.js', import.meta.url).href;
const CONFIG_MODULE = '/@kubernetes/client-node/dist/config.js';

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === './gen/index.js' && context.parentURL?.endsWith(CONFIG_MODULE)) return { url: LEAN_GEN, shortCircuit: true };
  return next(specifier, context);
}
