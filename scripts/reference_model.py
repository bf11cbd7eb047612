#!/usr/bin/env python3
"""PyTorch reference for vklm's decoder transformer (engine/model): writes the state files that
tests/test_model_parity.c and tests/test_train_parity.c hold the GPU model to, and is the one
PyTorch forward every Python test imports (tests put scripts/ on sys.path and `import
reference_model as ref`).

Usage:  reference_model.py --out DIR      (writes DIR/<case>.state for every case below)

As a module: `forward(P, c, inputs, return_hidden=False)` on vklm-named weights P (torch tensors of
any float dtype: the computation runs in that dtype) for a config dict c (keys arch, V, maxT, L,
NH, NKV, C, F, tie; optional objective "causal" (default) or "mlm", eps, theta) and inputs (B,T)
or (T,) of any length up to maxT; `loss_of(logits, targets)`; `greedy(P, c, prompt, n)` (KV-free:
the whole sequence is re-run per token); `from_hf(W, c)` maps Hugging Face names (GPT2LMHeadModel
with or without "transformer.", LlamaForCausalLM) to vklm's, fusing and transposing as vklm's
layout needs; `config_from_hf(conf)` reads an HF config.json dict; `torch_params(W, dtype)`.

It builds the SAME model as engine/model (GPT-2 style: learned positions, LayerNorm with bias,
tanh-GELU MLP, tied embeddings, biases; Llama style: RoPE in the HF rotate_half convention,
RMSNorm, SwiGLU MLP with the gate and up projections fused as one (2F,C) matrix [gate; up],
grouped-query attention, untied lm head, no biases), pre-norm blocks, final norm, lm head, in
plain fp32 PyTorch on the CPU. The parameters are listed in vklm's flat order: TABLE below mirrors
engine/model/model_params.h, and the file carries the names and shapes, which the C test checks
against vklm's own table, so a drift fails loudly.

Cases: gpt2-causal, gpt2-mlm, llama-causal, llama-mlm (tiny, odd sizes), and gpt2-causal-masked
(B=4: a causal batch whose targets are partly ignored, -100, with very different counts in the
two halves of the batch: ~90% kept in rows 0-1, 3 targets in rows 2-3; for test_train_parity's
gradient accumulation over 2 micro-batches of B/2; objective 0 in the file). For each: random
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
    "gpt2-causal-masked": ("gpt2", "causal-masked", 67, 24, 2, 4, 4, 48, 192, 1, 4, 19, 1e-2),
    # heads: a scalar head, right-padded sequences of different lengths with a masked prompt,
    # per-sequence coefficients on the log-probs and weights on the values (HEADS FILE below)
    "gpt2-heads": ("gpt2", "heads", 67, 24, 2, 4, 4, 48, 192, 1, 5, 17, 1e-2),
    "llama-heads": ("llama", "heads", 101, 32, 2, 4, 2, 64, 88, 0, 3, 15, 1e-2),
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
    if c.get("objective") == "heads":  # the scalar head (model_params.h's score)
        rows.append(("score.weight", (1, C), 1, "normal"))
        rows.append(("score.bias", (1,), 0, "zero"))
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


def rope(x, T, HS, theta=ROPE_THETA):
    """RoPE in the HF rotate_half convention, computed in x's dtype."""
    dt = x.dtype
    inv_freq = 1.0 / (theta ** (torch.arange(0, HS, 2, dtype=dt) / HS))
    t = torch.arange(T, dtype=dt)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def layer_ops(P, c):
    """(norm, lin): the norm (LayerNorm for GPT-2, RMSNorm for Llama) and the linear layer of the
    vklm-named weights P under a prefix, for config c. Shared by forward() and the cached decode
    of scripts/bench_infer_torch.py."""
    gpt2, C, eps = c["arch"] == "gpt2", c["C"], c.get("eps", NORM_EPS)

    def norm(x, pre):
        if gpt2:
            return F.layer_norm(x, (C,), P[pre + ".weight"], P[pre + ".bias"], eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * P[pre + ".weight"]

    def lin(x, pre):
        y = x @ P[pre + ".weight"].t()
        return y + P[pre + ".bias"] if gpt2 else y

    return norm, lin


def mlp_act(f, c):
    """The MLP activation of the hidden f: GELU (tanh) for GPT-2, SwiGLU of the fused gate|up."""
    if c["arch"] == "gpt2":
        return F.gelu(f, approximate="tanh")
    return F.silu(f[..., :c["F"]]) * f[..., c["F"]:]


def forward(P, c, inputs, return_hidden=False):
    """Logits (B,T,V) of vklm-named weights P for inputs (B,T) (or (T,): logits (T,V)); with
    return_hidden, (logits, h) where h is the final normed hidden state (B,T,C), the lm head's
    input."""
    gpt2 = c["arch"] == "gpt2"
    inputs = torch.as_tensor(inputs, dtype=torch.long)
    squeeze = inputs.dim() == 1
    if squeeze:
        inputs = inputs.unsqueeze(0)
    B, T = inputs.shape
    C, NH, NKV = c["C"], c["NH"], c["NKV"]
    HS = C // NH
    theta = c.get("theta", ROPE_THETA)
    causal = c.get("objective", "causal") != "mlm"

    norm, lin = layer_ops(P, c)

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
            q, k = rope(q, T, HS, theta), rope(k, T, HS, theta)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
        if causal:
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(y, h + "attn.proj")
        f = lin(norm(x, h + "ln2"), h + "mlp.fc")
        x = x + lin(mlp_act(f, c), h + "mlp.proj")
    x = norm(x, "lnf")
    head = P["wte.weight"] if c["tie"] else P["lm_head.weight"]
    logits = x @ head.t()
    if squeeze:
        logits, x = logits[0], x[0]
    return (logits, x) if return_hidden else logits


def loss_of(logits, targets):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE)


