/**
 * Build step: the two client-node modules `serve` and `audit` use
 * (dist/config.js: KubeConfig; dist/watch.js: Watch), bundled into
 * dist/vendor/client-node.js without the generated API index.
 *
 * Why: config.js imports `./gen/index.js` for two small names
 * (createConfiguration, ServerConfiguration), and that index loads every
 * generated model and API class, about 50 MB of heap in every replica that
 * our few calls never touch. Here that one import is pointed at a module
 * that re-exports the two names from their own files. Everything else is
 * client-node's code as installed; other packages stay ordinary imports,
 * resolved from node_modules at run time. Nothing is committed: the bundle
 * is made from the pinned dependency by `npm run build`.
 */
import { build } from 'esbuild';

const CLIENT_NODE = '@kubernetes/client-node/dist/';

const leanGenIndex = {
  name: 'lean-gen-index',
  setup(b) {
    b.onResolve({ filter: /^\.\/gen\/index\.js$/ }, (args) =>
      args.importer.endsWith(`${CLIENT_NODE.replace(/\//g, '/')}config.js`) ? { path: 'gen-index', namespace: 'lean' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lean' }, () => ({
      contents: [
        `export { createConfiguration } from '${CLIENT_NODE}gen/configuration.js';`,
        `export { ServerConfiguration } from '${CLIENT_NODE}gen/servers.js';`,
      ].join('\n'),
      resolveDir: process.cwd(),
    }));
    // Other packages (node-fetch, js-yaml, openid-client…) and client-node's own gen/ files stay imports.
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path === `${CLIENT_NODE}config.js` || args.path === `${CLIENT_NODE}watch.js`) return undefined;
      return { path: args.path, external: true };
    });
  },
};

await build({
  stdin: {
    contents: `export { KubeConfig } from '${CLIENT_NODE}config.js';\nexport { Watch } from '${CLIENT_NODE}watch.js';\n`,
    resolveDir: process.cwd(),
    sourcefile: 'client-node-lean.js',
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: 'dist/vendor/client-node.js',
  plugins: [leanGenIndex],
  logLevel: 'warning',
  legalComments: 'inline',
});
