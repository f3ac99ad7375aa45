// Host side of the CUDA target. `tfc run --target cuda` is refused for now: the design (below) is
// not built because no session so far had an NVIDIA GPU to test it on, and an untested runtime
// would be a silent-failure path. CUDA correctness is tested through the CPU emulator instead
// (src/runtime-cuda/emulate.ts) and nvcc (codegen/cuda/ptxas.ts).
//
// Design (issue 6): koffi loads libcuda.so (driver API) and libnvrtc.so; each `cuda/<k>.cu` of the
// compile output is compiled once by NVRTC for the device's sm_XY (cached by source hash), loaded
// with cuModuleLoadData, and launched per manifest step with cuLaunchKernel(grid from
// launch.json's size formulas, block, kernelParams = [&ptr per buffer binding, &u32 per dim]) on
// one stream; weights are uploaded once with cuMemcpyHtoD and stay resident, temps are allocated
// by live range like the WebGPU session, outputs read back with cuMemcpyDtoH after one sync.
export const cudaRunUnavailableReason =
  'the CUDA host runtime (driver API + NVRTC through koffi) is not built yet: it needs an NVIDIA GPU to be tested. ' +
  '`tfc compile FILE -o DIR --target cuda` writes DIR/cuda/*.cu and DIR/cuda/launch.json for your own host code; ' +
  'use --target webgpu or --target interp to run';