def greedy(P, c, prompt, n):
    """n greedy ids after prompt, re-running the whole sequence per token (no KV cache), and the
    smallest top-1 minus top-2 logit gap along the path divided by the largest |logit| (how
    robust the argmax is across implementations)."""
    ids, gap, big = list(prompt), float("inf"), 0.0
    with torch.no_grad():
        for _ in range(n):
            z = forward(P, c, ids)[-1]
            top = torch.topk(z, 2).values
            gap = min(gap, float(top[0] - top[1]))
            big = max(big, float(z.abs().max()))
            ids.append(int(z.argmax()))
    return ids[len(prompt):], gap / big


# ---- Hugging Face names ------------------------------------------------------------------------
def _cat(xs):
    return torch.cat(xs) if isinstance(xs[0], torch.Tensor) else __import__("numpy").concatenate(xs)


def from_hf(W, c):
    """vklm-named weights from Hugging Face ones (GPT2LMHeadModel, keys with or without
    "transformer."; LlamaForCausalLM): GPT-2's Conv1D (in, out) weights transposed to vklm's
    (out, in); Llama's q/k/v fused into attn.qkv (rows q, k, v) and gate/up into mlp.fc (rows
    gate, up); no RoPE permutation (HF's rotate_half is vklm's). Values stay numpy arrays or torch
    tensors. Every key of W must be used (GPT-2's attention-mask buffers and a tied lm_head
    aside): a leftover or missing tensor raises KeyError."""
    W = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in W.items()}
    used = set()

    def get(k):
        used.add(k)
        return W[k]

    e = {}
    if c["arch"] == "gpt2":
        e["wte.weight"], e["wpe.weight"] = get("wte.weight"), get("wpe.weight")
        for l in range(c["L"]):
            h = "h.%d." % l
            for a, b, tr in (("ln1", "ln_1", 0), ("attn.qkv", "attn.c_attn", 1),
                             ("attn.proj", "attn.c_proj", 1), ("ln2", "ln_2", 0),
                             ("mlp.fc", "mlp.c_fc", 1), ("mlp.proj", "mlp.c_proj", 1)):
                w = get(h + b + ".weight")
                e[h + a + ".weight"] = w.T if tr else w
                e[h + a + ".bias"] = get(h + b + ".bias")
        e["lnf.weight"], e["lnf.bias"] = get("ln_f.weight"), get("ln_f.bias")
        ignorable = lambda k: k.endswith((".attn.bias", ".attn.masked_bias")) or k == "lm_head.weight"
    else:
        e["wte.weight"] = get("model.embed_tokens.weight")
        for l in range(c["L"]):
            h, m = "h.%d." % l, "model.layers.%d." % l
            e[h + "ln1.weight"] = get(m + "input_layernorm.weight")
            e[h + "attn.qkv.weight"] = _cat([get(m + "self_attn.%s_proj.weight" % x) for x in "qkv"])
            e[h + "attn.proj.weight"] = get(m + "self_attn.o_proj.weight")
            e[h + "ln2.weight"] = get(m + "post_attention_layernorm.weight")
            e[h + "mlp.fc.weight"] = _cat([get(m + "mlp.gate_proj.weight"),
                                           get(m + "mlp.up_proj.weight")])
            e[h + "mlp.proj.weight"] = get(m + "mlp.down_proj.weight")
        e["lnf.weight"] = get("model.norm.weight")
        if not c["tie"]:
            e["lm_head.weight"] = get("lm_head.weight")
        ignorable = lambda k: c["tie"] and k == "lm_head.weight"
    left = [k for k in W if k not in used and not ignorable(k)]
    if left:
        raise KeyError("from_hf: tensors vklm has no place for: %s" % left[:5])
    return e


def config_from_hf(conf):
    """The config dict of forward() from a Hugging Face config.json (gpt2 or llama)."""
    if conf["model_type"] == "gpt2":
        C = conf["n_embd"]
        return dict(arch="gpt2", V=conf["vocab_size"], maxT=conf["n_positions"], L=conf["n_layer"],
                    NH=conf["n_head"], NKV=conf["n_head"], C=C, F=conf.get("n_inner") or 4 * C,
                    tie=True, eps=conf.get("layer_norm_epsilon", NORM_EPS))
    return dict(arch="llama", V=conf["vocab_size"], maxT=conf["max_position_embeddings"],
                L=conf["num_hidden_layers"], NH=conf["num_attention_heads"],
                NKV=conf.get("num_key_value_heads") or conf["num_attention_heads"],
                C=conf["hidden_size"], F=conf["intermediate_size"],
                tie=bool(conf.get("tie_word_embeddings", False)),
                eps=conf.get("rms_norm_eps", NORM_EPS), theta=conf.get("rope_theta", ROPE_THETA))


