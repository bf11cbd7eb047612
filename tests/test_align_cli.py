"""Alignment end to end on a tiny model (usage: test_align_cli.py vklm), as a user runs it:
  - a tokenizer and a tiny GPT-2 pretrained briefly on sentences of the instruction set's words;
  - `vklm sft` on scripts/align/instructions.jsonl: greedy exact match on the questions rises from
    what the base model gets (measured before and after, printed);
  - the data readers: every bad row named by file and line (stop), or skipped and counted (skip);
    TRL pairs, implicit-prompt and HH transcripts, conversations, rankings with ties;
  - `vklm rank` in the terminal driven through stdin (rank, undo, tie, skip, quit, resume) and
    with the simulated rater;
  - `vklm reward train` on a learnable synthetic preference (the right answer over a wrong one):
    held-out pairwise accuracy clearly above chance, rewards normalised; `vklm reward score`;
  - `vklm dpo` on the same pairs: the held-out margin rises, KL to the reference finite."""
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

vklm = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
inst = os.path.join(root, "scripts", "align", "instructions.jsonl")
questions = os.path.join(root, "scripts", "align", "questions.jsonl")
failures = checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if not ok:
        failures += 1


def run(*args, stdin=None, timeout=900, env=None):
    return subprocess.run([vklm, *args], capture_output=True, text=True, errors="replace",
                          input=stdin, timeout=timeout, env=env)


def jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


