#!/usr/bin/env python3
"""PyTorch reference for vklm's decoder transformer (engine/model): writes the state files that
tests/test_model_parity.c holds the GPU model to.

Usage:  reference_model.py --out DIR      (writes DIR/<case>.state for every case below)

It builds the SAME model as engine/model (GPT-2 style: learned positions, LayerNorm with bias,
tanh-GELU MLP, tied embeddings, biases; Llama style: RoPE in the HF rotate_half convention,
RMSNorm, SwiGLU MLP with the gate and up projections fused as one (2F,C) matrix [gate; up],
grouped-query attention, untied lm head, no biases), pre-norm blocks, final norm, lm head, in
plain fp32 PyTorch on the CPU. The parameters are listed in vklm's flat order: TABLE below mirrors
engine/model/model_params.h, and the file carries the names and shapes, which the C test checks
against vklm's own table, so a drift fails loudly.

Cases: gpt2-causal, gpt2-mlm, llama-causal, llama-mlm (tiny, odd sizes). For each: random
initial weights (fixed seed; norm weights and biases randomised too, so that their gradients are
tested), a random batch, the forward (logits, mean loss), the gradient of every parameter, and
then 10 AdamW steps (torch.optim.AdamW, weight decay on the 2-D tensors only, clip_grad_norm_
before each step) on the same batch, recording the loss before each step and the gradient norm.
MLM: bidirectional attention; 15% of positions chosen (at least one), 80% -> [MASK] = V-1,
10% random token, 10% kept; targets are -100 (ignored) elsewhere.

STATE FILE FORMAT (version 1; all little-endian; documented in docs/formats.md too)
  header, 108 bytes:
    char[8] magic "VKLMSTAT"
    u32     version = 1
    u32 x14 arch (0 GPT-2, 1 Llama), objective (0 causal, 1 MLM), V, maxT, L, NH, NKV, C, F,
            tie_embeddings, B, T, nsteps, ntensors
    f32 x8  norm_eps, rope_theta, lr, beta1, beta2, eps, weight_decay, grad_clip
    u64     nparams (floats in the flat parameter vector)
  tensor directory, ntensors entries of 96 bytes, in flat order:
    char[64] name (NUL padded), u32 ndim, u32 shape[2] (shape[1] = 0 for 1-D), u32 decay,
    u64 offset (floats), u64 count (floats)
  data:
    i32 inputs[B*T], i32 targets[B*T] (-100 = ignored),
    f32 params[nparams] (initial), f32 logits[B*T*V], f32 loss,
    f32 grads[nparams] (of the mean loss at the initial params),
    f32 step_losses[nsteps] (loss before AdamW step k+1), f32 step_norms[nsteps] (grad norm
    before clipping at step k+1)
"""
import argparse
import math
import os
import struct

import torch
import torch.nn.functional as F

MAGIC = b"VKLMSTAT"
VERSION = 1
IGNORE = -100

CASES = {
    # name: (arch, objective, V, maxT, L, NH, NKV, C, F, tie, B, T, lr)
    "gpt2-causal": ("gpt2", "causal", 67, 24, 2, 4, 4, 48, 192, 1, 3, 19, 1e-2),
    "gpt2-mlm": ("gpt2", "mlm", 67, 24, 2, 4, 4, 48, 192, 1, 3, 19, 1e-2),
    "llama-causal": ("llama", "causal", 101, 32, 2, 4, 2, 64, 88, 0, 2, 21, 1e-2),
    "llama-mlm": ("llama", "mlm", 101, 32, 2, 4, 2, 64, 88, 0, 2, 21, 3e-3),
}
NSTEPS = 10
BETA1, BETA2, EPS, WD, CLIP = 0.9, 0.95, 1e-8, 0.1, 1.0
NORM_EPS, ROPE_THETA = 1e-5, 10000.0


