"""The README's main job, shortened: scripts/quickstart.sh on its embedded default corpus (Debian's
fortunes) with 6 pretraining steps and a few steps of each alignment stage (SFT, ranking by the
simulated rater, reward model, PPO, DPO), the aligned models' evaluation, a chat answer and the
life-cycle report; every stage must run and leave its outputs, and the summary
must point at them and give each stage's figure. Usage: test_quickstart.py path/to/vklm"""
import json
import os
import subprocess
import sys
import tempfile

vklm = os.path.abspath(sys.argv[1])
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what)
    failures += 0 if ok else 1


with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "qs")
    env = dict(os.environ, VKLM=vklm)
    r = subprocess.run(["bash", os.path.join(root, "scripts", "quickstart.sh"), "--out", out, "--steps", "6",
                        "--sft-steps", "60", "--rm-steps", "2", "--dpo-steps", "2",
                        "--ppo-iters", "2"],
                       capture_output=True, text=True, env=env, timeout=600)
    check(r.returncode == 0, "quickstart.sh exits 0" + ("" if r.returncode == 0 else ":\n" + r.stdout[-1500:] + r.stderr[-1500:]))
    for stage in ("1/6", "2/6", "3/6", "4/6", "5/6", "6/6", "eval:", "align 1/5", "align 2/5",
                  "align 3/5", "align 4/5", "align 5/5", "chat:", "== done in"):
        check(stage in r.stdout, f"stage '{stage}' ran")
    for f in ("cleaned.jsonl", "tokenizer.json", "run/checkpoint.bin", "run/loss.png", "run/metrics.jsonl",
              "eval.json", "eval.html", "sft/checkpoint.bin", "sft/sft_eval.json", "rankings.jsonl",
              "reward/checkpoint.bin", "reward/reward.json", "dpo/checkpoint.bin", "dpo/dpo.json",
              "sft/eval.json", "dpo/eval.json", "ppo/checkpoint.bin", "ppo/ppo.json", "ppo/eval.json",
              "report.html"):
        check(os.path.isfile(os.path.join(out, f)), f"{f} written")
    shards = os.listdir(os.path.join(out, "shards")) if os.path.isdir(os.path.join(out, "shards")) else []
    check(any(s.startswith("train_") for s in shards) and any(s.startswith("val_") for s in shards),
          f"train and validation shards: {sorted(shards)}")
    if os.path.isfile(os.path.join(out, "run/metrics.jsonl")):
        rows = [json.loads(line) for line in open(os.path.join(out, "run/metrics.jsonl"))]
        check(any("train_loss" in x for x in rows), f"metrics log has {len(rows)} rows with training losses")
    summary = r.stdout.split("== done in")[-1]
    check("bits/byte" in summary and "SFT exact match" in summary and
          "reward model held-out pairwise accuracy" in summary and "DPO held-out margin" in summary
          and "PPO mean reward" in summary and "eval, PPO model:   antonyms acc 0." in summary
          and "eval, SFT model:   antonyms acc 0." in summary and "eval, DPO model:   antonyms acc 0." in summary,
          "the summary gives the eval, SFT, reward and DPO figures: " +
          " ".join(l.strip() for l in summary.splitlines() if "alignment:" in l or "eval" in l)[:600])
    if os.path.isfile(os.path.join(out, "report.html")):
        html = open(os.path.join(out, "report.html")).read()
        check(all(t in html for t in ("Pretraining", "Supervised fine-tuning", "Reward model",
                                      "Direct preference optimisation", "RLHF with PPO", "data:image/png;base64,",
                                      "<th>base (pretrained)</th>", "<th>SFT</th>", "<th>DPO</th>", "<th>PPO</th>"))
              and "http" not in html.replace("http-equiv", ""),
              "the report holds every stage, embedded plots and the models' answers side by side, "
              "and fetches nothing")
    if os.path.isfile(os.path.join(out, "rankings.jsonl")):
        ranks = [json.loads(line) for line in open(os.path.join(out, "rankings.jsonl"))]
        check(len(ranks) == 64 and all(len(x["responses"]) == 4 and x["rater"] == "simulated:answer"
                                       for x in ranks), "64 questions with 4 ranked answers each")
    gen = r.stdout.split("== 6/6")[-1].split("== done")[0] if "== 6/6" in r.stdout else ""
    check("The meaning of life is" in gen and len(gen) > 60, "generation printed text after the prompt")
    r = subprocess.run(["bash", os.path.join(root, "scripts", "quickstart.sh"), "--bogus"],
                       capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 2 and "unknown flag" in r.stderr, "an unknown flag exits 2 with a message")

print(f"test_quickstart: {checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