tmp = tempfile.mkdtemp(prefix="vklm_align_")
try:
    facts = [json.loads(l) for l in open(inst)]
    rng = random.Random(7)
    words = [f["prompt"].split("Question: ")[1].split("\n")[0] for f in facts] + \
        [f["completion"] for f in facts]
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        for _ in range(400):
            f.write(" ".join(rng.choice(words) for _ in range(4)) + "\n")
    base = os.path.join(tmp, "base")
    os.makedirs(base)
    tok = os.path.join(base, "tokenizer.json")
    r = run("tokenizer", "train", "-o", tok, "--vocab-size", "400", "--special", "<|endoftext|>",
            text)
    check(r.returncode == 0, "tokenizer trained")
    r = run("train", "--text", text, "-t", tok, "--model", "gpt2-tiny", "--steps", "60",
            "--lr", "3e-3", "-b", "8", "-T", "48", "--out", base, "--quiet", "--no-plot",
            "--val-every", "0", "--ckpt-every", "60")
    check(r.returncode == 0, "base model pretrained: " + r.stderr[-300:])

    # ---- SFT ---------------------------------------------------------------------------------
    sft = os.path.join(tmp, "sft")
    r = run("sft", "--data", inst, "--init", base, "--out", sft, "--steps", "120", "--lr", "3e-3",
            "-b", "8", "-T", "40", "--val-fraction", "0", "--eval-answers", questions,
            "--log-every", "40")
    ev = json.load(open(os.path.join(sft, "sft_eval.json"))) if r.returncode == 0 else {}
    before, after, n = ev.get("exact_match_before", -1), ev.get("exact_match_after", -1), ev.get("items", 0)
    print("  SFT exact match on %d questions: before %s, after %s" % (n, before, after))
    check(r.returncode == 0 and n == 64 and before <= 4 and after >= 32,
          "SFT teaches the instruction set: exact match %s/64 -> %s/64 (%s)" % (
              before, after, r.stderr.strip()[-200:]))
    check(all(os.path.exists(os.path.join(sft, x)) for x in
              ("checkpoint.bin", "metrics.jsonl", "loss.png", "tokenizer.json")),
          "SFT writes a checkpoint, metrics, a loss plot and the tokenizer beside them")
    g = run("generate", "-m", sft, "-p", facts[0]["prompt"], "-n", "4", "--temp", "0", "--no-echo")
    check(g.returncode == 0, "the fine-tuned model generates: %r" % g.stdout.strip()[:40])
    # resume continues the SFT run
    r = run("sft", "--data", inst, "--resume", "--out", sft, "--steps", "125", "-T", "40",
            "-b", "8", "--val-fraction", "0", "--quiet")
    check(r.returncode == 0, "vklm sft --resume extends the run: " + r.stderr.strip()[-200:])

    # ---- bad rows ------------------------------------------------------------------------------
    bad = os.path.join(tmp, "bad.jsonl")
    jsonl(bad, [{"prompt": "Question: a?\nAnswer:", "completion": " b"},
                "{not json",
                {"prompt": "x"},
                {"prompt": "Question: c?\nAnswer:", "completion": ""},
                {"text": "word " * 200},
                {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
                {"prompt": "Question: d\x00 cut here?\nAnswer:", "completion": " e"}])
    r = run("sft", "--data", bad, "--init", base, "--out", os.path.join(tmp, "bad_sft"), "--steps",
            "1", "-T", "40", "-b", "1", "--val-fraction", "0")
    check(r.returncode != 0 and "bad.jsonl:2:" in r.stderr and "not valid JSON" in r.stderr,
          "a bad row stops SFT by default, named by file and line: " + r.stderr.strip()[-160:])
    r = run("sft", "--data", bad, "--init", base, "--out", os.path.join(tmp, "bad_sft"), "--steps",
            "1", "-T", "63", "-b", "1", "--val-fraction", "0", "--bad-rows", "skip", "--quiet")
    check(r.returncode == 0 and "bad.jsonl:3: skipped" in r.stderr and
          "bad.jsonl:4: skipped: empty completion" in r.stderr and "bad.jsonl:5: skipped" in r.stderr
          and "bad.jsonl:7: skipped: a NUL character" in r.stderr
          and "2 examples" in r.stderr and "5 skipped (too long 1, bad JSON 2, bad fields 1, empty 1)"
          in r.stderr, "--bad-rows skip reports and counts every skipped row (the conversation "
          "kept, rendered with ChatML; a text holding \\u0000 is refused, not cut): "
          + r.stderr.strip()[-300:])
    prefs = os.path.join(tmp, "prefs.jsonl")
    jsonl(prefs, [{"prompt": "Question: a?\nAnswer:", "chosen": " b", "rejected": " c"},
                  {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go"},
                  {"prompt": [{"role": "user", "content": "hi"}],
                   "chosen": [{"role": "assistant", "content": "hello"}],
                   "rejected": [{"role": "assistant", "content": "no"}]},
                  {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [[2, 0], 1]},
                  {"prompt": "p", "responses": ["a", "b"], "ranking": [0, 0]},
                  {"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 1]},
                  {"prompt": "p", "chosen": "", "rejected": "x"}])
    r = run("reward", "train", "-m", sft, "--data", prefs, "--out", os.path.join(tmp, "badrm"),
            "--steps", "1", "-T", "64", "--bad-rows", "skip", "--no-norm", "--val-fraction", "0")
    check("prefs.jsonl:5: skipped" in r.stderr and "not a permutation" in r.stderr and
          "prefs.jsonl:6: skipped" in r.stderr and "prefs.jsonl:7: skipped" in r.stderr and
          "4 items" in r.stderr,
          "preference formats read (TRL pairs, HH transcript, conversation, ranking with a tie); "
          "bad rankings and empty responses named: " + r.stderr.strip()[-200:])

    # ---- vklm rank in the terminal ------------------------------------------------------------
    q3 = os.path.join(tmp, "q3.jsonl")
    jsonl(q3, [json.loads(l) for l in open(questions)][:3])
    ranks = os.path.join(tmp, "ranks.jsonl")
    r = run("rank", "-m", sft, "--prompts", q3, "-o", ranks, "-k", "3", "--max-tokens", "6",
            "--seed", "3", stdin="2 1 3\nu\n3 9 1\n3=1 2\nq\n")
    rows = [json.loads(l) for l in open(ranks)] if os.path.exists(ranks) else []
    check(r.returncode == 0 and len(rows) == 1 and rows[0]["ranking"] == [[0, 2], 1] and
          rows[0]["rater"] == "human" and rows[0]["sampling"]["k"] == 3 and "time" in rows[0]
          and "a number that is not a response" in r.stdout,
          "terminal ranking: undo takes the last back, a bad order is refused, '3=1 2' is a tie, "
          "q quits with progress saved: %s" % (rows[0]["ranking"] if rows else r.stderr[-200:]))
    r = run("rank", "-m", sft, "--prompts", q3, "-o", ranks, "-k", "3", "--max-tokens", "6",
            "--seed", "3", stdin="s\nb 1 2 3\n")
    rows = [json.loads(l) for l in open(ranks)]
    check(r.returncode == 0 and len(rows) == 3 and rows[1]["skipped"] and rows[2]["all_bad"] and
          [x["source_line"] for x in rows] == [1, 2, 3],
          "a second run resumes after the ranked prompt; skip and all-bad are recorded")

    # ---- reward model on a learnable synthetic preference ----------------------------------------
    pairs = []
    answers = [f["completion"] for f in facts]
    for f in facts:
        wrong = [a for a in answers if a != f["completion"]]
        for w in rng.sample(wrong, 4):
            pairs.append({"prompt": f["prompt"], "chosen": f["completion"], "rejected": w})
    rng.shuffle(pairs)
    pref = os.path.join(tmp, "pairs.jsonl")
    jsonl(pref, pairs)
    rm = os.path.join(tmp, "rm")
    r = run("reward", "train", "-m", sft, "--data", pref, "--out", rm, "-b", "16", "-T", "40",
            "--epochs", "2", "--lr", "1e-3", "--val-fraction", "0.15", "--norm-prompts", "16",
            "--norm-k", "2", "--norm-tokens", "8")
    res = json.load(open(os.path.join(rm, "reward.json"))) if r.returncode == 0 else {}
    acc = res.get("heldout_accuracy") or 0
    print("  reward model: held-out pairwise accuracy %.3f on %s pairs (chance 0.5)" % (
        acc, res.get("heldout_pairs")))
    check(r.returncode == 0 and acc >= 0.7 and res.get("heldout_pairs", 0) >= 15,
          "the reward model learns the preference: held-out accuracy %.3f" % acc)
    check(res.get("normalised") and res.get("norm_samples") == 32 and res.get("norm_std", 0) > 0,
          "rewards normalised on reference samples (mean %s, std %s)" % (
              res.get("norm_mean"), res.get("norm_std")))
    score_in = os.path.join(tmp, "score.jsonl")
    jsonl(score_in, [{"prompt": facts[i]["prompt"], "responses": [facts[i]["completion"], " zzz"]}
                     for i in range(8)])
    r = run("reward", "score", "-m", rm, "--data", score_in, "-T", "40")
    sc = [json.loads(l)["rewards"] for l in r.stdout.splitlines()] if r.returncode == 0 else []
    check(len(sc) == 8 and all(len(x) == 2 and all(math.isfinite(v) for v in x) for x in sc) and
          sum(a > b for a, b in sc) >= 5,
          "vklm reward score scores every response; the right answer mostly higher: %s" % sc[:3])
    r = run("reward", "score", "-m", sft, "--data", score_in)
    check(r.returncode != 0 and "not a reward model" in r.stderr,
          "scoring with a model without a scalar head is a clear error")

    # ---- DPO -------------------------------------------------------------------------------------
    dpo = os.path.join(tmp, "dpo")
    r = run("dpo", "-m", sft, "--data", pref, "--out", dpo, "-b", "4", "-T", "40", "--steps", "24",
            "--lr", "1e-3", "--val-fraction", "0.15")
    d = json.load(open(os.path.join(dpo, "dpo.json"))) if r.returncode == 0 else {}
    mb = d.get("heldout_before", {}).get("margin", 0)
    ma = d.get("heldout_after", {}).get("margin", 0)
    kl = d.get("kl_sampled")
    print("  DPO held-out margin %.4f -> %.4f, accuracy %.3f, KL %s nats" % (
        mb, ma, d.get("heldout_after", {}).get("accuracy", 0), kl))
    check(r.returncode == 0 and ma > mb + 0.05 and kl is not None and math.isfinite(kl),
          "DPO raises the held-out chosen-over-rejected margin; KL to the reference finite and "
          "reported: " + r.stderr.strip()[-200:])
    for loss in ("ipo", "hinge"):
        r = run("dpo", "-m", sft, "--data", pref, "--out", os.path.join(tmp, "dpo_" + loss),
                "-b", "2", "-T", "40", "--steps", "2", "--loss", loss, "--quiet")
        check(r.returncode == 0, "vklm dpo --loss %s runs" % loss)
    r = run("dpo", "-m", sft, "--data", pref, "--beta", "-1")
    check(r.returncode == 2 and "--beta" in r.stderr, "an out-of-range flag is refused")

    # ---- the four commands under the Vulkan spec's minimum limits --------------------------------
    bl = dict(os.environ, VKLM_LIMITS="baseline")
    r1 = run("sft", "--data", inst, "--init", base, "--out", os.path.join(tmp, "bl_sft"), "--steps",
             "2", "-b", "4", "-T", "40", "--val-fraction", "0", "--quiet", env=bl)
    blr = os.path.join(tmp, "bl_ranks.jsonl")
    r2 = run("rank", "-m", sft, "--prompts", q3, "-o", blr, "-k", "3", "--max-tokens", "4",
             "--simulate", "length", env=bl)
    r3 = run("reward", "train", "-m", sft, "--data", pref, "--out", os.path.join(tmp, "bl_rm"), "-b",
             "8", "-T", "40", "--steps", "2", "--norm-prompts", "2", "--norm-k", "2",
             "--norm-tokens", "4", "--quiet", env=bl)
    r4 = run("dpo", "-m", sft, "--data", pref, "--out", os.path.join(tmp, "bl_dpo"), "-b", "2",
             "-T", "40", "--steps", "2", "--quiet", env=bl)
    check(all(x.returncode == 0 for x in (r1, r2, r3, r4)) and len(open(blr).readlines()) == 3,
          "sft, rank, reward train and dpo run under VKLM_LIMITS=baseline: " +
          " | ".join(x.stderr.strip()[-120:] for x in (r1, r2, r3, r4) if x.returncode))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("test_align_cli: %d checks, %d failed" % (checks, failures))
sys.exit(1 if failures else 0)
