"""`vklm eval` end to end (argv[1]: the vklm binary). A tiny GPT-2 is trained briefly on the
built-in `antonyms` task's own text, then:
- parity: the model exported to a Hugging Face directory (safetensors) and a 2-step llama-tiny
  are evaluated on a multiple-choice file (UTF-8 choices, an empty context) and on a text with
  sliding windows; every choice's log-likelihood and every window equals the PyTorch reference
  forward (scripts/reference_model.py, float64) within 1e-4 relative, acc and acc_norm recomputed
  from the reference log-likelihoods agree, the context/continuation split equals the harness's
  (HF `tokenizers` encoding of context and context+continuation), and the windows' total gives
  the reported perplexities and bits per byte;
- trained vs untrained: the model scores above chance on `antonyms` and at chance on `arith`
  (both figures printed);
- generation (few-shot), bias probes with categories and intervals, robustness variants with
  drops, LAMBADA's format, the HTML report, --compare-with JSONL for `vklm rank`, and malformed
  task files (missing field, gold out of range, zero choices) failing with file:line."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors.numpy import load_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_model as ref  # noqa: E402

VKLM = os.path.abspath(sys.argv[1])
failures = checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    failures += 0 if ok else 1


def run(*args, timeout=600):
    return subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace",
                          timeout=timeout)


def ref_ll(W, c, tokens, n_cont):
    x = torch.tensor(tokens[:-1])
    logp = torch.log_softmax(ref.forward(W, c, x), -1)
    return sum(logp[t, tokens[t + 1]].item() for t in range(len(tokens) - 1 - n_cont, len(tokens) - 1))


def parity(d, model_dir, tok_path, label):
    conf = json.load(open(os.path.join(model_dir, "config.json")))
    c = ref.config_from_hf(conf)
    W = ref.torch_params(ref.from_hf(load_file(os.path.join(model_dir, "model.safetensors")), c),
                         torch.float64)
    hf_tok = Tokenizer.from_file(tok_path)
    eos = hf_tok.token_to_id("<|endoftext|>")
    mc = os.path.join(d, "mc_parity.jsonl")
    items = [("The opposite of hot is", ["cold", "warm", "caf\u00e9 cr\u00e8me", "up"], 0),
             ("Numbers: 1 2 3 ", ["4 5", "9", "\u00fcber 4"], 0),
             ("", ["the cat sat.", "a dog ran away quickly"], 1),
             ("The opposite of big is", ["small", "large"], 0)]
    with open(mc, "w") as f:
        for ctx, ch, g in items:
            f.write(json.dumps({"context": ctx, "choices": ch, "gold": g}) + "\n")
    text = os.path.join(d, "ppl.txt")
    with open(text, "w") as f:
        f.write("The opposite of hot is cold. The lighthouse keeper climbed the stairs. " * 4)
    js, smp = os.path.join(d, label + ".json"), os.path.join(d, label + ".samples.jsonl")
    r = run("eval", "-m", model_dir, "-b", "3", "--ctx", "16", "--stride", "5", "--json", js,
            "--samples", smp, "--quiet", mc, text)
    check(r.returncode == 0, "%s: eval of an HF directory exits 0 %s" % (label, r.stderr[-400:]))
    if r.returncode:
        return
    res = {x["task"]: x for x in json.load(open(js))["results"]}
    samples = [json.loads(line) for line in open(smp)]
    worst, split_ok, acc, accn = 0.0, True, [], []
    for s, (ctx, ch, g) in zip([s for s in samples if "requests" in s], items):
        lls = []
        for q, choice in zip(s["requests"], ch):
            want = ref_ll(W, c, q["tokens"], q["n_cont"])
            worst = max(worst, abs(q["ll"] - want) / max(abs(want), 1e-6))
            lls.append(want)
            # the harness's split: tokens(context + " " + choice), the first len(tokens(context))
            whole = ctx + " " + choice  # trailing spaces of the context join the continuation
            if ctx.rstrip():
                ce, we = hf_tok.encode(ctx.rstrip()).ids, hf_tok.encode(whole).ids
                split_ok &= q["tokens"] == we and q["n_cont"] == len(we) - len(ce)
            else:
                we = hf_tok.encode(whole).ids
                split_ok &= q["tokens"] == [eos] + we and q["n_cont"] == len(we)
        acc.append(float(max(range(len(ch)), key=lambda i: (lls[i], -i)) == g))
        norm = [lls[i] / max(len(ch[i]), 1) for i in range(len(ch))]
        accn.append(float(max(range(len(ch)), key=lambda i: (norm[i], -i)) == g))
    check(worst < 1e-4, "%s: every choice's log-likelihood equals the PyTorch reference (worst rel "
          "%.2e)" % (label, worst))
    check(split_ok, "%s: context/continuation split as the harness's (HF tokenizers)" % label)
    m = res["mc_parity"]["metrics"]
    check(abs(m["acc"]["value"] - sum(acc) / len(acc)) < 1e-9 and
          abs(m["acc_norm"]["value"] - sum(accn) / len(accn)) < 1e-9,
          "%s: acc %.3f and acc_norm %.3f agree with the reference's" % (
              label, m["acc"]["value"], m["acc_norm"]["value"]))
    doc = [s for s in samples if "windows" in s][0]
    ids = doc["doc_tokens"]
    check(ids == [eos] + hf_tok.encode(open(text).read()).ids, "%s: document tokens" % label)
    # the same windows computed here: inputs x[b:e], scoring x[s+1..e]
    total, prev, b, wins, wworst = 0.0, 0, 0, 0, 0.0
    n, ctxn, stride = len(ids), 16, 5
    while True:
        e = min(b + ctxn, n - 1)
        if e > prev:
            want = ref_ll(W, c, ids[b:e + 1], e - prev)
            got = doc["windows"][wins]["ll"]
            wworst = max(wworst, abs(got - want) / max(abs(want), 1e-6))
            total += want
            wins += 1
            prev = e
        if e == n - 1:
            break
        b += stride
    check(wins == len(doc["windows"]) and wworst < 1e-4,
          "%s: %d sliding windows (ctx 16, stride 5) equal PyTorch (worst rel %.2e)" % (
              label, wins, wworst))
    pm = res["ppl.txt"]["metrics"]
    nbytes = len(open(text, "rb").read())
    ok = abs(pm["loglikelihood"]["value"] - total) < 1e-4 * abs(total) and \
        abs(pm["bits_per_byte"]["value"] - (-total / nbytes / math.log(2))) < 1e-4 and \
        abs(math.log(pm["token_perplexity"]["value"]) - (-total / (n - 1))) < 1e-4
    check(ok, "%s: perplexity %.3f, bits per byte %.4f from the reference windows' total %.3f" % (
        label, pm["token_perplexity"]["value"], pm["bits_per_byte"]["value"], total))
    if label != "gpt2":
        return
    # token shards (vklm data tokenize, all documents in validation): [eot] + tokens per document
    texts = ["The opposite of hot is cold.", "A lighthouse keeper climbed the stairs \u00e9."]
    jl = os.path.join(d, "docs.jsonl")
    with open(jl, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    sh = os.path.join(d, "shards")
    r = run("data", "tokenize", "-t", tok_path, "-i", jl, "-o", sh, "--val-fraction", "1", "--quiet")
    js2 = os.path.join(d, "shards.json")
    r2 = run("eval", "-m", model_dir, "shards:" + sh, "--json", js2, "--quiet", "--ctx", "8", "--stride", "3")
    check(r.returncode == 0 and r2.returncode == 0, "shards: tokenized and evaluated " + r.stderr[-200:] + r2.stderr[-300:])
    if r2.returncode:
        return
    sm = json.load(open(js2))["results"][0]["metrics"]
    total, nbytes, ntok = 0.0, 0, 0
    for t in texts:  # disjoint documents, each [eot] + tokens, scored in windows of 8 by 3
        ids = [eos] + hf_tok.encode(t).ids
        n, prev, b = len(ids), 0, 0
        while True:
            e = min(b + 8, n - 1)
            if e > prev:
                total += ref_ll(W, c, ids[b:e + 1], e - prev)
                prev = e
            if e == n - 1:
                break
            b += 3
        nbytes += len(t.encode())
        ntok += n - 1
    check(sm["token_perplexity"]["n"] == ntok and sm["byte_perplexity"]["n"] == nbytes and
          abs(sm["bits_per_byte"]["value"] - (-total / nbytes / math.log(2))) < 1e-4,
          "shards: %d tokens, %d bytes, bits per byte %.4f as PyTorch's windows give" % (
              ntok, nbytes, sm["bits_per_byte"]["value"]))


def main():
    d = tempfile.mkdtemp(prefix="vklm_eval_")
    try:
        r = run("eval", "--dump-task", "antonyms")
        check(r.returncode == 0 and r.stdout.count("\n") == 41, "--dump-task antonyms: header + 40 items")
        lines = [json.loads(x) for x in r.stdout.splitlines()[1:]]
        train = os.path.join(d, "train.txt")
        with open(train, "w") as f:
            for _ in range(20):
                for x in lines:
                    f.write("%s %s.\n" % (x["context"], x["choices"][x["gold"]]))
        run_dir = os.path.join(d, "run")
        os.makedirs(run_dir)
        tok = os.path.join(run_dir, "tokenizer.json")
        r = run("tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special", "<|endoftext|>", train)
        check(r.returncode == 0, "tokenizer trained")
        r = run("train", "--text", train, "-t", tok, "--model", "gpt2-tiny", "--steps", "200",
                "--lr", "6e-3", "-b", "8", "-T", "32", "--out", run_dir, "--quiet", "--no-plot",
                "--val-every", "0", "--ckpt-every", "200")
        check(r.returncode == 0, "gpt2-tiny trained 200 steps on the antonyms text " + r.stderr[-300:])

        # malformed task files: file and line, before any model work
        bad = os.path.join(d, "bad.jsonl")
        for body, want in (('{"context": "a", "choices": ["x"], "gold": 0}\n{"context": "b", "gold": 0}\n',
                            "bad.jsonl:2: missing array field \"choices\""),
                           ('{"context": "a", "choices": ["x", "y"], "gold": 5}\n', "bad.jsonl:1: gold index 5"),
                           ('{"context": "a", "choices": [], "gold": 0}\n', "bad.jsonl:1: no choices")):
            open(bad, "w").write(body)
            r = run("eval", "-m", run_dir, bad)
            check(r.returncode == 1 and want in r.stderr, "malformed task file: %s" % r.stderr.strip())
        r = run("eval", "-m", run_dir, "no-such-task")
        check(r.returncode == 1 and "no-such-task" in r.stderr, "an unknown task is a clear error")

        # trained for vs not trained for
        js = os.path.join(d, "tasks.json")
        html = os.path.join(d, "report.html")
        r = run("eval", "-m", run_dir, "antonyms", "arith", "crows-mini", "story", "arith-gen",
                "--perturb", "typo,order,template", "--json", js, "--html", html)
        check(r.returncode == 0, "eval of five built-in tasks with perturbations " + r.stderr[-500:])
        print(r.stdout)
        doc = json.load(open(js)) if r.returncode == 0 else {"results": [], "robustness": []}
        res = {(x["task"], x["variant"]): x for x in doc["results"]}
        a = res.get(("antonyms", "clean"), {}).get("metrics", {}).get("acc", {}).get("value", -1)
        b = res.get(("arith", "clean"), {}).get("metrics", {}).get("acc", {}).get("value", -1)
        se = res.get(("arith", "clean"), {}).get("metrics", {}).get("acc", {}).get("stderr", 1)
        print("  trained-for task antonyms: acc %.3f (chance 0.25); not-trained task arith: acc "
              "%.3f (chance 0.25)" % (a, b))
        check(a >= 0.6, "above chance on the task it was trained for: antonyms acc %.3f" % a)
        check(abs(b - 0.25) <= 2.5 * max(se, 0.0625), "at chance on a task it was not trained for: arith acc %.3f" % b)
        every = all(all("value" in m and "stderr" in m and "n" in m for m in x["metrics"].values())
                    for x in doc["results"])
        check(every and len(doc["results"]) >= 5, "JSON: every metric with value, stderr and n")
        cr = res.get(("crows-mini", "clean"), {})
        cats = cr.get("categories", [])
        check(len(cats) == 6 and all(c["ci_low"] <= c["pct_stereotype"] <= c["ci_high"] for c in cats)
              and "pct_stereotype" in cr.get("metrics", {}), "bias: 6 categories with intervals")
        check("exact_match" in res.get(("arith-gen", "clean"), {}).get("metrics", {}),
              "generation task: exact_match")
        smp = os.path.join(d, "gen.samples.jsonl")
        r = run("eval", "-m", run_dir, "arith-gen", "--shots", "2", "--limit", "6", "--quiet",
                "--samples", smp, "--temp", "0.7", "--seed", "3")
        g = [json.loads(x) for x in open(smp)] if r.returncode == 0 else []
        check(len(g) == 6 and all(x["prompt"].count("\nA:") == 3 and "generation" in x for x in g),
              "generation, 2 shots, sampled: 6 answers to prompts holding 2 solved examples")
        rob = {(x["task"], x["variant"]) for x in doc["robustness"]}
        check(("antonyms", "typo") in rob and ("antonyms", "order") in rob and
              ("arith-gen", "template") in rob and ("arith-gen", "order") not in rob,
              "robustness: drops per perturbation (order only for multiple choice)")
        page = open(html).read() if os.path.exists(html) else ""
        check(page.count("<svg") >= 3 and "</html>" in page and "http" not in page.replace(
            "http://www.w3.org/2000/svg", ""), "HTML report: self-contained, with plots")

        # LAMBADA as the harness prepares it (openai jsonl)
        lam = os.path.join(d, "lambada.jsonl")
        with open(lam, "w") as f:
            for x in lines[:10]:
                f.write(json.dumps({"text": "%s %s" % (x["context"], x["choices"][x["gold"]])}) + "\n")
        r = run("eval", "-m", run_dir, "lambada:" + lam, "--json", "-", "--quiet")
        m = json.loads(r.stdout)["results"][0]["metrics"] if r.returncode == 0 else {}
        check("acc" in m and "ppl" in m, "LAMBADA: greedy acc %.2f, ppl %.2f" % (
            m.get("acc", {}).get("value", -1), m.get("ppl", {}).get("value", -1)))

        # parity: the HF export of the trained model, and a 2-step llama-tiny
        hf = os.path.join(d, "hf")
        os.makedirs(hf)
        r = run("export", "-m", os.path.join(run_dir, "checkpoint.bin"), "--format", "safetensors",
                "-o", os.path.join(hf, "model.safetensors"))
        check(r.returncode == 0, "exported to safetensors " + r.stderr[-200:])
        shutil.copy(tok, os.path.join(hf, "tokenizer.json"))
        parity(d, hf, tok, "gpt2")
        gg = os.path.join(d, "model.gguf")
        r = run("export", "-m", os.path.join(run_dir, "checkpoint.bin"), "--format", "gguf",
                "--type", "q8_0", "-o", gg)
        r2 = run("eval", "-m", gg, "-t", tok, "antonyms", "--json", "-", "--quiet")
        qa = json.loads(r2.stdout)["results"][0]["metrics"]["acc"]["value"] if r2.returncode == 0 else -1
        check(r.returncode == 0 and qa >= 0.6, "a Q8_0 GGUF export evaluates: antonyms acc %.3f %s" % (qa, r2.stderr[-300:]))
        lrun = os.path.join(d, "llama")
        r = run("train", "--text", train, "-t", tok, "--model", "llama-tiny", "--steps", "2",
                "-b", "2", "-T", "16", "--out", lrun, "--quiet", "--no-plot", "--val-every", "0")
        lhf = os.path.join(d, "llama-hf")
        os.makedirs(lhf)
        r2 = run("export", "-m", os.path.join(lrun, "checkpoint.bin"), "--format", "safetensors",
                 "-o", os.path.join(lhf, "model.safetensors"))
        check(r.returncode == 0 and r2.returncode == 0, "llama-tiny trained 2 steps and exported")
        shutil.copy(tok, os.path.join(lhf, "tokenizer.json"))
        parity(d, lhf, tok, "llama")

        # human evaluation export for vklm rank
        cmp_out = os.path.join(d, "compare.jsonl")
        r = run("eval", "-m", run_dir, "--compare-with", hf, "--compare-out", cmp_out, "--limit", "4",
                "--max-new", "6", "--quiet", "arith-gen")
        rows = [json.loads(x) for x in open(cmp_out)] if os.path.exists(cmp_out) else []
        check(r.returncode == 0 and len(rows) == 4 and all(
            set(x) == {"prompt", "responses", "models"} and len(x["responses"]) == 2 and
            x["responses"][0] == x["responses"][1] for x in rows),
            "--compare-with: 4 JSONL lines {prompt, responses[2], models[2]} (same weights: same greedy answers)")
        rk = os.path.join(d, "rankings.jsonl")
        r = run("rank", "--prompts", cmp_out, "-o", rk, "--simulate", "length", "-t", tok)
        ranked = [json.loads(x) for x in open(rk)] if os.path.exists(rk) else []
        check(r.returncode == 0 and len(ranked) == 4 and all("ranking" in x for x in ranked),
              "vklm rank reads the comparison and writes rankings " + r.stderr[-300:])
        r = run("eval")
        check(r.returncode == 2 and "usage" in r.stderr, "no arguments: usage, exit 2")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("test_eval_cli: %d passed, %d failed" % (checks - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
