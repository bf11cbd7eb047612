#!/usr/bin/env python3
"""PyTorch reference for vklm's alignment losses (engine/align): writes the JSON files that
tests/test_align_parity.c holds the GPU model to.

Usage:  reference_align.py --out DIR      (writes DIR/align-gpt2.json and DIR/align-llama.json)

For a tiny GPT-2 (tied) and a tiny Llama (untied, GQA), each with the scalar head, from random
weights (scripts/reference_model.py's init, in vklm's flat order):
  sft     3 examples (token ids, and which tokens are targets: the completion), right-padded one
          per row to T as engine/train's example batches lay them out (the file carries the
          expected inputs and targets too); the mean cross-entropy over the completion tokens,
          every parameter's gradient, and the losses of 3 AdamW steps.
  reward  2 prompts with K = 3 and K = 2 responses and their rankings (places; the first has a
          tie-free order 1,0,2): the reward is the scalar head at each sequence's last token;
          the loss is the mean over prompts of -mean over ordered pairs log sigmoid(r_w - r_l);
          gradients and 3 AdamW steps.
  dpo     2 pairs (chosen, rejected) after a prompt; the reference is the initial weights, the
          policy those weights plus noise (so the log-ratios are not zero); sequence log-probs
          summed over the response tokens; loss -mean log sigmoid(beta * h) with beta 0.1;
          the IPO and hinge values of the same h; the policy's gradients and 3 AdamW steps (the
          reference never changes).
AdamW: torch.optim.AdamW (weight decay on 2-D tensors only) after clip_grad_norm_(1.0)."""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as ref  # noqa: E402

IGNORE = -100
LR, BETA1, BETA2, EPS, WD, CLIP, STEPS = 1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0, 3
DPO_BETA = 0.1

CASES = {
    "align-gpt2": dict(arch="gpt2", objective="heads", V=67, maxT=24, L=2, NH=4, NKV=4, C=48,
                       F=192, tie=1),
    "align-llama": dict(arch="llama", objective="heads", V=101, maxT=32, L=2, NH=4, NKV=2, C=64,
                        F=88, tie=0),
}


def flat(P, c, grads=False):
    return ref.flat(P, c, grads=grads)


def values_of(P, c, inputs):
    logits, h = ref.forward(P, c, inputs, return_hidden=True)
    return logits, (h @ P["score.weight"].t())[..., 0] + P["score.bias"][0]


