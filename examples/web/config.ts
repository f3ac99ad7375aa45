// The vite configuration of the browser example, as a function so that the e2e test
// (test/e2e/browser/charlm.test.ts) can point the page at a module it compiled itself.
// - `tfc/runtime` (what a generated model.ts imports) resolves to the runtime's TypeScript sources,
//   which vite bundles for the browser (an app outside this repository installs tfc instead).
// - The page imports `../../out/charlm/model.js` (from `tfc compile ... -o out/charlm`); `model`
//   redirects that import to another compiled model.ts.
// - The page fetches charlm.safetensors and vocab.json from examples/charlm/: served as they are by
//   the dev server, copied next to index.html by `vite build`.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Plugin, UserConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

const assets = ['charlm.safetensors', 'vocab.json'];

function charlmAssets(): Plugin {
  return {
    name: 'charlm-assets',
    configureServer(server) {
      for (const name of assets) {
        server.middlewares.use(`/${name}`, (_req, res) => {
          const bytes = readFileSync(`${repo}examples/charlm/${name}`);
          res.setHeader('content-type', name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
          res.setHeader('content-length', String(bytes.length));
          res.end(bytes);
        });
      }
    },
    generateBundle() {
      for (const name of assets) this.emitFile({ type: 'asset', fileName: name, source: readFileSync(`${repo}examples/charlm/${name}`) });
    },
  };
}

export function webConfig(opts: { model?: string } = {}): UserConfig {
  const alias: { find: string | RegExp; replacement: string }[] = [{ find: /^tfc\/runtime$/, replacement: `${repo}src/runtime/index.ts` }];
  if (opts.model !== undefined) alias.push({ find: /^(\.\.\/)+out\/charlm\/model(\.js|\.ts)?$/, replacement: opts.model });
  return {
    root: here,
    publicDir: false,
    plugins: [charlmAssets()],
    resolve: { alias },
    server: { host: '127.0.0.1', fs: { allow: [repo] } },
    preview: { host: '127.0.0.1' },
    build: { outDir: `${here}dist`, emptyOutDir: true, target: 'es2022' },
  };
}