def table(c):
    """(name, shape, decay, init) in vklm's flat order: mirrors engine/model/model_params.h."""
    gpt2 = c["arch"] == "gpt2"
    C, V, HS = c["C"], c["V"], c["C"] // c["NH"]
    QKV = (c["NH"] + 2 * c["NKV"]) * HS
    FC = c["F"] if gpt2 else 2 * c["F"]
    rows = [("wte.weight", (V, C), 1, "normal")]
    if gpt2:
        rows.append(("wpe.weight", (c["maxT"], C), 1, "normal"))
    for l in range(c["L"]):
        h = "h.%d." % l
        rows.append((h + "ln1.weight", (C,), 0, "one"))
        if gpt2:
            rows.append((h + "ln1.bias", (C,), 0, "zero"))
        rows.append((h + "attn.qkv.weight", (QKV, C), 1, "normal"))
        if gpt2:
            rows.append((h + "attn.qkv.bias", (QKV,), 0, "zero"))
        rows.append((h + "attn.proj.weight", (C, C), 1, "resid"))
        if gpt2:
            rows.append((h + "attn.proj.bias", (C,), 0, "zero"))
        rows.append((h + "ln2.weight", (C,), 0, "one"))
        if gpt2:
            rows.append((h + "ln2.bias", (C,), 0, "zero"))
        rows.append((h + "mlp.fc.weight", (FC, C), 1, "normal"))
        if gpt2:
            rows.append((h + "mlp.fc.bias", (FC,), 0, "zero"))
        rows.append((h + "mlp.proj.weight", (C, c["F"]), 1, "resid"))
        if gpt2:
            rows.append((h + "mlp.proj.bias", (C,), 0, "zero"))
    rows.append(("lnf.weight", (C,), 0, "one"))
    if gpt2:
        rows.append(("lnf.bias", (C,), 0, "zero"))
    if not c["tie"]:
        rows.append(("lm_head.weight", (V, C), 1, "normal"))
    return rows


def init_params(c, gen):
    P = {}
    resid = 0.02 / math.sqrt(2 * c["L"])
    for name, shape, _, kind in table(c):
        r = torch.randn(shape, generator=gen)
        if kind == "normal":
            t = 0.02 * r
        elif kind == "resid":
            t = resid * r
        elif kind == "one":  # randomised around 1 so the weight's gradient is tested
            t = 1.0 + 0.1 * r
        else:  # biases: small random values instead of 0, for the same reason
            t = 0.02 * r
        P[name] = t.float().contiguous()
    return P


def rope(x, T, HS):
    inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, HS, 2).float() / HS))
    t = torch.arange(T).float()
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def forward(P, c, inputs):
    gpt2 = c["arch"] == "gpt2"
    B, T = inputs.shape
    C, NH, NKV, Fh = c["C"], c["NH"], c["NKV"], c["F"]
    HS = C // NH

    def norm(x, pre):
        if gpt2:
            return F.layer_norm(x, (C,), P[pre + ".weight"], P[pre + ".bias"], NORM_EPS)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * P[pre + ".weight"]

    def lin(x, pre):
        y = x @ P[pre + ".weight"].t()
        return y + P[pre + ".bias"] if gpt2 else y

    x = P["wte.weight"][inputs]
    if gpt2:
        x = x + P["wpe.weight"][:T]
    for l in range(c["L"]):
        h = "h.%d." % l
        qkv = lin(norm(x, h + "ln1"), h + "attn.qkv")
        q = qkv[..., : NH * HS].view(B, T, NH, HS).transpose(1, 2)
        k = qkv[..., NH * HS: (NH + NKV) * HS].view(B, T, NKV, HS).transpose(1, 2)
        v = qkv[..., (NH + NKV) * HS:].view(B, T, NKV, HS).transpose(1, 2)
        if not gpt2:
            q, k = rope(q, T, HS), rope(k, T, HS)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
        if c["objective"] == "causal":
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(y, h + "attn.proj")
        f = lin(norm(x, h + "ln2"), h + "mlp.fc")
        if gpt2:
            a = F.gelu(f, approximate="tanh")
        else:
            a = F.silu(f[..., :Fh]) * f[..., Fh:]
        x = x + lin(a, h + "mlp.proj")
    x = norm(x, "lnf")
    head = P["wte.weight"] if c["tie"] else P["lm_head.weight"]
    return x @ head.t()


def loss_of(logits, targets):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE)


def make_batch(c, gen):
    B, T, V = c["B"], c["T"], c["V"]
    if c["objective"] == "causal":
        seq = torch.randint(0, V, (B, T + 1), generator=gen)
        return seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    mask_id = V - 1
    tokens = torch.randint(0, V - 1, (B, T), generator=gen)
    chosen = torch.rand(B, T, generator=gen) < 0.15
    if not chosen.any():
        chosen[0, 0] = True
    r = torch.rand(B, T, generator=gen)
    rand_tok = torch.randint(0, V, (B, T), generator=gen)
    inputs = tokens.clone()
    inputs[chosen & (r < 0.8)] = mask_id
    sel = chosen & (r >= 0.8) & (r < 0.9)
    inputs[sel] = rand_tok[sel]
    targets = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE))
    return inputs, targets


