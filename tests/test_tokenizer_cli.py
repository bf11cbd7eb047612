"""Tokenizer files through the command line (argv[1]: the vklm binary), issue 14: tiktoken special
tokens get the ids a user gives (--special-id TOKEN=ID, as cl100k's <|endoftext|> is 100257, not
the largest rank + 1), or the next ids after the largest rank (--special); mixing the two, or
--special-id without tiktoken, is refused; a bad TOKEN=ID is refused; a tokenizer.json whose
vocabulary lacks byte tokens loads with a warning that names how many bytes are lost (encoding
drops them, as Hugging Face's tokenizers does); a complete one loads without it. Standard
library only; a second."""
import base64
import json
import os
import subprocess
import sys
import tempfile

VKLM = os.path.abspath(sys.argv[1])
failures = passes = 0


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what)
    passes += bool(ok)
    failures += not ok


def run(*args):
    return subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace",
                          timeout=60)


with tempfile.TemporaryDirectory() as d:
    # a tiktoken rank file: the 256 bytes, then two merges ("he", "ll")
    tt = os.path.join(d, "tiny.tiktoken")
    ranks = [bytes([b]) for b in range(256)] + [b"he", b"ll"]
    with open(tt, "w") as f:
        for i, t in enumerate(ranks):
            f.write("%s %d\n" % (base64.b64encode(t).decode(), i))
    base = ["tokenizer", "encode", "--tiktoken", tt, "--pattern", "gpt2"]
    r = run(*base, "--special", "<|endoftext|>", "-p", "hello<|endoftext|>")
    check(r.returncode == 0 and r.stdout.split()[-1] == "258",
          "--special: the next id after the largest rank (258): " + r.stdout.strip())
    r = run(*base, "--special-id", "<|endoftext|>=1000", "-p", "hello<|endoftext|>")
    check(r.returncode == 0 and r.stdout.split()[-1] == "1000",
          "--special-id <|endoftext|>=1000: that id: " + r.stdout.strip() + r.stderr.strip())
    r = run(*base, "--special-id", "<|a=b|>=700", "-p", "<|a=b|>")
    check(r.returncode == 0 and r.stdout.strip() == "700",
          "--special-id splits at the last '=' (a token may hold one): " + r.stdout.strip())
    for bad in ("<|endoftext|>", "<|endoftext|>=", "=5", "<|x|>=-1", "<|x|>=99999999", "<|x|>=1e3"):
        r = run(*base, "--special-id", bad, "-p", "x")
        check(r.returncode == 2 and "--special-id wants TOKEN=ID" in r.stderr,
              "--special-id %r refused: %s" % (bad, r.stderr.strip()[:80]))
    r = run(*base, "--special-id", "<|a|>=700", "--special", "<|b|>", "-p", "x")
    check(r.returncode == 1 and "every special token needs its id" in r.stderr,
          "mixing --special and --special-id is refused: " + r.stderr.strip()[:90])

    # a trained tokenizer.json, then the same without the byte token of 'q'
    corpus = os.path.join(d, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("hello world, the quick brown fox\n" * 40)
    full = os.path.join(d, "full.json")
    r = run("tokenizer", "train", "-o", full, "--vocab-size", "300", corpus)
    check(r.returncode == 0, "tokenizer train: " + r.stderr.strip()[-80:])
    j = json.load(open(full))
    del j["model"]["vocab"]["q"]
    j["model"]["merges"] = [m for m in j["model"]["merges"]
                            if "q" not in (m if isinstance(m, str) else " ".join(m))]
    holed = os.path.join(d, "holed.json")
    json.dump(j, open(holed, "w"))
    r = run("tokenizer", "encode", "-t", full, "-p", "quick")
    check(r.returncode == 0 and "warning" not in r.stderr, "a complete vocabulary: no warning")
    r = run("tokenizer", "encode", "-t", holed, "-p", "quick")
    check(r.returncode == 0 and "no token for 1 of the 256 byte values (the first: 0x71)" in r.stderr,
          "a vocabulary without 'q' warns: " + r.stderr.strip()[:140])

print("test_tokenizer_cli: %d checks, %d failed" % (passes + failures, failures))
sys.exit(1 if failures else 0)
