// Helpers over lambda bodies (ScalarExpr) shared by the passes and the kernel lowering.
import type { ScalarExpr } from './ir.js';

/** Replaces `index(k)` by `at[k]`: substitutes a lambda's parameters, or composes index maps. */
export function substituteIndex(e: ScalarExpr, at: readonly ScalarExpr[]): ScalarExpr {
  switch (e.kind) {
    case 'index':
      return at[e.axis] ?? e;
    case 'dim':
    case 'const':
      return e;
    case 'read':
      return { ...e, indices: e.indices.map((x) => substituteIndex(x, at)) };
    case 'apply':
      return { ...e, args: e.args.map((x) => substituteIndex(x, at)) };
  }
}