def flat(P, c, grads=False):
    parts = []
    for name, _, _, _ in table(c):
        t = P[name].grad if grads else P[name]
        parts.append(t.detach().reshape(-1))
    return torch.cat(parts)


def run_case(name, spec, seed):
    arch, obj, V, maxT, L, NH, NKV, C, Fh, tie, B, T, lr = spec
    c = dict(arch=arch, objective=obj, V=V, maxT=maxT, L=L, NH=NH, NKV=NKV, C=C, F=Fh, tie=tie,
             B=B, T=T)
    gen = torch.Generator().manual_seed(seed)
    P = init_params(c, gen)
    inputs, targets = make_batch(c, gen)
    params0 = flat(P, c)
    for t in P.values():
        t.requires_grad_(True)
    logits = forward(P, c, inputs)
    loss = loss_of(logits, targets)
    loss.backward()
    grads = flat(P, c, grads=True)
    logits = logits.detach()
    # AdamW steps from the same initial parameters, on the same batch.
    Q = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
    rows = table(c)
    decay = [Q[n] for n, _, d, _ in rows if d]
    nodecay = [Q[n] for n, _, d, _ in rows if not d]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=lr, betas=(BETA1, BETA2), eps=EPS, foreach=False)
    step_losses, step_norms = [], []
    for _ in range(NSTEPS):
        opt.zero_grad(set_to_none=False)
        l = loss_of(forward(Q, c, inputs), targets)
        l.backward()
        norm = torch.nn.utils.clip_grad_norm_([Q[n] for n, _, _, _ in rows], CLIP)
        opt.step()
        step_losses.append(l.item())
        step_norms.append(float(norm))
    return c, rows, inputs, targets, params0, logits, loss.item(), grads, step_losses, step_norms, lr


def write_state(path, c, rows, inputs, targets, params, logits, loss, grads, step_losses,
                step_norms, lr):
    arch = 0 if c["arch"] == "gpt2" else 1
    obj = 0 if c["objective"] == "causal" else 1
    nparams = params.numel()
    hdr = MAGIC + struct.pack("<I", VERSION)
    hdr += struct.pack("<14I", arch, obj, c["V"], c["maxT"], c["L"], c["NH"], c["NKV"], c["C"],
                       c["F"], c["tie"], c["B"], c["T"], NSTEPS, len(rows))
    hdr += struct.pack("<8f", NORM_EPS, ROPE_THETA, lr, BETA1, BETA2, EPS, WD, CLIP)
    hdr += struct.pack("<Q", nparams)
    assert len(hdr) == 108
    off = 0
    for name, shape, decay, _ in rows:
        count = 1
        for d in shape:
            count *= d
        s = list(shape) + [0] * (2 - len(shape))
        hdr += struct.pack("<64s4I2Q", name.encode(), len(shape), s[0], s[1], decay, off, count)
        off += count
    assert off == nparams

    def f32(t):
        return t.detach().float().contiguous().numpy().astype("<f4").tobytes()

    def i32(t):
        return t.contiguous().numpy().astype("<i4").tobytes()

    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(hdr)
        f.write(i32(inputs))
        f.write(i32(targets))
        f.write(f32(params))
        f.write(f32(logits))
        f.write(struct.pack("<f", loss))
        f.write(f32(grads))
        f.write(struct.pack("<%df" % NSTEPS, *step_losses))
        f.write(struct.pack("<%df" % NSTEPS, *step_norms))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for the .state files")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    for name in args.cases.split(","):
        # the seed depends on the case alone, not on which cases were asked for
        r = run_case(name, CASES[name], seed=1234 + list(CASES).index(name))
        path = os.path.join(args.out, name + ".state")
        write_state(path, *r)
        print("%-13s loss %.6f  steps: %s  grad norms: %s -> %s" % (
            name, r[6], " ".join("%.4f" % x for x in r[8]),
            " ".join("%.3f" % x for x in r[9][:3]), path))


if __name__ == "__main__":
    main()
