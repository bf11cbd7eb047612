"""Test of the learned document filter (argv[1]: the vklm binary): `vklm data classifier train`
on a synthetic labelled set (two classes told apart by a few cue words among shared filler
words) separates it on held-out data (accuracy printed); its scores (`vklm data classifier
score`) equal a PyTorch forward (scripts/reference_model.py) of the same weights read from the
checkpoint; `vklm data prepare --classifier` tags or drops exactly the documents above the
threshold with the same scores; a classifier whose tokenizer was swapped, bad labels, a single
class and bad flags are refused before any work. Runs on whatever Vulkan device is present
(lavapipe in CI) with validation on."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_model as ref  # noqa: E402

VKLM = os.path.abspath(sys.argv[1])
FAILURES = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILURES.append(what)


def run(*args, ok=True):
    p = subprocess.run([VKLM, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit("FAIL: vklm %s exited %d" % (" ".join(args), p.returncode))
    return p


FILLER = ("the of and to in a is that for it with as was on be by this are from at river village "
          "market garden music science bridge forest morning winter summer library").split()
CUES = {1: "scam fraud fake stolen hack crack spam".split(),
        0: "recipe lesson museum concert theory history poem".split()}


def make_docs(n, seed):
    r = random.Random(seed)
    docs = []
    for i in range(n):
        y = i % 2
        w = [r.choice(FILLER) for _ in range(r.randint(8, 30))]
        for _ in range(2):
            w.insert(r.randrange(len(w) + 1), r.choice(CUES[y]))
        docs.append({"text": " ".join(w), "label": y})
    return docs


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_checkpoint(path):
    """(config dict for reference_model, vklm-named fp32 tensors) of a vklm checkpoint."""
    b = open(path, "rb").read()
    assert b[:8] == b"VKLMCKPT"
    arch, _obj, V, maxT, L, NH, NKV, C, Fh = struct.unpack_from("<9I", b, 16)
    eps, theta = struct.unpack_from("<2f", b, 52)
    tie = struct.unpack_from("<I", b, 60)[0]
    ntensors = struct.unpack_from("<I", b, 184)[0]
    nparams = struct.unpack_from("<Q", b, 192)[0]
    params = torch.frombuffer(bytearray(b[256 + 112 * ntensors: 256 + 112 * ntensors + 4 * nparams]),
                              dtype=torch.float32)
    P = {}
    for i in range(ntensors):
        e = 256 + 112 * i
        name = b[e:e + 64].split(b"\0")[0].decode()
        ndim = struct.unpack_from("<I", b, e + 64)[0]
        shape = struct.unpack_from("<4I", b, e + 68)[:ndim]
        off, cnt = struct.unpack_from("<2Q", b, e + 84)
        P[name] = params[off:off + cnt].reshape(shape).double()
    c = {"arch": "gpt2" if arch == 0 else "llama", "V": V, "maxT": maxT, "L": L, "NH": NH,
         "NKV": NKV, "C": C, "F": Fh, "tie": tie, "eps": eps, "theta": theta}
    return c, P


def main():
    tmp = tempfile.mkdtemp(prefix="vklm-test-classifier-")
    try:
        lab = os.path.join(tmp, "labelled.jsonl")
        write_jsonl(lab, make_docs(400, 5))
        tok = os.path.join(tmp, "tok.json")
        run("tokenizer", "train", "-o", tok, "--vocab-size", "400", "--special", "<|endoftext|>", lab)
        mdir = os.path.join(tmp, "cls")
        p = run("data", "classifier", "train", "--data", lab, "-t", tok, "-o", mdir, "-T", "32",
                "-b", "16", "--layers", "1", "--embd", "32", "--epochs", "3", "--lr", "3e-3")
        print(p.stdout.strip())
        meta = json.load(open(os.path.join(mdir, "classifier.json")))
        acc = meta["held_out"]["accuracy"]
        print("     held-out accuracy %.3f, precision %.3f, recall %.3f on %d documents"
              % (acc, meta["held_out"]["precision"], meta["held_out"]["recall"],
                 meta["held_out"]["docs"]))
        check(acc >= 0.85, "classifier separates the synthetic set: held-out accuracy %.3f >= 0.85"
              % acc)

        # scores against a PyTorch forward of the checkpoint's weights
        fresh = make_docs(40, 99)
        docs = os.path.join(tmp, "docs.jsonl")
        write_jsonl(docs, [{"text": d["text"]} for d in fresh])
        p = run("data", "classifier", "score", "-m", mdir, "--tokens", docs)
        out = [json.loads(line) for line in p.stdout.splitlines()]
        c, P = read_checkpoint(os.path.join(mdir, "model.bin"))
        worst, worst_p = 0.0, 0.0
        for o in out:
            _, h = ref.forward(P, c, torch.tensor(o["tokens"]), return_hidden=True)
            v = float(h[-1] @ P["score.weight"][0] + P["score.bias"][0])
            worst = max(worst, abs(v - o["value"]) / max(1.0, abs(v)))
            worst_p = max(worst_p, abs(torch.sigmoid(torch.tensor(v)).item() - o["score"]))
        print("     %d documents: worst value error %.2e (relative), worst score error %.2e"
              % (len(out), worst, worst_p))
        check(len(out) == 40 and worst < 1e-4 and worst_p < 1e-5,
              "classifier scores equal the PyTorch forward of the same weights")
        right = sum((o["score"] > 0.5) == (d["label"] == 1) for o, d in zip(out, fresh))
        print("     fresh documents classified right: %d/40" % right)

        # prepare --classifier: tag, then drop
        pre = ["data", "prepare", "--no-gopher-quality", "--no-gopher-repetition", "--no-c4",
               "--no-fineweb", "--no-near-dedup", "--no-exact-dedup", "--no-langid",
               "--classifier", mdir, "--threshold", "0.5"]
        tagged = os.path.join(tmp, "tagged.jsonl")
        p = run(*pre, "--classifier-action", "tag", "-o", tagged, docs)
        lines = [json.loads(x) for x in open(tagged)]
        same = len(lines) == 40 and all(abs(x["classifier_score"] - o["score"]) < 1e-6 and
                                        x.get("classifier_flagged", False) == (o["score"] > 0.5)
                                        for x, o in zip(lines, out))
        check(same, "prepare --classifier-action tag: every document scored as `score` does, "
              "flagged above 0.5")
        rate = [l for l in p.stdout.splitlines() if l.startswith("classifier:")]
        print("     " + (rate[0] if rate else "(no classifier line)"))
        check(bool(rate) and "docs/s" in rate[0], "prepare reports the classifier's docs/s")
        dropped = os.path.join(tmp, "dropped.jsonl")
        run(*pre, "-o", dropped, docs)
        kept = [json.loads(x)["text"] for x in open(dropped)]
        want = [d["text"] for d, o in zip(fresh, out) if o["score"] <= 0.5]
        check(kept == want, "prepare --classifier drops exactly the %d documents above the "
              "threshold" % (40 - len(want)))

        # another tokenizer: refused before any work
        other_tok = os.path.join(tmp, "other.json")
        run("tokenizer", "train", "-o", other_tok, "--vocab-size", "300", "--special",
            "<|endoftext|>", docs)
        bad = os.path.join(tmp, "cls-other-tok")
        shutil.copytree(mdir, bad)
        shutil.copy(other_tok, os.path.join(bad, "tokenizer.json"))
        bad_out = os.path.join(tmp, "bad.jsonl")
        p = run(*pre[:-4], "--classifier", bad, "-o", bad_out, docs, ok=False)
        check(p.returncode == 1 and "another tokenizer" in p.stderr and not os.path.exists(bad_out),
              "a classifier with another tokenizer is refused: " + p.stderr.strip()[:160])
        p = run("data", "classifier", "score", "-m", bad, docs, ok=False)
        check(p.returncode != 0 and "another tokenizer" in p.stderr, "score refuses it too")
        p = run("data", "classifier", "train", "--data", lab, "-t", other_tok, "--init",
                os.path.join(mdir, "model.bin"), "-o", os.path.join(tmp, "z"), ok=False)
        check(p.returncode != 0 and "vocabulary" in p.stderr and not os.path.exists(os.path.join(tmp, "z")),
              "train --init with a checkpoint of another vocabulary is refused: " + p.stderr.strip()[:120])

        # bad data and flags
        badlab = os.path.join(tmp, "badlabel.jsonl")
        write_jsonl(badlab, make_docs(10, 1)[:5] + [{"text": "x", "label": 2}])
        p = run("data", "classifier", "train", "--data", badlab, "-t", tok, "-o",
                os.path.join(tmp, "x"), ok=False)
        check(p.returncode != 0 and ":6:" in p.stderr, "a bad label names its line: " + p.stderr.strip())
        one = os.path.join(tmp, "oneclass.jsonl")
        write_jsonl(one, [d for d in make_docs(40, 2) if d["label"] == 1])
        p = run("data", "classifier", "train", "--data", one, "-t", tok, "-o",
                os.path.join(tmp, "y"), ok=False)
        check(p.returncode != 0 and "both labels" in p.stderr, "a single class is refused")
        for args in (["--threshold", "1.5"], ["--threshold", "nan"], ["--classifier-action", "x"],
                     ["--classifier-batch", "-1"]):
            p = run("data", "prepare", "--classifier", mdir, *args, "-o", bad_out, docs, ok=False)
            check(p.returncode == 2 and not os.path.exists(bad_out),
                  "prepare %s refused: %s" % (" ".join(args), p.stderr.strip()[:100]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILURES:
        raise SystemExit("%d check(s) failed" % len(FAILURES))
    print("all checks passed")


if __name__ == "__main__":
    main()
