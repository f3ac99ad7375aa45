// Process replay for refactors (as tinygrad compares kernels): compiles every example (default and
// small configs) and the tensor-core test models through every printed stage into OUTDIR, in one
// process, so the trees before and after a change can be diffed byte for byte.
// Usage: npx tsc -p tsconfig.json && node bench/codegen-snapshot.mjs OUTDIR   (then diff -r A B)
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { main } from '../dist/src/cli/main.js';

const out = process.argv[2];
if (out === undefined) throw new Error('usage: node bench/codegen-snapshot.mjs OUTDIR');
mkdirSync(out, { recursive: true });

async function tfc(args) {
  let text = '';
  const io = { out: (t) => (text += t), err: (t) => (text += t), env: {} };
  const code = await main(args, io);
  return code === 0 ? text : `${text}\nexit ${code}\n`;
}

// The small configs of test/webgpu/examples.test.ts, limited to the names each file declares.
function small(file) {
  if (file.endsWith('llama-nocache.tfx') || file.endsWith('llama.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('transformer.tfx')) return { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 64 };
  if (file.endsWith('charlm.tfx') || file.endsWith('attention-lse.tfx')) return {};
  return { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
}

const stages = [
  ['ir', ['--emit', 'ir']],
  ['fused', ['--emit', 'fused']],
  ['kernels', ['--emit', 'kernels']],
  ['wgsl', ['--emit', 'wgsl']],
  ['lavapipe.wgsl', ['--emit', 'wgsl', '--limits', 'lavapipe']],
  ['host', ['--emit', 'host']],
  ['nofuse.wgsl', ['--no-fuse', '--emit', 'wgsl']],
  ['cu', ['--target', 'cuda', '--emit', 'cuda']],
  ['cuda.kernels', ['--target', 'cuda', '--emit', 'kernels']],
  ['nofuse.cu', ['--target', 'cuda', '--no-fuse', '--emit', 'cuda']],
];

// Stages only a .tfx source has (the AST) and the folder `-o` writes (manifest, wgsl/, cuda/,
// model.ir, model.ts), flattened into one file per written file.
const sourceStages = [['ast', ['--emit', 'ast']]];
const reportStages = [
  ['report', ['--report']],
  ['lavapipe.report.json', ['--report', '--json', '--limits', 'lavapipe']],
];
const outDirs = [
  ['out', []],
  ['cuda.out', ['--target', 'cuda']],
];

const filesUnder = (dir) =>
  readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));

async function emitAll(file, name, extra, { full = false } = {}) {
  for (const [suffix, args] of stages) writeFileSync(join(out, `${name}.${suffix}`), await tfc(['compile', file, ...args, ...extra]));
  if (!full) return;
  if (file.endsWith('.tfx')) for (const [suffix, args] of sourceStages) writeFileSync(join(out, `${name}.${suffix}`), await tfc(['compile', file, ...args, ...extra]));
  for (const [suffix, args] of reportStages) writeFileSync(join(out, `${name}.${suffix}`), await tfc(['compile', file, ...args, ...extra]));
  for (const [suffix, args] of outDirs) {
    const tmp = mkdtempSync(join(tmpdir(), 'tfc-snapshot-'));
    const dir = join(tmp, 'o');
    const log = await tfc(['compile', file, '-o', dir, ...args, ...extra]);
    writeFileSync(join(out, `${name}.${suffix}.log`), log.replaceAll(dir, 'DIR'));
    for (const f of filesUnder(dir)) writeFileSync(join(out, `${name}.${suffix}.${relative(dir, f).replaceAll('/', '_')}`), readFileSync(f));
    rmSync(tmp, { recursive: true, force: true });
  }
}

const tfxFiles = (dir) =>
  readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? tfxFiles(join(dir, e.name)) : e.name.endsWith('.tfx') ? [join(dir, e.name)] : []));

for (const file of tfxFiles('examples')) {
  const name = file.replace(/^examples\//, '').replaceAll('/', '_');
  await emitAll(file, `${name}.default`, []);
  const text = readFileSync(file, 'utf8');
  const sets = Object.entries(small(file)).filter(([k]) => new RegExp(`\\b${k}\\b`).test(text));
  // The small configs also get the AST, the reports and the `-o` folders (the default configs'
  // reports are the same code at bigger numbers).
  if (sets.length > 0) await emitAll(file, `${name}.small`, ['--set', sets.map(([k, v]) => `${k}=${v}`).join(',')], { full: true });
}

// Tensor-core models (test/fixtures/*.tfx.tmpl, the sources test/cuda/mma-attention.test.ts and
// mma-matmul.test.ts run), f16 and bf16, at a fixed path so the printed locations do not differ
// between runs.
const fixtureModel = (name, dtype) => readFileSync(new URL(`../test/fixtures/${name}.tfx.tmpl`, import.meta.url), 'utf8').replaceAll('DTYPE', dtype);
const attention = (t) => fixtureModel('mma-attention', t);
const matmul = (t) => fixtureModel('mma-matmul', t);
const models = '/tmp/tfc-codegen-snapshot-models';
mkdirSync(models, { recursive: true });
for (const t of ['f16', 'bf16']) {
  for (const [m, src, one] of [['mma-attention', attention, 'T=1'], ['mma-matmul', matmul, 'M=1']]) {
    const file = join(models, `${m}-${t}.tfx`);
    writeFileSync(file, src(t));
    await emitAll(file, `${m}-${t}`, []);
    await emitAll(file, `${m}-${t}.one`, ['--set', one]);
  }
}
