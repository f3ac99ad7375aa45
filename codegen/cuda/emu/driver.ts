// The CPU emulator's launcher: one C++ main per plan (all kernels in one translation unit, so one
// g++ call per plan) that reads a run script (buffers, steps with evaluated grids and dims,
// outputs), runs every step through tfc_emu::launch in order with buffers in host memory, and
// writes the outputs back. Script format, one record per line, integers in decimal:
//   buffers N            then N lines: <bytes> <initial-contents path or ->
//   steps M              then M lines: <kernel index> <gx> <gy> <gz> <ndims> <dims...> <nbufs> <buffer ids...>
//   outputs K            then K lines: <buffer id> <path>
import { Writer } from '../../common/writer.js';
import type { PlanKernel } from '../../../src/kernel/plan/plan.js';

/**
 * The whole emulator program for a plan's kernels (indices in the run script refer to this
 * order): each kernel's `source.cuda` (the guarded prelude makes them concatenate), then main.
 */
export function printEmuProgram(kernels: readonly PlanKernel[]): string {
  const w = new Writer();
  w.line('#include <cstdio>');
  w.line('#include <fstream>');
  w.line('#include <iostream>');
  w.line('#include <string>');
  w.line('#include <vector>');
  w.line();
  const module = kernels
    .map((k) => {
      if (k.source.cuda === undefined) throw new Error(`internal: kernel ${k.name} has no CUDA source (compilePlan with a cuda target)`);
      return k.source.cuda;
    })
    .join('\n');
  w.open('namespace');
  w.line('using tfc_emu::AnyPtr;');
  w.line('using Launch = void (*)(const AnyPtr* b, const unsigned* d);');
  w.open('const Launch launches[] =');
  for (const k of kernels) {
    const args = [...k.slots.map((_, i) => `b[${i}]`), ...k.uniforms.map((_, i) => `d[${i}]`)];
    w.line(`[](const AnyPtr* b, const unsigned* d) { (void)b; (void)d; ${k.name}(${args.join(', ')}); },`);
  }
  w.close(';');
  w.open('const dim3 blocks[] =');
  for (const k of kernels) w.line(`dim3{${k.workgroupSize.join(', ')}},`);
  w.close(';');
  w.close();
  w.line();
  w.open('int main(int argc, char** argv)');
  w.open('if (argc != 2)');
  w.line('std::cerr << "usage: " << argv[0] << " RUN_SCRIPT\\n";');
  w.line('return 2;');
  w.close();
  w.line('std::ifstream in(argv[1]);');
  w.line('std::string word;');
  w.line('size_t n = 0;');
  w.line('in >> word >> n;');
  w.line('std::vector<std::vector<unsigned char>> bufs(n);');
  w.open('for (size_t i = 0; i < n; i++)');
  w.line('size_t bytes = 0;');
  w.line('std::string path;');
  w.line('in >> bytes >> path;');
  w.comment('16 bytes of slack: a zero-size buffer still has an address.');
  w.line('bufs[i].assign(bytes + 16, 0);');
  w.open('if (path != "-")');
  w.line('std::ifstream f(path, std::ios::binary);');
  w.line('f.read(reinterpret_cast<char*>(bufs[i].data()), static_cast<std::streamsize>(bytes));');
  w.open('if (!f)');
  w.line('std::cerr << "cannot read " << path << "\\n";');
  w.line('return 1;');
  w.close();
  w.close();
  w.close();
  w.line('in >> word >> n;');
  w.open('for (size_t s = 0; s < n; s++)');
  w.line('unsigned which = 0, nd = 0, nb = 0;');
  w.line('dim3 grid;');
  w.line('in >> which >> grid.x >> grid.y >> grid.z >> nd;');
  w.line('std::vector<unsigned> dims(nd + 1);');
  w.line('for (unsigned i = 0; i < nd; i++) in >> dims[i];');
  w.line('in >> nb;');
  w.line('std::vector<AnyPtr> ptrs(nb + 1);');
  w.open('for (unsigned i = 0; i < nb; i++)');
  w.line('size_t id = 0;');
  w.line('in >> id;');
  w.line('ptrs[i] = AnyPtr{bufs.at(id).data()};');
  w.close();
  w.line(`if (which >= ${kernels.length}u || !in) { std::cerr << "bad step " << s << "\\n"; return 1; }`);
  w.line('const Launch f = launches[which];');
  w.line('if (grid.x * grid.y * grid.z > 0) tfc_emu::launch(grid, blocks[which], [&] { f(ptrs.data(), dims.data()); });');
  w.close();
  w.line('in >> word >> n;');
  w.open('for (size_t i = 0; i < n; i++)');
  w.line('size_t id = 0;');
  w.line('std::string path;');
  w.line('in >> id >> path;');
  w.line('std::ofstream f(path, std::ios::binary);');
  w.line('f.write(reinterpret_cast<const char*>(bufs.at(id).data()), static_cast<std::streamsize>(bufs.at(id).size() - 16));');
  w.close();
  w.line('return 0;');
  w.close();
  return `${module}\n${w.toString()}`;
}
