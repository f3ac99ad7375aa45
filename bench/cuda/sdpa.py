# PyTorch F.scaled_dot_product_attention (its FlashAttention backend on a GPU) on the shapes of
# `tfc bench attention --target cuda` (src/cli/bench-cuda.ts runs this script and reads the last
# line of stdout), timed with CUDA events after one warm-up call:
#   python3 bench/cuda/sdpa.py --B 4 --H 16 --T 1024,4096,16384 --dh 64,128 --dtype f16 --causal 1,0 --reps 5
# FLOPs: 4*B*H*T^2*dh, halved when causal. Progress on stderr; one JSON document on stdout.
import argparse, json, sys

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--B", type=int, default=4)
p.add_argument("--H", type=int, default=16)
p.add_argument("--T", default="1024,4096,16384")
p.add_argument("--dh", default="64,128")
p.add_argument("--dtype", default="f16")
p.add_argument("--causal", default="1,0")
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()
if not torch.cuda.is_available():
    print(json.dumps(dict(error="torch.cuda.is_available() is false", torch=torch.__version__)))
    sys.exit(3)
dtypes = {"f16": torch.float16, "f32": torch.float32}
B, H, rows = a.B, a.H, []
for name in a.dtype.split(","):
    for dh in map(int, a.dh.split(",")):
        for causal in (c == "1" for c in a.causal.split(",")):
            for T in map(int, a.T.split(",")):
                row = dict(dtype=name, dh=dh, causal=causal, B=B, H=H, T=T)
                try:
                    q, k, v = (torch.rand(B, H, T, dh, device="cuda", dtype=dtypes[name]) * 2 - 1 for _ in range(3))
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # warm-up (backend choice)
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    torch.cuda.synchronize()
                    s.record()
                    for _ in range(a.reps):
                        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    e.record()
                    torch.cuda.synchronize()
                    ms = s.elapsed_time(e) / a.reps
                    row.update(ms=ms, tflops=4 * B * H * T * T * dh * (0.5 if causal else 1) / (ms * 1e-3) / 1e12)
                    del q, k, v
                except Exception as ex:  # out of memory, no kernel for the dtype: reported per row
                    row.update(error=str(ex).splitlines()[0][:200])
                rows.append(row)
                print(f"sdpa {row}", file=sys.stderr)
print(json.dumps(dict(system="torch sdpa " + torch.__version__, gpu=torch.cuda.get_device_name(), rows=rows)))
