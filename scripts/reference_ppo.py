#!/usr/bin/env python3
"""PyTorch reference for vklm's PPO update (engine/align/ppo_loss.c): writes the JSON files that
tests/test_ppo_parity.c holds the GPU models to, written from the formulas in docs/alignment.md.

Usage:  reference_ppo.py --out DIR      (writes DIR/ppo-gpt2.json and DIR/ppo-llama.json)

For a tiny GPT-2 (tied) and a tiny Llama (untied, GQA), from random weights
(scripts/reference_model.py's init, in vklm's flat order):
  models   the policy (no scalar head), the value model (other weights, with the scalar head;
           an untied LM head is frozen: nothing reads it), and a reference (policy + noise) that
           only supplies the reference log-probs;
  batch    a FIXED rollout batch of N = 6 rows: 3 prompts x 2 responses of different lengths,
           laid out as vklm_align_row does (inputs = sequence minus its last token, targets the
           next tokens, mask 1 on the response's targets), right-padded to T; old log-probs
           (the policy's), reference log-probs, values (the value model's) and scores (random);
  expected per-token rewards -beta * (logp - logp_ref) + score at the last response token, GAE
           (gamma 1, lambda 0.95) advantages whitened over all response tokens, returns = raw
           advantages + values; also the advantages with the k3 estimator and reward whitening;
           for the first minibatch (rows order[0][:4]) the clipped policy loss, the clipped value
           loss and every parameter gradient of both models (the value model's scaled by
           vf_coef); then 4 epochs, each over that epoch's permutation of the rows in
           minibatches of 4 (4 and 2 rows), one AdamW step of each model per minibatch: every
           minibatch's two losses and both models' parameters at the end.
AdamW: torch.optim.AdamW (weight decay on 2-D tensors only) after clip_grad_norm_(1.0) per
model."""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_model as ref  # noqa: E402

IGNORE = -100
LR, BETA1, BETA2, EPS, WD, CLIP = 3e-3, 0.9, 0.999, 1e-8, 0.1, 1.0
HP = dict(beta=0.1, gamma=1.0, lam=0.95, clip=0.2, vclip=0.2, vf_coef=0.1, epochs=4, minibatch=4)

CASES = {
    "ppo-gpt2": dict(arch="gpt2", objective="heads", V=67, maxT=24, L=2, NH=4, NKV=4, C=48,
                     F=192, tie=1),
    "ppo-llama": dict(arch="llama", objective="heads", V=101, maxT=32, L=2, NH=4, NKV=2, C=64,
                      F=88, tie=0),
}


def token_logp(Q, c, inputs, targets):
    logits = ref.forward(Q, c, inputs)
    keep = targets != IGNORE
    lp = torch.log_softmax(logits, -1).gather(-1, torch.where(keep, targets, 0).unsqueeze(-1))[..., 0]
    return torch.where(keep, lp, torch.zeros_like(lp))


def values_of(W, c, inputs):
    _, h = ref.forward(W, c, inputs, return_hidden=True)
    return (h @ W["score.weight"].t())[..., 0] + W["score.bias"][0]


def masked_whiten(x, m, shift_mean=True):
    n = m.sum()
    mean = (x * m).sum() / n
    var = (((x - mean) ** 2) * m).sum() / (n - 1)
    w = (x - mean) * torch.rsqrt(var + 1e-8)
    return w if shift_mean else w + mean


def advantages(old, refl, values, score, mask, beta, gamma, lam, k3=False, whiten_rewards=False):
    """All in float64. Per-token rewards, whitened advantages, returns."""
    if k3:
        d = refl - old
        kl = torch.exp(d) - 1 - d
    else:
        kl = old - refl
    r = -beta * kl * mask
    N, T = mask.shape
    for n in range(N):
        last = int(mask[n].nonzero().max())
        r[n, last] += score[n]
    if whiten_rewards:
        r = torch.where(mask > 0, masked_whiten(r, mask, shift_mean=False), r)
    adv = torch.zeros_like(r)
    for n in range(N):
        gae, nv = 0.0, 0.0
        for t in reversed(range(T)):
            if mask[n, t] == 0:
                continue
            v = values[n, t]
            delta = r[n, t] + gamma * nv - v
            gae = delta + gamma * lam * gae
            adv[n, t] = gae
            nv = v
    ret = (adv + values) * mask
    adv = torch.where(mask > 0, masked_whiten(adv, mask), torch.zeros_like(adv))
    return r, adv, ret


def losses(Q, W, c, b, rows):
    inputs, targets, mask = b["inputs"][rows], b["targets"][rows], b["mask"][rows]
    A, R, old, ov = b["adv"][rows], b["ret"][rows], b["old"][rows], b["values"][rows]
    lp = token_logp(Q, c, inputs, targets)
    v = values_of(W, c, inputs)
    M = mask.sum()
    ratio = torch.exp(lp - old)
    pg = torch.max(-A * ratio, -A * torch.clamp(ratio, 1 - HP["clip"], 1 + HP["clip"]))
    pg = (pg * mask).sum() / M
    vc = ov + torch.clamp(v - ov, -HP["vclip"], HP["vclip"])
    vf = 0.5 * (torch.max((v - R) ** 2, (vc - R) ** 2) * mask).sum() / M
    return pg, vf


def make_opt(P, rows):
    return torch.optim.AdamW(
        [{"params": [P[n] for n, _, d, _ in rows if d], "weight_decay": WD},
         {"params": [P[n] for n, _, d, _ in rows if not d], "weight_decay": 0.0}],
        lr=LR, betas=(BETA1, BETA2), eps=EPS, foreach=False)


