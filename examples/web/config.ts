// The vite configuration of the browser example, as a function so that the e2e test
// (test/e2e/browser/charlm.test.ts) can point the page at a module it compiled itself.
// - `tfc/runtime` (what a generated model.ts imports) resolves to the runtime's TypeScript sources,
//   which vite bundles for the browser (an app outside this repository installs tfc instead).
// - The page imports `../../out/charlm/model.js` (from `tfc compile ... -o out/charlm`); `model`
//   redirects that import to another compiled model.ts.
// - examples/charlm/ is the public folder: the page fetches charlm.safetensors and vocab.json.
import { fileURLToPath } from 'node:url';
import type { UserConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

export function webConfig(opts: { model?: string } = {}): UserConfig {
  const alias: { find: string | RegExp; replacement: string }[] = [{ find: /^tfc\/runtime$/, replacement: `${repo}src/runtime/index.ts` }];
  if (opts.model !== undefined) alias.push({ find: /^(\.\.\/)+out\/charlm\/model(\.js|\.ts)?$/, replacement: opts.model });
  return {
    root: here,
    publicDir: `${repo}examples/charlm`,
    resolve: { alias },
    server: { host: '127.0.0.1', fs: { allow: [repo] } },
    preview: { host: '127.0.0.1' },
    build: { outDir: `${here}dist`, emptyOutDir: true, target: 'es2022' },
  };
}
