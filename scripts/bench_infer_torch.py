#!/usr/bin/env python3
"""Greedy decode of vklm against PyTorch on the same model, machine and context (issue 13).

Usage: bench_infer_torch.py [--vklm build/apps/vklm] [--model gpt2-tiny|gpt2-124M|...]
                            [--context N] [--decode N] [--device cuda|cpu] [--json]

Runs `vklm bench infer --json --batch 1` for vklm's decode rate at batch 1 after a context of N
tokens (prefilled, one untimed step, then --decode greedy steps timed; the argmax on the device
and one id read back per token), then the same decode in PyTorch: the reference model of
scripts/reference_model.py (the architecture engine/model implements) with a KV cache added here
(prefill the context into the cache, one untimed step, then the timed greedy steps, each id read
back to the host as vklm does), fp32, on CUDA when present, else the CPU. Prints both rates and
the ratio vklm / torch of decode tokens/s.

Before timing, the cached PyTorch model is checked against reference_model.forward: the logits of
an 8-token sequence run as a prefill of 4 and then 4 single-token steps must equal the reference's
over the whole sequence (the cache changes nothing); the largest difference is printed and one
over 1e-4 of the logits' scale fails the run."""
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
import reference_model as ref  # noqa: E402
from bench_train_torch import PRESETS  # noqa: E402  (vklm's presets, one table)


def config(name):
    arch, V, maxT, L, NH, NKV, C, Fh, tie = PRESETS[name]
    return dict(arch=arch, objective="causal", V=V, maxT=maxT, L=L, NH=NH, NKV=NKV, C=C, F=Fh,
                tie=tie)


