// The host module (`tfc compile -o DIR` writes DIR/model.ts) under hostile names (issue 9): the
// hostile model of the WGSL/CUDA robustness test, compiled through the CLI from a file whose name
// holds quotes, template syntax, a comment closer and line breaks, and through emitHostModule for
// every hostile file name, gives a model.ts that `tsc --strict` accepts and in which no user text
// appears outside string literals (every token is scanned with the TypeScript scanner).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { emitHostModule } from '../../codegen/host/emit.js';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { hostileFiles, hostileModel } from '../webgpu/robustness-hostile.js';
import { tfc } from '../helpers/cli.js';

const repo = resolve('.');
const tmp = mkdtempSync(join(tmpdir(), 'tfc-host-hostile-'));


/** Every token of `src` that is not a string or template literal (comments included) holding EVIL. */
function userTextOutsideStrings(src: string): string[] {
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, src);
  const literal = new Set([ts.SyntaxKind.StringLiteral, ts.SyntaxKind.NoSubstitutionTemplateLiteral, ts.SyntaxKind.TemplateHead, ts.SyntaxKind.TemplateMiddle, ts.SyntaxKind.TemplateTail]);
  const bad: string[] = [];
  // Open `{` and `${`: a `}` closing a `${` continues its template literal (rescanned as one).
  const open: ('brace' | 'template')[] = [];
  for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
    if (kind === ts.SyntaxKind.OpenBraceToken) open.push('brace');
    else if (kind === ts.SyntaxKind.TemplateHead) open.push('template');
    else if (kind === ts.SyntaxKind.CloseBraceToken) {
      if (open.pop() === 'template') {
        kind = scanner.reScanTemplateToken(false);
        if (kind === ts.SyntaxKind.TemplateMiddle) open.push('template');
      }
    }
    if (literal.has(kind)) continue;
    let text = scanner.getTokenText();
    // In a comment, user text may appear as a JSON string (file names in source locations).
    if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) {
      text = text.replace(/"(?:[^"\\\n]|\\.)*"/g, (m) => {
        try {
          JSON.parse(m);
          return '""';
        } catch {
          return m;
        }
      });
    }
    if (/EVIL/.test(text)) bad.push(`${ts.SyntaxKind[kind]}: ${JSON.stringify(text.slice(0, 120))}`);
  }
  return bad;
}

/** tsc --strict --noEmit over DIR/model.ts against the tfc/runtime package export; '' when clean. */
function strictTsc(dir: string): string {
  mkdirSync(join(dir, 'node_modules', '@webgpu'), { recursive: true });
  symlinkSync(repo, join(dir, 'node_modules', 'tfc'));
  symlinkSync(join(repo, 'node_modules/@webgpu/types'), join(dir, 'node_modules/@webgpu/types'));
  const tsconfig = {
    compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'], types: [], skipLibCheck: true },
    files: ['model.ts'],
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  try {
    execFileSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
    return '';
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? e);
  }
}

describe('model.ts from the hostile model', () => {
  it('the scanner check can fail: EVIL in an identifier or a comment is found, in a string it is not', () => {
    expect(userTextOutsideStrings('const EVIL = 1;')).toHaveLength(1);
    expect(userTextOutsideStrings('// EVIL\nconst x = "EVIL" + `EVIL${1}EVIL`;')).toHaveLength(1);
    expect(userTextOutsideStrings('const x = { "EVIL */": `a${`EVIL`}b` };')).toEqual([]);
    expect(userTextOutsideStrings('/** at "EVIL *\\/ x" */ const y = 1;')).toEqual([]);
    expect(userTextOutsideStrings('/** at "EVIL " EVIL */ const y = 1;')).toHaveLength(1);
  });

  it.each(hostileFiles.map((f, i) => [i, f] as const))('emitHostModule with hostile file name #%i: user text only inside strings', async (_i, file) => {
    const r = checkSource(hostileModel(), file);
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    const src = await emitHostModule(compilePlan(g), g, { sourceName: file });
    expect(src).toContain('EVIL'); // the names are there (as data)
    expect(userTextOutsideStrings(src)).toEqual([]);
  });

  it('tfc compile -o from a file with a hostile name: model.ts compiles under tsc --strict, user text only inside strings', { timeout: 300_000 }, async () => {
    // A folder ending in `*` puts `*/` into every source location; the file name adds quotes,
    // template syntax, U+2028 and a backslash.
    const dir = join(tmp, 'EVILDIR *');
    mkdirSync(dir);
    const model = join(dir, 'EVILFILE "${x}` \u2028 \\.tfx');
    writeFileSync(model, hostileModel());
    const out = join(dir, 'out');
    const r = await tfc('compile', model, '-o', out);
    expect(r.code, r.stderr).toBe(0);
    const src = readFileSync(join(out, 'model.ts'), 'utf8');
    expect(userTextOutsideStrings(src)).toEqual([]);
    expect(strictTsc(out)).toBe('');
  });
});
