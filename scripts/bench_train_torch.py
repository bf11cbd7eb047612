#!/usr/bin/env python3
"""Training throughput of vklm against PyTorch on the same configuration and machine.

Usage: bench_train_torch.py [--vklm build/apps/vklm] [--model gpt2-tiny,gpt2-124M] [-b B] [-T T]
                            [--steps N] [--device cuda|cpu] [--precision f32|bf16|f16] [--json]

Runs `vklm bench train --json` for the figures of vklm (tokens/s, ms/step, MFU, peak device
memory), then times the same models in PyTorch: the reference model of scripts/reference_model.py
(the same architecture as engine/model, in plain fp32 PyTorch; forward, backward and
torch.optim.AdamW with weight decay on matrices and clip_grad_norm_, as vklm's step), on CUDA
when available, else the CPU. Prints both, the ratio vklm / torch of tokens per second and, where
both are known, of peak memory. --precision bf16|f16 runs vklm's mixed precision against
PyTorch's: torch.autocast to that dtype around the forward and loss (fp32 master weights and
optimizer, as vklm), with f16's GradScaler (dynamic loss scaling, as vklm's f16).
Configurations are vklm's presets, read from `vklm bench train` itself (parameters) and the table
below (shapes)."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reference_model as ref  # noqa: E402  (the PyTorch model engine/model is tested against)

# vklm's presets (engine/model/config.c): arch, V, maxT, L, NH, NKV, C, F, tie
PRESETS = {
    "gpt2-tiny": ("gpt2", 256, 64, 2, 4, 4, 64, 256, 1),
    "llama-tiny": ("llama", 256, 64, 2, 4, 2, 64, 172, 0),
    "gpt2-124M": ("gpt2", 50257, 1024, 12, 12, 12, 768, 3072, 1),
    "gpt2-350M": ("gpt2", 50257, 1024, 24, 16, 16, 1024, 4096, 1),
    "llama-60M": ("llama", 32000, 1024, 8, 8, 8, 512, 1376, 0),
}


def torch_bench(name, B, T, steps, device, precision="f32"):
    arch, V, maxT, L, NH, NKV, C, Fh, tie = PRESETS[name]
    c = dict(arch=arch, objective="causal", V=V, maxT=max(maxT, T), L=L, NH=NH, NKV=NKV, C=C,
             F=Fh, tie=tie)
    gen = torch.Generator().manual_seed(1)
    P = {k: v.to(device).requires_grad_(True) for k, v in ref.init_params(c, gen).items()}
    decay = [P[n] for n, s, d, _ in ref.table(c) if d]
    no_decay = [P[n] for n, s, d, _ in ref.table(c) if not d]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    seq = torch.randint(0, V, (B, T + 1), generator=gen).to(device)
    inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    params = list(P.values())
    dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[precision]
    scaler = None
    if precision == "f16":
        if hasattr(torch.amp, "GradScaler"):
            scaler = torch.amp.GradScaler(device)
        elif device == "cuda":
            scaler = torch.cuda.amp.GradScaler()
        else:
            sys.exit("this PyTorch (%s) has no GradScaler for the CPU: f16 needs torch >= 2.3 "
                     "or --device cuda" % torch.__version__)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = ref.loss_of(ref.forward(P, c, inputs), targets)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        return loss

    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    n = sum(p.numel() for p in params)
    mem = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    return dict(model=name, params=n, ms_per_step=dt * 1e3, tokens_per_s=B * T / dt,
                flops_per_token=6.0 * n + 6.0 * L * C * T, peak_memory_bytes=mem,
                loss_last=float(loss))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vklm", default=os.path.join(HERE, "..", "build", "apps", "vklm"))
    ap.add_argument("--model", default=None)
    ap.add_argument("-b", type=int, default=None)
    ap.add_argument("-T", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=("f32", "bf16", "f16"), default="f32")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    gpu = a.device == "cuda"
    models = a.model or ("gpt2-tiny,gpt2-124M" if gpu else "gpt2-tiny")
    B = a.b or (8 if gpu else 4)
    T = a.T or (1024 if gpu else 64)
    steps = a.steps or (20 if gpu else 3)
    cmd = [a.vklm, "bench", "train", "--json", "--model", models, "-b", str(B), "-T", str(T),
           "--steps", str(steps), "--precision", a.precision]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit("vklm bench train failed")
    vk = json.loads(p.stdout)
    peak = vk["peak_gflops_f32"]
    rows = []
    for m in vk["models"]:
        t = torch_bench(m["model"], B, T, steps, a.device, a.precision)
        t["mfu_vs_vklm_peak"] = t["flops_per_token"] * t["tokens_per_s"] / (peak * 1e9)
        row = dict(model=m["model"], vklm=m, torch=t,
                   ratio_tokens_per_s=m["tokens_per_s"] / t["tokens_per_s"])
        if m.get("peak_memory_bytes") and t["peak_memory_bytes"]:
            row["ratio_peak_memory"] = m["peak_memory_bytes"] / t["peak_memory_bytes"]
        rows.append(row)
    out = dict(device_vklm=vk["device"], device_torch=a.device, B=B, T=T, steps=steps,
               precision=a.precision, peak_gflops_f32=peak, models=rows)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print("vklm device: %s; torch device: %s (threads %d); B=%d T=%d, %d timed steps, %s"
          % (vk["device"], a.device, torch.get_num_threads(), B, T, steps, a.precision))
    print("fp32 matmul peak measured by vklm: %.1f GFLOP/s" % peak)
    print("%-12s %-6s %10s %12s %8s %12s" % ("model", "impl", "ms/step", "tokens/s", "MFU", "peak mem"))
    for r in rows:
        for impl in ("vklm", "torch"):
            x = r[impl]
            mfu = x.get("mfu", x.get("mfu_vs_vklm_peak"))
            print("%-12s %-6s %10.1f %12.0f %7.2f%% %10.1f MiB" % (
                r["model"], impl, x["ms_per_step"], x["tokens_per_s"], 100 * mfu,
                x["peak_memory_bytes"] / 1048576))
        print("%-12s vklm/torch tokens/s: %.2fx" % (r["model"], r["ratio_tokens_per_s"]))
        if "ratio_peak_memory" in r:
            print("%-12s vklm/torch peak memory: %.2fx" % (r["model"], r["ratio_peak_memory"]))


if __name__ == "__main__":
    main()
