// The vite configuration of the browser example, as a function so that the e2e tests
// (test/e2e/browser/web-page.test.ts, charlm.test.ts) can point the page at a module and a
// checkpoint folder of their own.
// - `tfc/runtime` (what a generated model.ts imports) resolves to the runtime's TypeScript sources,
//   which vite bundles for the browser (an app outside this repository installs tfc instead).
// - The page imports `../../out/web/model.js` (from `tfc compile MODEL.tfx -o out/web`); `model`
//   redirects that import to another compiled model.ts.
// - The files of a checkpoint folder are served next to the page under checkpoint/ (the page's
//   "served files" button): `checkpoint` or $TFC_CHECKPOINT names the folder; without either it is
//   charlm's (examples/charlm: charlm.safetensors served as model.safetensors, its character
//   vocab.json). A name the folder lacks is a 404 (the page's "no such file"), never the SPA's
//   index.html. `vite build` copies the same files into dist/checkpoint/.
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin, UserConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

/** Served name -> file on disk. */
function checkpointFiles(folder: string | undefined): Map<string, string> {
  if (folder === undefined) {
    return new Map([
      ['model.safetensors', `${repo}examples/charlm/charlm.safetensors`],
      ['vocab.json', `${repo}examples/charlm/vocab.json`],
    ]);
  }
  const dir = resolve(folder);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`checkpoint folder ${dir} does not exist`);
  return new Map(readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => [e.name, join(dir, e.name)]));
}

function checkpointAssets(files: ReadonlyMap<string, string>): Plugin {
  return {
    name: 'tfc-checkpoint-files',
    configureServer(server) {
      server.middlewares.use('/checkpoint/', (req, res) => {
        const name = decodeURIComponent((req.url ?? '').replace(/^\//, '').split('?')[0] ?? '');
        const path = files.get(name);
        if (path === undefined) {
          res.statusCode = 404;
          res.end(`no ${name} in the served checkpoint folder`);
          return;
        }
        res.setHeader('content-type', name.endsWith('.json') ? 'application/json' : name.endsWith('.txt') ? 'text/plain' : 'application/octet-stream');
        res.setHeader('content-length', String(statSync(path).size));
        createReadStream(path).pipe(res);
      });
    },
    generateBundle() {
      for (const [name, path] of files) this.emitFile({ type: 'asset', fileName: `checkpoint/${name}`, source: readFileSync(path) });
    },
  };
}

export function webConfig(opts: { model?: string; checkpoint?: string } = {}): UserConfig {
  const alias: { find: string | RegExp; replacement: string }[] = [{ find: /^tfc\/runtime$/, replacement: `${repo}src/runtime/index.ts` }];
  if (opts.model !== undefined) alias.push({ find: /^(\.\.\/)+out\/web\/model(\.js|\.ts)?$/, replacement: opts.model });
  return {
    root: here,
    // No SPA fallback: a file the served checkpoint lacks (config.json for charlm) must be a 404,
    // not index.html with status 200 (which the page would try to parse as that file).
    appType: 'mpa',
    publicDir: false,
    plugins: [checkpointAssets(checkpointFiles(opts.checkpoint ?? process.env['TFC_CHECKPOINT']))],
    resolve: { alias },
    server: { host: '127.0.0.1', fs: { allow: [repo] } },
    preview: { host: '127.0.0.1' },
    build: { outDir: `${here}dist`, emptyOutDir: true, target: 'es2022' },
  };
}
