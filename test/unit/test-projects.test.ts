// vitest.config.ts splits the suite into projects by what a file needs. A file that no project's
// `include` matches would silently never run, and one matched by two projects would run twice:
// every test file on disk must belong to exactly one project. `npm run test:fast` must name only
// projects that exist and none of the ones that need a device, a browser, nvcc or Python.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import config from '../../vitest.config.js';

const root = new URL('../../', import.meta.url).pathname;

interface ProjectTest {
  readonly name: string;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

const projects: ProjectTest[] = (config.test?.projects ?? []).map((p) => {
  if (typeof p !== 'object' || p === null || !('test' in p)) throw new Error('vitest.config.ts: every project must be an inline object');
  const t = (p as { test?: { name?: unknown; include?: string[]; exclude?: string[] } }).test;
  return { name: String(t?.name), include: t?.include ?? [], exclude: t?.exclude ?? [] };
});

/** The glob forms the config uses: `**` (any folders, also none) and `*` (within one name). */
function globRegExp(glob: string): RegExp {
  const parts = glob.split(/(\*\*\/|\*)/).map((p) => (p === '**/' ? '(?:.*/)?' : p === '*' ? '[^/]*' : p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('')}$`);
}

const inProject = (p: ProjectTest, file: string): boolean => p.include.some((g) => globRegExp(g).test(file)) && !p.exclude.some((g) => globRegExp(g).test(file));

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'node_modules' ? [] : testFiles(join(dir, e.name))) : e.name.endsWith('.test.ts') ? [relative(root, join(dir, e.name))] : [],
  );
}

describe('vitest projects', () => {
  it('the glob helper reads ** and * as vitest does', () => {
    expect(globRegExp('test/unit/**/*.test.ts').test('test/unit/a.test.ts')).toBe(true);
    expect(globRegExp('test/unit/**/*.test.ts').test('test/unit/x/y/a.test.ts')).toBe(true);
    expect(globRegExp('test/unit/**/*.test.ts').test('test/unitx/a.test.ts')).toBe(false);
    expect(globRegExp('test/e2e/*.test.ts').test('test/e2e/browser/a.test.ts')).toBe(false);
  });

  it('every test file belongs to exactly one project', () => {
    const files = testFiles(join(root, 'test'));
    expect(files.length).toBeGreaterThan(100);
    const wrong = files.map((f) => [f, projects.filter((p) => inProject(p, f)).map((p) => p.name)] as const).filter(([, ps]) => ps.length !== 1);
    expect(wrong).toEqual([]);
  });

  it('npm run test:fast runs existing projects, none that needs a GPU, a browser, nvcc or Python', () => {
    const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const fast = [...(scripts['test:fast'] ?? '').matchAll(/--project[= ](\S+)/g)].map((m) => m[1]);
    expect(fast.length).toBeGreaterThan(0);
    for (const name of fast) expect(projects.map((p) => p.name)).toContain(name);
    for (const heavy of ['webgpu', 'cuda', 'browser', 'oracle', 'package', 'cli']) expect(fast).not.toContain(heavy);
  });
});
