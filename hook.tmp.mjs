const slim = new URL('./slim.tmp.mjs', import.meta.url).href;
export async function resolve(specifier, context, next) {
  if (specifier === './gen/index.js' && context.parentURL && context.parentURL.endsWith('/@kubernetes/client-node/dist/config.js')) return { url: slim, shortCircuit: true };
  return next(specifier, context);
}
