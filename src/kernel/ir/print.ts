// `--emit kernels`: each kernel's loop nest as readable pseudo-code with its schedule, buffers,
// grid and traffic formulas. Deterministic (kernel order, slot order, print order of names).
import { type Expr, type Kernel, type KernelProgram, type KernelSchedule, type Stmt, assertNever } from './ir.js';
import { printSize } from '../plan/to-size.js';

const binarySymbol = {
  add: '+', sub: '-', mul: '*', div: '/', rem: '%', lt: '<', le: '<=', gt: '>', ge: '>=', eq: '==', ne: '!=', and: '&&', or: '||',
} as const;

const builtinText = { local_id: 'local', local_index: 'local_index', workgroup_id: 'group', global_id: 'global', subgroup_size: 'subgroup_size', subgroup_lane: 'lane' } as const;

export function printScheduleLine(s: KernelSchedule): string {
  switch (s.kind) {
    case 'map':
      return `map: ${s.workgroupSize} threads/workgroup, 1 element/thread`;
    case 'row':
      return `row: ${s.workgroupSize} threads/row, reductions via ${s.useSubgroups ? 'subgroups' : 'shared-memory tree'}`;
    case 'tiled_matmul':
      if (s.kLanes === true) return `tiled_matmul: tile ${s.tileRows}x${s.tileCols}, K split across lanes (k-step ${s.tileK} per lane), loads A x${s.aVector ?? 1} B x${s.bVector ?? 1}`;
      if (s.laneBroadcast === true) return `tiled_matmul: tile ${s.tileRows}x${s.tileCols}, k-step ${s.tileK}, lane broadcast (1 subgroup, A rows from lanes), ${s.threadCols} columns/lane, loads A x${s.aVector ?? 1} B x${s.bVector ?? 1}`;
      return `tiled_matmul: tile ${s.tileRows}x${s.tileCols}, ${s.isDirect === true ? 'direct loads' : `k-step ${s.tileK}`}, ${s.threadRows}x${s.threadCols} outputs/thread`;
    case 'flash_attention':
      if (s.laneBroadcast === true) return `flash_attention: ${s.tileRows}x${s.tileCols} tiles, one subgroup of ${s.lanes} lanes, rows broadcast from lanes`;
      if (s.backward === true && s.mma !== undefined) return `flash_attention backward on ${s.mma} mma: ${s.tileRows} query rows x ${s.tileCols} keys per tile, 16 rows or keys per warp, dK/dV and dQ roles in one launch`;
      if (s.backward === true) return `flash_attention backward: ${s.tileRows} query rows x ${s.tileCols} keys per tile, ${s.lanes} lanes per row or key, dK/dV and dQ roles in one launch`;
      return `flash_attention: ${s.tileRows}x${s.tileCols} tiles, ${s.lanes} lanes/row, reductions via ${s.useSubgroups ? 'subgroups' : 'workgroup memory'}${s.splits > 1 ? `, ${s.splits} partitions` : ''}${s.mma !== undefined ? `, ${s.mma} mma` : ''}`;
    case 'cross_entropy':
      return `cross_entropy: chunk ${s.chunk + 1}/${s.chunks} (rows ${s.firstRow}..${s.firstRow + s.rows - 1} of ${s.total}; chunkRows ${s.chunkRows}), ${s.workgroupSize} threads/row, lse + loss${s.gradient ? ' + gradient over the logits tile' : ''}, reductions via ${s.useSubgroups ? 'subgroups' : 'shared-memory tree'}`;
    case 'mma_matmul':
      return `mma_matmul: tile ${s.tileRows}x${s.tileCols}, k-step ${s.tileK}, ${s.warpRows}x${s.warpCols} warps, ${s.stages} stages, ${s.input} inputs, f32 accumulators`;
    default:
      return assertNever(s);
  }
}

export function printKernelExpr(e: Expr, k: Kernel, nested = false): string {
  const p = (x: Expr): string => printKernelExpr(x, k, true);
  switch (e.kind) {
    case 'lit':
      if (e.type === 'bool') return e.value !== 0 ? 'true' : 'false';
      if (Number.isNaN(e.value)) return 'nan';
      if (!Number.isFinite(e.value)) return e.value < 0 ? '-inf' : 'inf';
      return e.type === 'f32' || e.type === 'f16' ? (Number.isInteger(e.value) ? `${e.value}.0` : String(e.value)) : String(e.value);
    case 'var':
      return e.name;
    case 'builtin':
      return e.id === 'local_index' || e.id === 'subgroup_size' || e.id === 'subgroup_lane' ? builtinText[e.id] : `${builtinText[e.id]}.${'xyz'[e.axis] ?? 'x'}`;
    case 'uniform':
      return e.dim;
    case 'load':
      return `${k.buffers[e.slot]?.role ?? `slot${e.slot}`}[${printKernelExpr(e.index, k)}]`;
    case 'array_load':
      return `${e.array}[${printKernelExpr(e.index, k)}]`;
    case 'unary':
      return `${e.op === 'neg' ? '-' : '!'}${p(e.arg)}`;
    case 'binary': {
      const s = `${p(e.a)} ${binarySymbol[e.op]} ${p(e.b)}`;
      return nested ? `(${s})` : s;
    }
    case 'call':
      return `${e.fn}(${e.args.map((a) => printKernelExpr(a, k)).join(', ')})`;
    case 'select':
      return `select(${printKernelExpr(e.cond, k)} ? ${printKernelExpr(e.ifTrue, k)} : ${printKernelExpr(e.ifFalse, k)})`;
    case 'cast':
      return `${e.to}(${printKernelExpr(e.arg, k)})`;
    case 'subgroup':
      return `subgroup_${e.op}(${printKernelExpr(e.arg, k)}${e.lane === undefined ? '' : `, ${printKernelExpr(e.lane, k)}`})`;
    default:
      return assertNever(e);
  }
}

