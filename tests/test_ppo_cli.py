"""`vklm ppo` end to end on tiny models (usage: test_ppo_cli.py vklm), as a user runs it:
  - a tokenizer and a tiny GPT-2 pretrained briefly on lines of 5 words drawn from 8 ("apple",
    "river", ..., "music"): the policy and the reference;
  - a reward model on a documented, learnable synthetic preference: a response of three words
    that contains "music" over the same response without it (`vklm reward train`, normalised on
    the base model's own samples);
  - `vklm ppo` from the base model for 10 iterations: the mean reward rises clearly, the share
    of sampled responses containing "music" rises, the KL to the reference starts at 0 (the
    policy and the reference hold the same weights) and stays below a bound, every figure is
    logged, the outputs exist and the reference checkpoint on disk is unchanged;
  - the adaptive KL controller moves beta; the k3 estimator and reward whitening run;
  - --resume continues exactly (bit-identical checkpoints); a changed batch shape is refused;
  - under the Vulkan baseline limits the first iterations match the normal run's;
  - bad input refused before any work: a reward model with another tokenizer or vocabulary, a
    model without a scalar head as the reward model, a reference of another architecture, an
    empty prompt set."""
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

vklm = sys.argv[1]
failures = checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if not ok:
        failures += 1


stderrs = []  # every command's stderr: validation messages are looked for at the end


def run(*args, timeout=600):
    r = subprocess.run([vklm, *args], capture_output=True, text=True, errors="replace",
                       timeout=timeout, env=dict(os.environ, VKLM_VALIDATE="1"))
    stderrs.append(r.stderr)
    return r


def jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


