// Packs what the device machine needs to run tfc's CUDA paths (it has nvcc and PyTorch but no Node
// and no network): builds dist/ here, then writes .devpack/devpack.tar.xz holding this machine's
// `node` binary and the packages the CLI and vitest load (the dependency closure of commander,
// chevrotain, vitest, ts-morph and prettier, ~40 MiB compressed, under the 64 MiB a device call may carry).
//   node bench/cuda/device-pack.mjs
// Then one device call (carry: ["dist", ".devpack"]) starts with
//   python3 -c "import tarfile; tarfile.open('.devpack/devpack.tar.xz').extractall('/tmp/dp')" &&
//   export PATH=/tmp/dp/bin:$PATH && rm -f node_modules && ln -s /tmp/dp/node_modules node_modules && ...
// (docs/cuda.md, "Never run on a GPU yet", has the whole command.)
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, appendFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
process.chdir(root);
execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });

// .devpack/ stays out of git (info/exclude of this worktree's repository).
const exclude = execFileSync('git', ['rev-parse', '--git-path', 'info/exclude'], { encoding: 'utf8' }).trim();
if (!existsSync(exclude) || !readFileSync(exclude, 'utf8').split('\n').includes('/.devpack/')) appendFileSync(exclude, '\n/.devpack/\n');

/** Package names reachable from `roots` through dependencies and optionalDependencies (hoisted layout). */
function closure(roots) {
  const seen = new Set();
  const stack = [...roots];
  while (stack.length > 0) {
    const name = stack.pop();
    const pj = join('node_modules', name, 'package.json');
    if (seen.has(name) || !existsSync(pj)) continue;
    seen.add(name);
    const j = JSON.parse(readFileSync(pj, 'utf8'));
    stack.push(...Object.keys({ ...(j.dependencies ?? {}), ...(j.optionalDependencies ?? {}) }));
  }
  return [...seen].sort();
}

const stage = join(root, '.devpack', 'stage');
rmSync(join(root, '.devpack'), { recursive: true, force: true });
mkdirSync(join(stage, 'bin'), { recursive: true });
cpSync(process.execPath, join(stage, 'bin', 'node'));
// ts-morph and prettier: `tfc compile -o DIR` writes model.ts (test/cuda/print.test.ts does).
const packages = closure(['commander', 'chevrotain', 'vitest', 'ts-morph', 'prettier']);
for (const p of packages) cpSync(join('node_modules', p), join(stage, 'node_modules', p), { recursive: true, dereference: true });
execFileSync('tar', ['-cJf', join(root, '.devpack', 'devpack.tar.xz'), '-C', stage, 'bin', 'node_modules'], { stdio: 'inherit', env: { ...process.env, XZ_OPT: '-6 -T2' } });
rmSync(stage, { recursive: true, force: true });
const size = Number(execFileSync('du', ['-sb', join(root, '.devpack')], { encoding: 'utf8' }).split('\t')[0]);
console.log(`.devpack/devpack.tar.xz: node ${process.version} + ${packages.length} packages, ${(size / 2 ** 20).toFixed(1)} MiB`);
