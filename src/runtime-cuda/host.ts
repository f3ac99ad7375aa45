// Host side of the CUDA target: a compiled launcher, not a driver-API binding. `tfc compile -o DIR
// --target cuda` writes DIR/cuda/launcher.cu (codegen/cuda/launcher.ts) beside the kernels and
// tfc_runtime.h; `tfc run --target cuda` builds the same launcher with nvcc (cached by source hash
// under ~/.cache/tfc/cuda) and runs it on the user's safetensors files (src/runtime-cuda/run.ts);
// `--target cuda-emu` and the CUDA tests build it with g++ against codegen/cuda/emu/cuda_emu.h.
// Why a launcher: it needs no FFI (koffi) or NVRTC, the exact program a GPU runs is the one CI
// runs on the emulator, and `nvcc -c launcher.cu` checks the host code in CI without a GPU.
// One-shot runs upload weights per run; `launcher --serve WEIGHTS` (src/runtime-cuda/serve.ts,
// protocol in codegen/cuda/runtime/tfc_launcher.h) stays alive with weights and the KV cache on the
// device for generation (src/runtime-cuda/generate.ts).
export {};