def torch_params(W, dtype=torch.float64):
    """numpy arrays or tensors -> contiguous torch tensors of dtype."""
    return {k: torch.as_tensor(__import__("numpy").ascontiguousarray(v) if not isinstance(
        v, torch.Tensor) else v).to(dtype).contiguous() for k, v in W.items()}


def make_batch(c, gen):
    B, T, V = c["B"], c["T"], c["V"]
    if c["objective"] == "heads":  # right padding: sequence b is len_b tokens long
        seq = torch.randint(0, V, (B, T + 1), generator=gen)
        inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
        for b in range(B):
            n = T - 4 * b
            inputs[b, n:] = 0
            targets[b, n:] = IGNORE
        return inputs, targets
    if c["objective"] in ("causal", "causal-masked"):
        seq = torch.randint(0, V, (B, T + 1), generator=gen)
        inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
        if c["objective"] == "causal-masked":
            # rows [0, B/2): ~90% of the targets kept; rows [B/2, B): 3 targets kept in all, so
            # the two halves' means weigh very differently from the batch's mean
            keep = torch.rand(B, T, generator=gen) < 0.9
            keep[B // 2:] = False
            for i in torch.randperm((B - B // 2) * T, generator=gen)[:3].tolist():
                keep[B // 2 + i // T, i % T] = True
            targets = torch.where(keep, targets, torch.full_like(targets, IGNORE))
        return inputs, targets
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
        if t is None:  # a tensor the loss does not reach (the scalar head under the LM loss)
            t = torch.zeros_like(P[name])
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
    heads = heads_case(c, P, inputs, targets, gen) if obj == "heads" else None
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
    return (c, rows, inputs, targets, params0, logits, loss.item(), grads, step_losses,
            step_norms, lr, heads)


def heads_case(c, P, inputs, targets, gen):
    """The heads of the model on the batch: per-token log-probs of the targets (0 where ignored),
    per-sequence sums over a mask (the first 3 positions, a "prompt", and the padding masked
    out), the scalar head's values, and the gradient of
        L = sum_b coef_b * seq_logp_b + sum_{b,t} value_w_{b,t} * values_{b,t}
    for random per-sequence coefficients and value weights (what DPO/PPO/reward training feed
    vklm_model_backward)."""
    B, T = inputs.shape
    Q = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
    logits, h = forward(Q, c, inputs, return_hidden=True)
    values = (h @ Q["score.weight"].t())[..., 0] + Q["score.bias"][0]
    keep = targets != IGNORE
    logp = torch.log_softmax(logits, -1).gather(-1, torch.where(keep, targets, 0).unsqueeze(-1))
    logp = torch.where(keep, logp[..., 0], torch.zeros(()))
    mask = keep.float()
    mask[:, :3] = 0
    seq = (logp * mask).sum(-1)
    coef = torch.randn(B, generator=gen)
    value_w = torch.randn(B, T, generator=gen) * 0.1
    L = (coef * seq).sum() + (value_w * values).sum()
    L.backward()
    return dict(mask=mask, coef=coef, value_w=value_w, token_logp=logp.detach(),
                seq_logp=seq.detach(), values=values.detach(), L=L.item(),
                grads=flat(Q, c, grads=True))


def write_heads(path, hd):
    """HEADS FILE (<case>.heads, beside the .state whose batch and parameters it uses; all
    little-endian f32): char[8] "VKLMHEAD", then mask (B,T), coef (B), value_w (B,T),
    token_logp (B,T), seq_logp (B), values (B,T), L (1), grads (nparams)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"VKLMHEAD")
        for k in ("mask", "coef", "value_w", "token_logp", "seq_logp", "values"):
            f.write(hd[k].detach().float().contiguous().numpy().astype("<f4").tobytes())
        f.write(struct.pack("<f", hd["L"]))
        f.write(hd["grads"].detach().float().contiguous().numpy().astype("<f4").tobytes())
    os.replace(tmp, path)


def write_state(path, c, rows, inputs, targets, params, logits, loss, grads, step_losses,
                step_norms, lr, heads=None):
    arch = 0 if c["arch"] == "gpt2" else 1
    obj = 1 if c["objective"] == "mlm" else 0
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
    if heads is not None:
        write_heads(path[: -len(".state")] + ".heads", heads)


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
        print("%-18s loss %.6f  steps: %s  grad norms: %s -> %s" % (
            name, r[6], " ".join("%.4f" % x for x in r[8]),
            " ".join("%.3f" % x for x in r[9][:3]), path))


if __name__ == "__main__":
    main()