WORDS = ["apple", "river", "stone", "cloud", "green", "house", "light", "music"]
OTHERS = [w for w in WORDS if w != "music"]
tmp = tempfile.mkdtemp(prefix="vklm_ppo_")
t_start = time.time()
try:
    rng = random.Random(5)
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        for _ in range(600):
            f.write(" ".join(rng.choice(WORDS) for _ in range(5)) + "\n")
    base = os.path.join(tmp, "base")
    os.makedirs(base)
    tok = os.path.join(base, "tokenizer.json")
    r = run("tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special", "<|endoftext|>",
            text)
    check(r.returncode == 0, "tokenizer trained")
    r = run("train", "--text", text, "-t", tok, "--model", "gpt2-tiny", "--steps", "60", "--lr",
            "3e-3", "-b", "8", "-T", "32", "--out", base, "--quiet", "--no-plot", "--val-every",
            "0", "--ckpt-every", "60")
    check(r.returncode == 0, "base model pretrained: " + r.stderr[-300:])
    ckpts = sorted(os.path.join(base, x) for x in os.listdir(base) if x.endswith(".bin"))
    before = {p: sha(p) for p in ckpts}

    # the synthetic preference: "music" in the response
    pairs = []
    for _ in range(300):
        p = " ".join(rng.choice(WORDS) for _ in range(2))
        a = [rng.choice(OTHERS) for _ in range(3)]
        c = list(a)
        c[rng.randrange(3)] = "music"
        pairs.append({"prompt": p, "chosen": " " + " ".join(c), "rejected": " " + " ".join(a)})
    pref = os.path.join(tmp, "pairs.jsonl")
    jsonl(pref, pairs)
    prompts = os.path.join(tmp, "prompts.jsonl")
    jsonl(prompts, [{"prompt": " ".join(rng.choice(OTHERS) for _ in range(2))} for _ in range(64)])
    rm = os.path.join(tmp, "rm")
    r = run("reward", "train", "-m", base, "--data", pref, "--out", rm, "-b", "16", "-T", "24",
            "--lr", "1e-3", "--val-fraction", "0.15", "--norm-prompts", "16", "--norm-k", "2",
            "--norm-tokens", "6", "--quiet")
    res = json.load(open(os.path.join(rm, "reward.json"))) if r.returncode == 0 else {}
    check(r.returncode == 0 and (res.get("heldout_accuracy") or 0) >= 0.9,
          "the reward model learns 'music in the response' (held-out accuracy %s)" %
          res.get("heldout_accuracy"))

    # ---- bad input: refused before any work ---------------------------------------------------
    other = os.path.join(tmp, "other")
    os.makedirs(other)
    otok = os.path.join(other, "tokenizer.json")
    run("tokenizer", "train", "-o", otok, "--vocab-size", "270", "--special", "<|endoftext|>", text)
    r1 = run("train", "--text", text, "-t", otok, "--model", "gpt2-tiny", "--steps", "1", "-b", "2",
             "-T", "16", "--out", other, "--quiet", "--no-plot", "--val-every", "0")
    llama = os.path.join(tmp, "llama")
    r2 = run("train", "--text", text, "-t", tok, "--model", "llama-tiny", "--steps", "1", "-b", "2",
             "-T", "16", "--out", llama, "--quiet", "--no-plot", "--val-every", "0")
    check(r1.returncode == 0 and r2.returncode == 0, "models for the bad-input cases built")
    empty = os.path.join(tmp, "none.jsonl")  # no rows at all (blank lines only)
    with open(empty, "w") as f:
        f.write("\n\n")
    bad_out = os.path.join(tmp, "bad_out")
    common = ["--out", bad_out, "-T", "16", "--max-tokens", "6", "--iters", "1"]
    cases = [
        (["-m", base, "--reward", other, "--prompts", prompts],
         "tokenizer differs", "a reward model with another tokenizer"),
        (["-m", base, "--reward", other, "--prompts", prompts, "-t", tok],
         "vocabulary", "a reward model with another vocabulary size"),
        (["-m", base, "--reward", base, "--prompts", prompts],
         "not a reward model", "a model without a scalar head as the reward model"),
        (["-m", base, "--reward", rm, "--ref", llama, "--prompts", prompts],
         "architecture differs", "a reference of another architecture (llama vs gpt2)"),
        (["-m", base, "--reward", rm, "--prompts", empty],
         "no usable row", "an empty prompt set"),
    ]
    for args, needle, what in cases:
        t0 = time.time()
        r = run("ppo", *args, *common)
        dt = time.time() - t0
        check(r.returncode == 1 and needle in r.stderr and
              not os.path.exists(os.path.join(bad_out, "metrics.jsonl")),
              "%s is refused before any work (%.1f s): %s" % (what, dt, r.stderr.strip()[-160:]))
    r = run("ppo", "-m", base, "--reward", rm, "--prompts", prompts, "--kl", "k2")
    check(r.returncode == 2 and "--kl" in r.stderr, "a bad flag value is refused")

    # ---- the PPO run ----------------------------------------------------------------------------
    out = os.path.join(tmp, "ppo")
    iters = 10
    t0 = time.time()
    r = run("ppo", "-m", base, "--reward", rm, "--prompts", prompts, "--out", out, "-b", "8",
            "-k", "2", "--max-tokens", "6", "-T", "16", "--iters", str(iters), "--lr", "5e-4",
            "--value-lr", "1e-3", "--minibatch", "8", "--beta", "0.1")
    dt = time.time() - t0
    print(r.stderr[-1500:])
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))] \
        if r.returncode == 0 else []
    check(r.returncode == 0 and len(rows) == iters, "vklm ppo ran %d iterations in %.1f s" % (
        len(rows), dt))
    keys = ("reward_mean", "reward_std", "kl", "beta", "pg_loss", "vf_loss", "clipfrac",
            "approx_kl", "entropy", "resp_len", "tokens_per_s")
    check(rows and all(all(k in x and math.isfinite(x[k]) for k in keys) for x in rows),
          "every iteration logs reward mean/std, KL, beta, both losses, clip fraction, approximate "
          "KL, entropy estimate, response length and tokens/s")
    if rows:
        first = rows[0]["reward_mean"]
        late = sum(x["reward_mean"] for x in rows[-3:]) / 3
        kl_max = max(x["kl"] for x in rows)
        print("  reward %.3f -> %.3f (mean of the last 3); KL max %.3f nats; rollout %.0f tok/s" % (
            first, late, kl_max, rows[-1]["tokens_per_s"]))
        check(abs(rows[0]["kl"]) < 1e-3, "KL to the reference is 0 at the first rollout (%.2e): "
              "the reference holds the policy's starting weights" % rows[0]["kl"])
        check(late > first + 1.0, "the mean reward rises: %.3f -> %.3f" % (first, late))
        check(kl_max < 15.0, "the KL to the reference stays below 15 nats per response (max %.3f)"
              % kl_max)
    samples = [json.loads(l) for l in open(os.path.join(out, "samples.jsonl"))] \
        if r.returncode == 0 else []
    s1 = [x for x in samples if x["iter"] == 1]
    sn = [x for x in samples if x["iter"] == iters]
    m1 = sum("music" in x["response"] for x in s1)
    mn = sum("music" in x["response"] for x in sn)
    check(len(s1) == 16 and len(sn) == 16 and mn > m1,
          "the policy learned the preference: responses with 'music' %d/16 -> %d/16 (%r)" % (
              m1, mn, [x["response"] for x in sn[:3]]))
    check(all(os.path.exists(os.path.join(out, x)) for x in
              ("checkpoint.bin", "value.bin", "ppo.png", "ppo.json", "tokenizer.json")),
          "PPO writes the policy and value checkpoints, the plot, a summary and the tokenizer")
    check(all(sha(p) == before[p] for p in ckpts), "the reference's checkpoint is unchanged on disk")
    g = run("generate", "-m", out, "-p", "apple river", "-n", "4", "--temp", "0", "--no-echo")
    check(g.returncode == 0, "the PPO model generates: %r" % g.stdout.strip()[:40])

    # ---- adaptive KL control, k3, reward whitening ------------------------------------------------
    out2 = os.path.join(tmp, "ppo_adaptive")
    small = ["-m", base, "--reward", rm, "--prompts", prompts, "-b", "4", "--max-tokens", "4",
             "-T", "12", "--lr", "1e-3", "--target-kl", "0.01", "--horizon", "20", "--kl", "k3",
             "--whiten-rewards", "--ppo-epochs", "2", "--minibatch", "3", "--quiet"]
    r = run("ppo", *small, "--out", out2, "--iters", "3")
    rows = [json.loads(l) for l in open(os.path.join(out2, "metrics.jsonl"))] \
        if r.returncode == 0 else []
    betas = [x["beta"] for x in rows]
    check(r.returncode == 0 and len(rows) == 3 and len(set(betas)) > 1 and
          all(math.isfinite(x["reward_mean"]) for x in rows),
          "adaptive KL control moves beta (%s); k3, reward whitening, 2 epochs of minibatches of 3 "
          "run: %s" % (betas, r.stderr.strip()[-200:]))

    # ---- resume: 2 iterations, then resumed to 3, equal the straight run of 3 --------------------
    out3 = os.path.join(tmp, "ppo_resumed")
    ra = run("ppo", *small, "--out", out3, "--iters", "2")
    rb = run("ppo", *small, "--out", out3, "--iters", "3", "--resume")
    strip = lambda x: {k: v for k, v in x.items() if k not in ("tokens_per_s", "seconds")}  # noqa
    m2 = [strip(json.loads(l)) for l in open(os.path.join(out2, "metrics.jsonl"))] \
        if os.path.exists(os.path.join(out2, "metrics.jsonl")) else []
    m3 = [strip(json.loads(l)) for l in open(os.path.join(out3, "metrics.jsonl"))] \
        if rb.returncode == 0 else None
    same = rb.returncode == 0 and all(
        open(os.path.join(out2, f), "rb").read() == open(os.path.join(out3, f), "rb").read()
        for f in ("checkpoint.bin", "value.bin"))
    check(ra.returncode == 0 and same and m2 == m3 and len(m2) == 3,
          "--resume continues exactly: 2 + 1 resumed iterations give the straight run's metrics "
          "and bit-identical policy and value checkpoints: " + rb.stderr.strip()[-200:])
    r = run("ppo", *small[:-1], "--out", out3, "--iters", "4", "--resume", "-b", "5")
    check(r.returncode == 1 and "must continue the same stream" in r.stderr,
          "resuming with another batch shape is refused: " + r.stderr.strip()[-120:])

    # ---- the value head on the policy, and sampling at another temperature ------------------------
    out5 = os.path.join(tmp, "ppo_value_head")
    r = run("ppo", *small, "--out", out5, "--iters", "2", "--value-head", "--temp", "0.8")
    rows = [json.loads(l) for l in open(os.path.join(out5, "metrics.jsonl"))] \
        if r.returncode == 0 else []
    check(r.returncode == 0 and len(rows) == 2 and abs(rows[0]["kl"]) < 1e-3 and
          all(math.isfinite(x["vf_loss"]) and math.isfinite(x["pg_loss"]) for x in rows) and
          not os.path.exists(os.path.join(out5, "value.bin")),
          "--value-head trains one model (no value.bin) and --temp 0.8 keeps the first KL at 0 "
          "(policy and reference log-probs at the same temperature): " + r.stderr.strip()[-200:])
    r = run("ppo", *small, "--out", out5, "--iters", "1", "--value-head", "--value", rm)
    check(r.returncode == 2 and "--value-head" in r.stderr,
          "--value-head with a --value model is refused")

    # ---- under the Vulkan baseline limits: the same first iterations ------------------------------
    out4 = os.path.join(tmp, "ppo_baseline")
    r = run("ppo", *small, "--out", out4, "--iters", "2", "--limits", "baseline")
    m4 = [strip(json.loads(l)) for l in open(os.path.join(out4, "metrics.jsonl"))] \
        if r.returncode == 0 else []
    close = len(m4) == 2 and len(m2) == 3 and all(
        abs(m4[i][k] - m2[i][k]) <= 1e-3 * max(1.0, abs(m2[i][k]))
        for i in range(2) for k in ("reward_mean", "kl", "pg_loss", "vf_loss"))
    check(r.returncode == 0 and close, "under --limits baseline the first 2 iterations match the "
          "normal run's: " + r.stderr.strip()[-200:])

    bad = [e for e in stderrs if "vklm: validation" in e]
    check(not bad and not any("is not installed" in e for e in stderrs),
          "the Khronos validation layer was on in every command and reported nothing%s" % (
              ": " + bad[0][bad[0].find("vklm: validation"):][:200] if bad else ""))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("test_ppo_cli: %d checks, %d failed, %.0f s" % (checks, failures, time.time() - t_start))
sys.exit(1 if failures else 0)
