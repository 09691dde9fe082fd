/**
 * Build step: the two client-node modules `serve` and `audit` use
 * (dist/config.js: KubeConfig; dist/watch.js: Watch), bundled into
 * dist/vendor/client-node.js without the generated API index.
 *
 * Why: config.js imports `./gen/index.js` for two small names
 * (createConfiguration, ServerConfiguration), and that index loads every
 * generated model and API class, about 50 MB of heap in every replica that
 * our few calls never touch. Here that one import is pointed at a module
 * that re-exports the two names from their own files, and node-fetch (which
 * both modules use) is bundled without whatwg-url, which it never uses on
 * Node (see below). Everything else is the packages' code as installed;
 * other packages stay ordinary imports, resolved from node_modules at run
 * time. Nothing is committed: the bundle
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
    b.onLoad({ filter: /.*/, namespace: 'lean' }, (args) =>
      args.path === 'whatwg-url'
        ? { contents: 'module.exports = { URL: globalThis.URL };', loader: 'js' }
        : {
            contents: [
              `export { createConfiguration } from '${CLIENT_NODE}gen/configuration.js';`,
              `export { ServerConfiguration } from '${CLIENT_NODE}gen/servers.js';`,
            ].join('\n'),
            resolveDir: process.cwd(),
          },
    );
    // node-fetch 2 imports whatwg-url but uses Node's own URL whenever it exists (`Url.URL || whatwgUrl.URL`,
    // always Node's here); loading whatwg-url parses tr46's 260 KB mapping table, 10 MB of heap and more at
    // peak. node-fetch is bundled so that import can get Node's URL instead.
    b.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: 'whatwg-url', namespace: 'lean' }));
    // client-node's files (including gen/configuration.js, which imports node-fetch too) are bundled; other packages stay imports.
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path.startsWith(CLIENT_NODE) || args.path === 'node-fetch') return undefined;
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
  // node-fetch is CommonJS: give its require() calls (node builtins, the optional `encoding`) a require.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
  legalComments: 'inline',
});