def case(c, gen):
    Pfull = ref.init_params(c, gen)
    pol_names = [r[0] for r in ref.table(c) if not r[0].startswith("score.")]
    val_names = [r[0] for r in ref.table(c) if r[0] != "lm_head.weight"]
    Wfull = ref.init_params(c, gen)
    noise = torch.Generator().manual_seed(77)
    Rfull = {k: v + 0.02 * torch.randn(v.shape, generator=noise) for k, v in Pfull.items()}
    T = c["maxT"] - 4
    prompts, responses = [], []
    for _ in range(3):
        p = torch.randint(0, c["V"], (int(torch.randint(3, 6, (1,), generator=gen)),),
                          generator=gen).tolist()
        for _ in range(2):
            n = int(torch.randint(2, 8, (1,), generator=gen))
            prompts.append(p)
            responses.append(torch.randint(0, c["V"], (n,), generator=gen).tolist())
    N = len(prompts)
    inputs = torch.zeros(N, T, dtype=torch.long)
    targets = torch.full((N, T), IGNORE, dtype=torch.long)
    mask = torch.zeros(N, T)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        s = p + r
        for t in range(len(s) - 1):
            inputs[i, t] = s[t]
            targets[i, t] = s[t + 1]
            mask[i, t] = 1.0 if t + 1 >= len(p) else 0.0
    with torch.no_grad():
        old = token_logp(Pfull, c, inputs, targets)
        refl = token_logp(Rfull, c, inputs, targets)
        values = values_of(Wfull, c, inputs) * mask  # 0 off the response (as saved by vklm)
    score = torch.randn(N, generator=gen)
    d = lambda x: x.double()  # noqa: E731
    rew, adv, ret = advantages(d(old), d(refl), d(values), d(score), d(mask), HP["beta"],
                               HP["gamma"], HP["lam"])
    _, adv3, ret3 = advantages(d(old), d(refl), d(values), d(score), d(mask), HP["beta"],
                               HP["gamma"], HP["lam"], k3=True, whiten_rewards=True)
    b = dict(inputs=inputs, targets=targets, mask=mask, old=old, values=values,
             adv=adv.float(), ret=ret.float())
    orders = [torch.randperm(N, generator=gen).tolist() for _ in range(HP["epochs"])]
    mb = HP["minibatch"]

    # gradients of the first minibatch
    Q = {k: Pfull[k].clone().requires_grad_(True) for k in pol_names}
    W = {k: Wfull[k].clone().requires_grad_(True) for k in val_names}
    pg, vf = losses(Q, dict(Wfull, **W), c, b, orders[0][:mb])
    (pg + HP["vf_coef"] * vf).backward()
    full_q = dict(Pfull, **Q)
    full_w = dict(Wfull, **W)
    gq = ref.flat(full_q, c, grads=True)
    gw = ref.flat(full_w, c, grads=True)
    first = dict(pg=pg.item(), vf=vf.item())

    # the 4 epochs
    Q = {k: Pfull[k].clone().requires_grad_(True) for k in pol_names}
    W = {k: Wfull[k].clone().requires_grad_(True) for k in val_names}
    prow = [r for r in ref.table(c) if r[0] in Q]
    vrow = [r for r in ref.table(c) if r[0] in W]
    oq, ow = make_opt(Q, prow), make_opt(W, vrow)
    pg_hist, vf_hist = [], []
    for e in range(HP["epochs"]):
        for at in range(0, N, mb):
            rows = orders[e][at:at + mb]
            oq.zero_grad(set_to_none=False)
            ow.zero_grad(set_to_none=False)
            pg, vf = losses(Q, dict(Wfull, **W), c, b, rows)
            (pg + HP["vf_coef"] * vf).backward()
            torch.nn.utils.clip_grad_norm_(list(Q.values()), CLIP)
            torch.nn.utils.clip_grad_norm_(list(W.values()), CLIP)
            oq.step()
            ow.step()
            pg_hist.append(pg.item())
            vf_hist.append(vf.item())
    after_q = ref.flat(dict(Pfull, **{k: v.detach() for k, v in Q.items()}), c)
    after_w = ref.flat(dict(Wfull, **{k: v.detach() for k, v in W.items()}), c)
    fl = lambda t: t.flatten().tolist()  # noqa: E731
    return dict(config=c, table=[r[0] for r in ref.table(c)], hp=HP,
                optim=dict(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS, wd=WD, clip=CLIP),
                policy=fl(ref.flat(Pfull, c)), value=fl(ref.flat(Wfull, c)),
                N=N, T=T, prompts=prompts, responses=responses,
                inputs=fl(inputs), targets=fl(targets), mask=fl(mask),
                old_logp=fl(old), ref_logp=fl(refl), values=fl(values), score=fl(score),
                rewards=fl(rew), adv=fl(adv), ret=fl(ret), adv_k3_whiten=fl(adv3),
                ret_k3_whiten=fl(ret3), orders=orders, first=first,
                policy_grads=fl(gq), value_grads=fl(gw), pg_hist=pg_hist, vf_hist=vf_hist,
                policy_after=fl(after_q), value_after=fl(after_w))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    for i, (name, c) in enumerate(CASES.items()):
        gen = torch.Generator().manual_seed(2468 + i)
        doc = case(c, gen)
        path = os.path.join(args.out, name + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f)
        os.replace(path + ".tmp", path)
        print("%s: first minibatch pg %.5f vf %.5f; last pg %.5f vf %.5f -> %s" % (
            name, doc["first"]["pg"], doc["first"]["vf"], doc["pg_hist"][-1], doc["vf_hist"][-1],
            path))


if __name__ == "__main__":
    main()