def rope_at(x, pos, HS, theta=ref.ROPE_THETA):
    """RoPE (reference_model.rope's rotate_half convention) at positions pos (n,) for x (..,n,HS)."""
    inv = 1.0 / (theta ** (torch.arange(0, HS, 2, dtype=x.dtype, device=x.device) / HS))
    freqs = torch.outer(pos.to(x.dtype), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return x * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()


class Cached:
    """reference_model's transformer with a KV cache: step(tokens (B,n), pos0) appends n tokens
    per sequence at positions pos0.. and returns their logits (B,n,V)."""

    def __init__(self, P, c, B, n_ctx, device):
        self.P, self.c = P, c
        self.HS = c["C"] // c["NH"]
        shape = (c["L"], B, c["NKV"], n_ctx, self.HS)
        self.K = torch.zeros(shape, device=device)
        self.V = torch.zeros(shape, device=device)

    def step(self, tokens, pos0):
        P, c, HS = self.P, self.c, self.HS
        gpt2 = c["arch"] == "gpt2"
        B, n = tokens.shape
        C, NH, NKV = c["C"], c["NH"], c["NKV"]
        pos = torch.arange(pos0, pos0 + n, device=tokens.device)

        norm, lin = ref.layer_ops(P, c)

        x = P["wte.weight"][tokens]
        if gpt2:
            x = x + P["wpe.weight"][pos]
        end = pos0 + n
        # query i (position pos0+i) sees keys 0..pos0+i
        mask = None if n == 1 else (torch.arange(end, device=tokens.device)[None, :]
                                    <= pos[:, None])
        for l in range(c["L"]):
            h = "h.%d." % l
            qkv = lin(norm(x, h + "ln1"), h + "attn.qkv")
            q = qkv[..., : NH * HS].view(B, n, NH, HS).transpose(1, 2)
            k = qkv[..., NH * HS: (NH + NKV) * HS].view(B, n, NKV, HS).transpose(1, 2)
            v = qkv[..., (NH + NKV) * HS:].view(B, n, NKV, HS).transpose(1, 2)
            if not gpt2:
                q, k = rope_at(q, pos, HS), rope_at(k, pos, HS)
            self.K[l, :, :, pos0:end] = k
            self.V[l, :, :, pos0:end] = v
            Kc = self.K[l, :, :, :end].repeat_interleave(NH // NKV, dim=1)
            Vc = self.V[l, :, :, :end].repeat_interleave(NH // NKV, dim=1)
            att = (q @ Kc.transpose(-2, -1)) / math.sqrt(HS)
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            y = (att.softmax(-1) @ Vc).transpose(1, 2).reshape(B, n, C)
            x = x + lin(y, h + "attn.proj")
            f = lin(norm(x, h + "ln2"), h + "mlp.fc")
            x = x + lin(ref.mlp_act(f, c), h + "mlp.proj")
        x = norm(x, "lnf")
        head = P["wte.weight"] if c["tie"] else P["lm_head.weight"]
        return x @ head.t()


def torch_decode(name, context, nd, device):
    c = config(name)
    gen = torch.Generator().manual_seed(1)
    P = {k: v.to(device) for k, v in ref.init_params(c, gen).items()}
    prompt = torch.randint(0, c["V"], (1, max(context, 1)), generator=gen).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        # the cache changes nothing: the logits of a prefill of half a sequence and then one
        # token per step equal reference_model.forward's over the whole sequence
        seq = torch.randint(0, c["V"], (1, 8), generator=gen).to(device)
        m = Cached(P, c, 1, 8, device)
        z = torch.cat([m.step(seq[:, :4], 0)] + [m.step(seq[:, i:i + 1], i) for i in range(4, 8)],
                      dim=1)
        want = ref.forward(P, c, seq)
        diff = float((z - want).abs().max()) / max(float(want.abs().max()), 1e-30)
        m = Cached(P, c, 1, context + nd + 2, device)
        pos = 0
        nxt = int(prompt[0, 0])
        if context:
            nxt = int(m.step(prompt[:, :context], 0)[0, -1].argmax())
            pos = context
        nxt = int(m.step(torch.tensor([[nxt]], device=device), pos)[0, -1].argmax())  # warm-up
        pos += 1
        sync()
        t0 = time.perf_counter()
        for _ in range(nd):
            nxt = int(m.step(torch.tensor([[nxt]], device=device), pos)[0, -1].argmax())
            pos += 1
        dt = (time.perf_counter() - t0) / nd
    return dict(tok_s=1.0 / dt, ms_per_token=dt * 1e3, cache_check_rel_diff=diff)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vklm", default=os.path.join(HERE, "..", "build", "apps", "vklm"))
    ap.add_argument("--model", default=None, choices=sorted(PRESETS))
    ap.add_argument("--context", type=int, default=None, help="tokens in the cache before decoding")
    ap.add_argument("--decode", type=int, default=None, help="timed greedy steps")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=["cuda", "cpu"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    gpu = a.device == "cuda"
    name = a.model or ("gpt2-124M" if gpu else "gpt2-tiny")
    context = a.context if a.context is not None else (128 if gpu else 16)
    nd = a.decode or (128 if gpu else 16)
    maxT = PRESETS[name][2]
    if context < 0 or nd < 1 or context + nd + 2 > maxT:
        ap.error("--context %d + --decode %d + 2 must fit %s's %d positions" % (context, nd, name, maxT))
    cmd = [a.vklm, "bench", "infer", "--json", "--model", name, "--ctx", str(context), "--decode",
           str(nd), "--batch", "1", "--prefill", str(max(context, 1)), "--seconds", "0.05"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit("bench_infer_torch.py: vklm bench infer failed (exit %d)" % p.returncode)
    vk = json.loads(p.stdout)
    d = vk["decode"][0]
    if d["context"] != context:
        sys.exit("bench_infer_torch.py: vklm decoded after %d tokens, not %d" % (d["context"], context))
    t = torch_decode(name, context, nd, a.device)
    if t["cache_check_rel_diff"] > 1e-4:
        sys.exit("bench_infer_torch.py: the cached PyTorch model differs from reference_model "
                 "(%.3g of the logits' scale)" % t["cache_check_rel_diff"])
    out = dict(model=name, context=context, decode_steps=nd, batch=1,
               device_vklm=vk["device"], device_torch=a.device, torch_threads=torch.get_num_threads(),
               torch_version=torch.__version__, kv_cache_vklm=vk.get("kv_cache"),
               vklm=dict(tok_s=d["tok_s"], ms_per_token=d["ms_per_token"],
                         submits_per_token=d.get("submits_per_token")),
               torch=t, ratio_decode_tok_s=d["tok_s"] / t["tok_s"])
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print("vklm device: %s (KV cache %s); torch %s on %s (threads %d)" % (
        vk["device"], vk.get("kv_cache"), torch.__version__, a.device, torch.get_num_threads()))
    print("%s, batch 1, greedy decode of %d tokens after %d: cached PyTorch model matches "
          "reference_model to %.2g" % (name, nd, context, t["cache_check_rel_diff"]))
    print("%-6s %12s %12s" % ("impl", "tokens/s", "ms/token"))
    print("%-6s %12.1f %12.3f" % ("vklm", d["tok_s"], d["ms_per_token"]))
    print("%-6s %12.1f %12.3f" % ("torch", t["tok_s"], t["ms_per_token"]))
    print("vklm/torch decode tokens/s at batch 1: %.2fx" % out["ratio_decode_tok_s"])


if __name__ == "__main__":
    main()