def adamw(P, c, loss_fn, steps=STEPS, skip=()):
    """Loss before each of `steps` AdamW steps on a copy of P (tensors named in skip frozen)."""
    Q = {k: v.detach().clone().requires_grad_(k not in skip) for k, v in P.items()}
    rows = [r for r in ref.table(c) if r[0] not in skip]
    opt = torch.optim.AdamW([{"params": [Q[n] for n, _, d, _ in rows if d], "weight_decay": WD},
                             {"params": [Q[n] for n, _, d, _ in rows if not d],
                              "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False)
    out = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=False)
        l = loss_fn(Q)
        l.backward()
        torch.nn.utils.clip_grad_norm_([Q[n] for n, _, _, _ in rows], CLIP)
        opt.step()
        out.append(l.item())
    return out


def grads_of(P, c, loss_fn):
    Q = {k: v.detach().clone().requires_grad_(True) for k, v in P.items()}
    l = loss_fn(Q)
    l.backward()
    return l.item(), flat(Q, c, grads=True)


def seq(gen, V, n):
    return torch.randint(0, V, (n,), generator=gen).tolist()


def sft_case(P, c, gen, T):
    lens, prompts = [T + 1, T - 5, 9], [5, 3, 4]  # the first fills the row exactly
    ex, tg = [], []
    for n, p in zip(lens, prompts):
        ex.append(seq(gen, c["V"], n))
        tg.append([0] * p + [1] * (n - p))
    B = len(ex)
    inputs = torch.zeros(B, T, dtype=torch.long)
    targets = torch.full((B, T), IGNORE, dtype=torch.long)
    for b, (ids, t) in enumerate(zip(ex, tg)):
        for j in range(T):
            if j + 1 < len(ids):
                inputs[b, j] = ids[j]
                if t[j + 1]:
                    targets[b, j] = ids[j + 1]

    def loss_fn(Q):
        return ref.loss_of(ref.forward(Q, c, inputs), targets)

    loss, g = grads_of(P, c, loss_fn)
    return dict(examples=ex, target=tg, B=B, T=T, inputs=inputs.flatten().tolist(),
                targets=targets.flatten().tolist(), loss=loss, grads=g.tolist(),
                step_losses=adamw(P, c, loss_fn))


def reward_case(P, c, gen, T):
    items = []
    for k, groups in ((3, [1, 0, 2]), (2, [0, 1])):
        prompt = seq(gen, c["V"], 4)
        resp = [seq(gen, c["V"], 3 + 2 * j) for j in range(k)]
        items.append(dict(prompt=prompt, responses=resp, group=groups))
    rows, last = [], []
    for it in items:
        for r in it["responses"]:
            s = it["prompt"] + r
            rows.append(s + [0] * (T - len(s)))
            last.append(len(s) - 1)
    inputs = torch.tensor(rows)

    def loss_fn(Q):
        _, v = values_of(Q, c, inputs)
        r = v[torch.arange(len(rows)), torch.tensor(last)]
        total, at = 0.0, 0
        for it in items:
            k, g = len(it["responses"]), it["group"]
            terms = [-F.logsigmoid(r[at + w] - r[at + l]) for w in range(k) for l in range(k)
                     if g[w] < g[l]]
            total = total + torch.stack(terms).mean()
            at += k
        return total / len(items)

    loss, g = grads_of(P, c, loss_fn)
    return dict(items=items, B=len(rows), T=T, loss=loss, grads=g.tolist(),
                step_losses=adamw(P, c, loss_fn))


def dpo_case(P, c, gen, T):
    pairs = []
    for _ in range(2):
        prompt = seq(gen, c["V"], 5)
        pairs.append(dict(prompt=prompt, chosen=seq(gen, c["V"], 6), rejected=seq(gen, c["V"], 4)))
    rows_in, rows_tg, masks = [], [], []
    for p in pairs:
        for r in (p["chosen"], p["rejected"]):
            s = p["prompt"] + r
            n = len(s) - 1
            rows_in.append(s[:n] + [0] * (T - n))
            rows_tg.append(s[1:] + [IGNORE] * (T - n))
            masks.append([1.0 if j < n and j + 1 >= len(p["prompt"]) else 0.0 for j in range(T)])
    inputs, targets, mask = torch.tensor(rows_in), torch.tensor(rows_tg), torch.tensor(masks)

    def seq_logp(Q):
        logits = ref.forward(Q, c, inputs)
        keep = targets != IGNORE
        lp = torch.log_softmax(logits, -1).gather(-1, torch.where(keep, targets, 0).unsqueeze(-1))
        return (lp[..., 0] * mask).sum(-1)

    with torch.no_grad():
        lr_ = seq_logp(P)
    noise = torch.Generator().manual_seed(99)
    Ppol = {k: v + 0.02 * torch.randn(v.shape, generator=noise) for k, v in P.items()}

    def h_of(Q):
        lp = seq_logp(Q)
        return (lp[0::2] - lr_[0::2]) - (lp[1::2] - lr_[1::2])

    def loss_fn(Q):
        return -F.logsigmoid(DPO_BETA * h_of(Q)).mean()

    loss, g = grads_of(Ppol, c, loss_fn)
    with torch.no_grad():
        h = h_of(Ppol)
        ipo = ((h - 1 / (2 * DPO_BETA)) ** 2).mean().item()
        hinge = torch.relu(1 - DPO_BETA * h).mean().item()
        lp = seq_logp(Ppol)
    return dict(pairs=pairs, B=len(rows_in), T=T, beta=DPO_BETA, policy=flat(Ppol, c).tolist(),
                ref_logp=lr_.tolist(), policy_logp=lp.tolist(), loss=loss, ipo=ipo, hinge=hinge,
                grads=g.tolist(), step_losses=adamw(Ppol, c, loss_fn))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    for i, (name, c) in enumerate(CASES.items()):
        gen = torch.Generator().manual_seed(4321 + i)
        P = ref.init_params(c, gen)
        T = c["maxT"] - 4
        doc = dict(config=c, table=[r[0] for r in ref.table(c)], params=flat(P, c).tolist(),
                   optim=dict(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS, wd=WD, clip=CLIP),
                   sft=sft_case(P, c, gen, T), reward=reward_case(P, c, gen, T),
                   dpo=dpo_case(P, c, gen, T))
        path = os.path.join(args.out, name + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f)
        os.replace(path + ".tmp", path)
        print("%s: sft %.5f reward %.5f dpo %.5f -> %s" % (name, doc["sft"]["loss"],
              doc["reward"]["loss"], doc["dpo"]["loss"], path))


if __name__ == "__main__":
    main()