function printStmts(stmts: readonly Stmt[], k: Kernel, indent: string, out: string[]): void {
  const x = (e: Expr): string => printKernelExpr(e, k);
  for (const s of stmts) {
    switch (s.kind) {
      case 'let':
        out.push(`${indent}let ${s.name}: ${s.type} = ${x(s.init)}`);
        break;
      case 'var':
        out.push(`${indent}var ${s.name}: ${s.type} = ${x(s.init)}`);
        break;
      case 'private_array':
        out.push(`${indent}var ${s.name}: ${s.type}[${s.length}] = ${x(s.init)}`);
        break;
      case 'assign':
        out.push(`${indent}${s.name} = ${x(s.value)}`);
        break;
      case 'store':
        out.push(`${indent}${k.buffers[s.slot]?.role ?? `slot${s.slot}`}[${x(s.index)}] = ${x(s.value)}`);
        break;
      case 'array_store':
        out.push(`${indent}${s.array}[${x(s.index)}] = ${x(s.value)}`);
        break;
      case 'load_vec':
        out.push(`${indent}let (${s.names.join(', ')}): ${s.type}x${s.names.length} = ${k.buffers[s.slot]?.role ?? `slot${s.slot}`}.vec${s.names.length}[${x(s.index)}]`);
        break;
      case 'for': {
        const step = s.step.kind === 'lit' && s.step.value === 1 ? '' : ` step ${x(s.step)}`;
        out.push(`${indent}for ${s.var} in ${x(s.start)}..${x(s.end)}${step} {`);
        printStmts(s.body, k, indent + '  ', out);
        out.push(`${indent}}`);
        break;
      }
      case 'if':
        out.push(`${indent}if ${x(s.cond)}${s.uniformity === 'subgroup' ? ' [subgroup-uniform]' : ''} {`);
        printStmts(s.then, k, indent + '  ', out);
        if (s.else.length > 0) {
          out.push(`${indent}} else {`);
          printStmts(s.else, k, indent + '  ', out);
        }
        out.push(`${indent}}`);
        break;
      case 'barrier':
        out.push(`${indent}barrier`);
        break;
      case 'mma':
        out.push(`${indent}mma.${s.input} ${s.acc}[${s.accOffset}..+4] += ${s.a.array}[${x(s.a.offset)}; row ${s.a.stride}] * ${s.b.array}[${x(s.b.offset)}; row ${s.b.stride}${s.bLayout === 'n_by_k' ? ', n by k' : ''}]`);
        break;
      case 'mma_regs':
        out.push(`${indent}mma.${s.input} ${s.acc}[${s.accOffset}..+4] += ${s.aRegs}[${s.aOffset}..+8] * ${s.b.array}[${x(s.b.offset)}; row ${s.b.stride}${s.bLayout === 'n_by_k' ? ', n by k' : ''}]`);
        break;
      case 'async_copy':
        out.push(`${indent}async_copy.${s.input} ${s.array}[${x(s.arrayOffset)}..+8] = ${k.buffers[s.slot]?.role ?? `slot${s.slot}`}[${x(s.index)}..+${x(s.count)}]`);
        break;
      case 'async_commit':
        out.push(`${indent}async_commit`);
        break;
      case 'async_wait':
        out.push(`${indent}async_wait ${s.pending}`);
        break;
      case 'comment':
        out.push(`${indent}// ${s.text.replace(/\n/g, ' ')}`);
        break;
      default:
        assertNever(s);
    }
  }
}

export function printKernel(k: Kernel): string {
  const out: string[] = [];
  out.push(`kernel ${k.name} (${k.op})${k.locs.length > 0 ? `  loc(${k.locs.join(', ')})` : ''}`);
  out.push(`  schedule: ${printScheduleLine(k.schedule)}`);
  out.push(`  launch: grid [${k.grid.map(printSize).join(', ')}] x workgroup [${k.workgroupSize.join(', ')}]`);
  for (const b of k.buffers) out.push(`  buffer ${b.slot} ${b.role}: ${b.type}${b.vector !== undefined ? `x${b.vector}` : ''}[] ${b.access}  (%${k.bindings[b.slot] ?? '?'})`);
  if (k.uniforms.length > 0) out.push(`  uniforms: ${k.uniforms.join(', ')}`);
  for (const a of k.shared) out.push(`  shared ${a.name}: ${a.type}[${a.length}]`);
  out.push(`  bytes read: ${printSize(k.traffic.bytesRead)}`);
  out.push(`  bytes written: ${printSize(k.traffic.bytesWritten)}`);
  out.push(`  flops: ${printSize(k.traffic.flops)}`);
  out.push('  {');
  printStmts(k.body, k, '    ', out);
  out.push('  }');
  return out.join('\n') + '\n';
}

export function printKernels(p: KernelProgram): string {
  const head = `kernels ${p.graph}(${p.dims.join(', ')}): ${p.kernels.length} kernel${p.kernels.length === 1 ? '' : 's'}\n`;
  return [head, ...p.kernels.map(printKernel)].join('\n');
}
