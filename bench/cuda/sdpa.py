# PyTorch F.scaled_dot_product_attention on the shapes of bench/cuda/attention.ts, timed with CUDA
# events (the reference for issue 6: tfc's fused kernel should reach >= 0.8x of this on an H100).
#   python3 bench/cuda/sdpa.py [--reps 20]
# FLOPs: 4*B*H*T^2*dh, halved when causal. Not yet run (written in a session without a GPU).
import argparse, json, torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--reps", type=int, default=20)
p.add_argument("--T", default="1024,4096,16384")
a = p.parse_args()
B, H, rows = 4, 16, []
for dtype in (torch.float16, torch.float32):
    for dh in (64, 128):
        for causal in (True, False):
            for T in map(int, a.T.split(",")):
                q, k, v = (torch.rand(B, H, T, dh, device="cuda", dtype=dtype) * 2 - 1 for _ in range(3))
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # warm-up (backend choice)
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(); s.record()
                for _ in range(a.reps):
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                e.record(); torch.cuda.synchronize()
                ms = s.elapsed_time(e) / a.reps
                tf = 4 * B * H * T * T * dh * (0.5 if causal else 1) / (ms * 1e-3) / 1e12
                rows.append(dict(dtype=str(dtype).split(".")[1], dh=dh, causal=causal, B=B, H=H, T=T, ms=ms, tflops=tf))
                print(f"{rows[-1]['dtype']} dh={dh} {'causal' if causal else 'full  '} T={T:5d}: {ms:.3f} ms, {tf:.2f} TFLOP/s")
print(json.dumps(dict(system="torch sdpa " + torch.__version__, gpu=torch.cuda.get_device_name(), rows=rows)))
