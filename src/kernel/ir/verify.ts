// The kernel IR verifier: buffer access modes respected, barriers only in workgroup-uniform
// control flow, subgroup operations there or under an `if` marked subgroup-uniform, workgroup memory and threads within the target's limits,
// every name declared (and so initialized: let/var always carry an initializer) before use.
import { type Expr, type Kernel, type KernelProgram, type Stmt, assertNever } from './ir.js';
import type { TargetLimits } from '../schedule/schedule.js';

export function verifyKernel(k: Kernel, target: TargetLimits): string[] {
  const errors: string[] = [];
  const err = (m: string): void => void errors.push(`${k.name}: ${m}`);
  const sharedBytes = k.shared.reduce((s, a) => s + a.length * (a.type === 'f16' ? 2 : 4), 0);
  if (sharedBytes > target.maxWorkgroupStorageBytes) {
    err(`workgroup memory ${sharedBytes} B exceeds the target's ${target.maxWorkgroupStorageBytes} B`);
  }
  const threads = k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2];
  if (threads > target.maxInvocationsPerWorkgroup) err(`${threads} threads exceed the target's ${target.maxInvocationsPerWorkgroup}`);
  k.buffers.forEach((b, i) => {
    if (b.slot !== i) err(`buffer ${b.role} has slot ${b.slot}, expected ${i}`);
    if (b.type === 'bool') err(`buffer ${b.role} stores bool (use u32)`);
    if (b.type === 'i8' && b.vector !== undefined) err(`buffer ${b.role} holds i8 and is read as vectors (i8 is scalar access only)`);
  });
  for (const a of k.shared) if (a.type === 'i8') err(`workgroup array ${a.name} holds i8 (i8 is a global storage type)`);
  if (k.bindings.length !== k.buffers.length) err(`${k.bindings.length} bindings for ${k.buffers.length} buffers`);

  const usedSlots = new Set<number>();
  const declared = new Map<string, 'let' | 'var' | 'array'>();
  for (const a of k.shared) declared.set(a.name, 'array');
  const uniformNames = new Set<string>(); // names whose value is the same in every thread of a workgroup

  const isUniform = (e: Expr): boolean => {
    switch (e.kind) {
      case 'lit':
      case 'uniform':
        return true;
      case 'builtin':
        return e.id === 'workgroup_id' || e.id === 'subgroup_size';
      case 'var':
        return uniformNames.has(e.name);
      case 'load': {
        // A read-only buffer at a uniform index holds one value for the whole workgroup (WGSL's
        // uniformity analysis agrees: read-only storage is uniform): a per-batch length `len[b]`
        // may bound a loop with barriers (fused attention's block sparsity).
        return k.buffers[e.slot]?.access === 'read' && isUniform(e.index);
      }
      case 'array_load':
      case 'subgroup':
        return false;
      case 'unary':
      case 'cast':
        return isUniform(e.arg);
      case 'binary':
        return isUniform(e.a) && isUniform(e.b);
      case 'call':
        return e.args.every(isUniform);
      case 'select':
        return isUniform(e.cond) && isUniform(e.ifTrue) && isUniform(e.ifFalse);
      default:
        return assertNever(e);
    }
  };

  const checkExpr = (e: Expr, uniformFlow: boolean): void => {
    switch (e.kind) {
      case 'lit':
      case 'builtin':
        return;
      case 'uniform':
        if (!k.uniforms.includes(e.dim)) err(`reads dim ${e.dim} not listed in uniforms`);
        return;
      case 'var':
        if (!declared.has(e.name)) err(`reads ${e.name} before its declaration`);
        return;
      case 'load':
        if (k.buffers[e.slot] === undefined) err(`loads from missing slot ${e.slot}`);
        else if (k.buffers[e.slot]?.vector !== undefined) err(`scalar load from vector buffer ${k.buffers[e.slot]?.role}`);
        usedSlots.add(e.slot);
        return checkExpr(e.index, uniformFlow);
      case 'array_load':
        if (declared.get(e.array) !== 'array') err(`loads from ${e.array}, which is not an array`);
        return checkExpr(e.index, uniformFlow);
      case 'unary':
      case 'cast':
        return checkExpr(e.arg, uniformFlow);
      case 'subgroup':
        if (!uniformFlow && !subgroupFlow) err(`subgroup ${e.op} in non-uniform control flow`);
        {
          const takesLane = e.op === 'shuffle' || e.op === 'broadcast';
          if (takesLane !== (e.lane !== undefined)) err(`subgroup ${e.op} ${takesLane ? 'without' : 'with'} a lane operand`);
          if (e.op === 'broadcast' && (e.lane?.kind !== 'lit' || e.lane.type !== 'u32' || e.lane.value >= Math.max(1, target.subgroupSize))) err(`subgroup broadcast needs a u32 literal lane below the subgroup size ${target.subgroupSize}`);
        }
        if (e.lane !== undefined) checkExpr(e.lane, uniformFlow);
        return checkExpr(e.arg, uniformFlow);
      case 'binary':
        checkExpr(e.a, uniformFlow);
        return checkExpr(e.b, uniformFlow);
      case 'call':
        return e.args.forEach((a) => checkExpr(a, uniformFlow));
      case 'select':
        checkExpr(e.cond, uniformFlow);
        checkExpr(e.ifTrue, uniformFlow);
        return checkExpr(e.ifFalse, uniformFlow);
      default:
        assertNever(e);
    }
  };

  const nonUniformVars = new Set<string>();
  // Inside an `if` the lowering marks subgroup-uniform (and only workgroup-uniform or such ifs above).
  let subgroupFlow = false;
  const walk = (stmts: readonly Stmt[], uniformFlow: boolean): void => {
    for (const s of stmts) {
      switch (s.kind) {
        case 'let':
        case 'var':
          checkExpr(s.init, uniformFlow);
          if (declared.has(s.name)) err(`${s.name} declared twice`);
          declared.set(s.name, s.kind);
          if (uniformFlow && isUniform(s.init) && !nonUniformVars.has(s.name)) uniformNames.add(s.name);
          break;
        case 'private_array':
          checkExpr(s.init, uniformFlow);
          declared.set(s.name, 'array');
          break;
        case 'assign':
          checkExpr(s.value, uniformFlow);
          if (declared.get(s.name) !== 'var') err(`assigns ${s.name}, which is not a declared var`);
          if (!uniformFlow || !isUniform(s.value)) {
            nonUniformVars.add(s.name);
            uniformNames.delete(s.name);
          }
          break;
        case 'store': {
          const b = k.buffers[s.slot];
          if (b === undefined) err(`stores to missing slot ${s.slot}`);
          else if (b.access === 'read') err(`stores to read-only buffer ${b.role}`);
          else if (b.vector !== undefined) err(`scalar store to vector buffer ${b.role}`);
          usedSlots.add(s.slot);
          checkExpr(s.index, uniformFlow);
          checkExpr(s.value, uniformFlow);
          break;
        }
        case 'load_vec': {
          const b = k.buffers[s.slot];
          if (b === undefined) err(`load_vec from missing slot ${s.slot}`);
          else {
            if (b.vector !== s.names.length) err(`load_vec of ${s.names.length} elements from ${b.role}, declared with vector ${b.vector ?? 'none'}`);
            if (b.access !== 'read') err(`vector buffer ${b.role} must be read-only`);
            if (b.type !== s.type) err(`load_vec of ${s.type} from ${b.type} buffer ${b.role}`);
          }
          usedSlots.add(s.slot);
          checkExpr(s.index, uniformFlow);
          for (const name of s.names) {
            if (declared.has(name)) err(`${name} declared twice`);
            declared.set(name, 'let');
          }
          break;
        }
        case 'array_store':
          if (declared.get(s.array) !== 'array') err(`stores to ${s.array}, which is not an array`);
          checkExpr(s.index, uniformFlow);
          checkExpr(s.value, uniformFlow);
          break;
        case 'for': {
          checkExpr(s.start, uniformFlow);
          checkExpr(s.end, uniformFlow);
          checkExpr(s.step, uniformFlow);
          const u = uniformFlow && isUniform(s.start) && isUniform(s.end) && isUniform(s.step);
          declared.set(s.var, 'let');
          if (u) uniformNames.add(s.var);
          walk(s.body, u);
          break;
        }
        case 'if': {
          checkExpr(s.cond, uniformFlow);
          const u = uniformFlow && isUniform(s.cond);
          const outer = subgroupFlow;
          subgroupFlow = !u && (uniformFlow || subgroupFlow) && s.uniformity === 'subgroup';
          walk(s.then, u);
          walk(s.else, u);
          subgroupFlow = outer;
          break;
        }
        case 'barrier':
          if (!uniformFlow) err('barrier in non-uniform control flow');
          break;
        case 'mma':
          // A warp collective: workgroup-uniform flow, or an `if` the lowering marks subgroup-uniform (a warp takes one side).
          if (!uniformFlow && !subgroupFlow) err('mma in non-uniform control flow');
          if (declared.get(s.acc) !== 'array') err(`mma accumulates into ${s.acc}, which is not an array`);
          for (const t of [s.a, s.b]) {
            if (!k.shared.some((a) => a.name === t.array && a.type === 'u32')) err(`mma reads ${t.array}, which is not a u32 workgroup array`);
            if (t.stride % 2 !== 0) err(`mma row stride ${t.stride} of ${t.array} is odd`);
            checkExpr(t.offset, uniformFlow);
          }
          break;
        case 'mma_regs':
          if (!uniformFlow && !subgroupFlow) err('mma in non-uniform control flow');
          if (declared.get(s.acc) !== 'array') err(`mma accumulates into ${s.acc}, which is not an array`);
          if (declared.get(s.aRegs) !== 'array') err(`mma reads A from ${s.aRegs}, which is not an array`);
          if (!k.shared.some((a) => a.name === s.b.array && a.type === 'u32')) err(`mma reads ${s.b.array}, which is not a u32 workgroup array`);
          if (s.b.stride % 2 !== 0) err(`mma row stride ${s.b.stride} of ${s.b.array} is odd`);
          checkExpr(s.b.offset, uniformFlow);
          break;
        case 'async_copy': {
          const b = k.buffers[s.slot];
          if (b === undefined) err(`async_copy from missing slot ${s.slot}`);
          else if (b.type !== 'f16' && b.type !== 'f32') err(`async_copy from ${b.type} buffer ${b.role}`);
          usedSlots.add(s.slot);
          if (!k.shared.some((a) => a.name === s.array && a.type === 'u32')) err(`async_copy into ${s.array}, which is not a u32 workgroup array`);
          checkExpr(s.arrayOffset, uniformFlow);
          checkExpr(s.index, uniformFlow);
          checkExpr(s.count, uniformFlow);
          break;
        }
        case 'async_commit':
          break;
        case 'async_wait':
          if (!Number.isInteger(s.pending) || s.pending < 0) err(`async_wait ${s.pending}`);
          break;
        case 'comment':
          break;
        default:
          assertNever(s);
      }
    }
  };
  // Two passes: the first finds vars assigned non-uniformly anywhere (e.g. later in a loop).
  const before = errors.length;
  walk(k.body, true);
  declared.clear();
  for (const a of k.shared) declared.set(a.name, 'array');
  uniformNames.clear();
  usedSlots.clear();
  errors.length = before;
  walk(k.body, true);
  k.buffers.forEach((b) => {
    if (!usedSlots.has(b.slot)) err(`buffer ${b.role} (slot ${b.slot}) is never used`);
  });
  return errors;
}

export function verifyKernels(p: KernelProgram, target: TargetLimits): string[] {
  const names = new Set<string>();
  const errors: string[] = [];
  for (const k of p.kernels) {
    if (names.has(k.name)) errors.push(`kernel name ${k.name} is not unique`);
    names.add(k.name);
    errors.push(...verifyKernel(k, target));
  }
  return errors;
}
