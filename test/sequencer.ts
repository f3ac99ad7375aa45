// The order files start in (vitest.config.ts `sequence.sequencer`): longest first over the whole
// suite. vitest's own sequencer sorts by project NAME first (browser, cli, cuda, fuzz, oracle,
// package, unit, unit-mocked, webgpu), and only then by the last run's duration, so the webgpu
// project's 20-60 s files started after ~1000 small unit files and ran alone at the end while the
// other worker idled. With 2 workers the longest-first order (LPT) leaves at most about the
// shortest of the long files as tail. The last run's durations live in node_modules/.vite (shared
// by every worktree whose node_modules is a link, and absent on a fresh checkout), so the files
// known to be slow are listed here with their quiet durations; the rest sort by the cache, then
// by size, as vitest does.
import { statSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Seconds on the quiet 2-core machine (docs/testing.md's profile); only the order matters. */
export const slowFiles: Readonly<Record<string, number>> = {
  'test/e2e/browser/examples.test.ts': 110,
  'test/e2e/browser/finetune.test.ts': 84,
  'test/webgpu/attention.test.ts': 60,
  'test/e2e/package.test.ts': 50,
  'test/e2e/train-charlm.test.ts': 45,
  'test/e2e/browser/web-page.test.ts': 29,
  'test/webgpu/f16-models.test.ts': 28,
  'test/e2e/oracle.test.ts': 26,
  'test/cuda/attention-backward-emulate.test.ts': 25,
  'test/webgpu/examples.test.ts': 22,
  'test/fuzz/frontend.test.ts': 19,
  'test/webgpu/robustness.test.ts': 19,
  'test/e2e/checkpoint.test.ts': 18,
  'test/cuda/examples-emulate.test.ts': 15,
  'test/cuda/nvcc.test.ts': 13,
  'test/unit/compile/train-compile.test.ts': 9,
  'test/unit/cli/tune-subgraph.test.ts': 8,
  'test/unit/kernel/attention-tiles.test.ts': 8,
  'test/unit/autodiff/examples.test.ts': 7,
};

export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const cache = this.ctx.cache;
    const estimate = (spec: TestSpecification): [number, number] => {
      const rel = relative(root, spec.moduleId);
      const listed = slowFiles[rel];
      if (listed !== undefined) return [listed, 0];
      const last = cache.getFileTestResults(`${spec.project.name}:${rel}`)?.duration;
      // Unlisted files: below every listed one (the cache mixes runs from other machines and loads).
      if (last !== undefined) return [Math.min(last / 1000, 5), 0];
      let size = 0;
      try {
        size = statSync(spec.moduleId).size;
      } catch {
        size = 0;
      }
      return [0, size];
    };
    const keyed = files.map((spec) => ({ spec, key: estimate(spec) }));
    keyed.sort((a, b) => b.key[0] - a.key[0] || b.key[1] - a.key[1]);
    return keyed.map((k) => k.spec);
  }
}
