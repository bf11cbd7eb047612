"""`vklm generate` end to end: a byte-level BPE tokenizer trained on a small text
(`vklm tokenizer train`), a tiny GPT-2 trained on it briefly (`vklm train --text`), then text
generated from the checkpoint with the GPU KV cache: exit 0 and text on stdout, the tokenizer
found beside the checkpoint, --seed reproducible, greedy reproducible, --stop honoured, the
speeds on stderr, a GGUF export with Q8_0 weights generating directly, a full context (error,
or --ctx-shift), and a prompt too long for -c a clear error. Usage: test_generate_cli.py vklm"""
import os
import shutil
import subprocess
import sys
import tempfile

vklm = sys.argv[1]
failures = 0
checks = 0


def check(ok, what):
    global failures, checks
    checks += 1
    print(("  ok   " if ok else "  FAIL ") + what)
    if not ok:
        failures += 1


def run(*args, timeout=600):
    return subprocess.run([vklm, *args], capture_output=True, text=True, errors="replace",
                          timeout=timeout)


tmp = tempfile.mkdtemp(prefix="vklm_gen_")
try:
    text = os.path.join(tmp, "text.txt")
    lines = []
    animals = ["cat", "dog", "bird", "fox", "cow", "owl"]
    for i in range(300):
        a, b = animals[i % 6], animals[(i * 5 + 1) % 6]
        lines.append(f"the {a} sat with the {b} and the {a} was happy number {i % 17}.")
    with open(text, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = os.path.join(tmp, "run")
    os.makedirs(out)
    tok = os.path.join(out, "tokenizer.json")
    r = run("tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special", "<|endoftext|>",
            text)
    check(r.returncode == 0 and os.path.exists(tok), "tokenizer trained: " + r.stderr.strip()[-200:])
    r = run("train", "--text", text, "-t", tok, "--model", "gpt2-tiny", "--steps", "80", "--lr", "3e-3",
            "-b", "4", "-T", "32", "--out", out, "--quiet", "--no-plot", "--val-every", "0",
            "--ckpt-every", "80")
    ckpt = os.path.join(out, "checkpoint.bin")
    check(r.returncode == 0 and os.path.exists(ckpt), "tiny model trained: " + r.stderr.strip()[-300:])

    base = ["generate", "-m", ckpt, "-p", "the cat sat", "-n", "24", "--no-echo"]
    r1 = run(*base, "--seed", "7", "--temp", "0.9")
    check(r1.returncode == 0 and len(r1.stdout.strip()) > 0,
          f"generate exits 0 and prints text: {r1.stdout.strip()[:80]!r} / {r1.stderr.strip()[-200:]}")
    check("tok/s" in r1.stderr and "prompt" in r1.stderr, "speeds on stderr")
    r2 = run(*base, "--seed", "7", "--temp", "0.9")
    check(r2.returncode == 0 and r2.stdout == r1.stdout, "the same --seed gives the same text")
    raw = subprocess.run([vklm, *base, "--seed", "5", "--temp", "2", "--top-k", "0", "--top-p", "1",
                          "--min-p", "0"], capture_output=True, timeout=600).stdout
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    check(valid, "stdout is valid UTF-8 even at temperature 2")
    r3 = run(*base, "--seed", "8", "--temp", "1.5", "--top-k", "0", "--top-p", "1", "--min-p", "0")
    check(r3.returncode == 0, "another seed at temperature 1.5 runs")
    g1 = run(*base, "--temp", "0")
    g2 = run(*base, "--temp", "0", "--seed", "99")
    check(g1.returncode == 0 and g1.stdout == g2.stdout and len(g1.stdout.strip()) > 0,
          f"greedy is seed independent: {g1.stdout.strip()[:60]!r}")
    check(any(w in g1.stdout for w in ("the", "happy", "number")),
          "the briefly trained model writes words of its text")
    rp = run(*base, "--temp", "0", "--repeat-penalty", "1.3", "--repeat-last-n", "16")
    check(rp.returncode == 0, "repetition penalty runs")
    # the directory form and the tokenizer found beside the checkpoint; echo of the prompt
    r = run("generate", "-m", out, "-p", "the dog", "-n", "8", "--seed", "1")
    check(r.returncode == 0 and r.stdout.startswith("the dog"), "-m DIR works and echoes the prompt")
    # a stop string: the output never contains it
    r = run(*base, "--temp", "0", "--stop", "the")
    check(r.returncode == 0 and "the" not in r.stdout, f"--stop 'the': {r.stdout.strip()[:60]!r}")
    # prompt file
    pf = os.path.join(tmp, "prompt.txt")
    with open(pf, "w") as f:
        f.write("the owl")
    r = run("generate", "-m", ckpt, "-f", pf, "-n", "4", "--seed", "3")
    check(r.returncode == 0 and r.stdout.startswith("the owl"), "-f prompt file")
    # too-long prompt for -c
    r = run("generate", "-m", ckpt, "-p", " ".join(["the cat sat"] * 20), "-c", "16", "-n", "4")
    check(r.returncode == 1 and "context length is 16" in r.stderr,
          "a prompt longer than -c: " + r.stderr.strip()[-160:])
    # the context filling during generation: an error by default, shifted with --ctx-shift
    r = run("generate", "-m", ckpt, "-p", "the cat", "-c", "12", "-n", "30", "--temp", "0",
            "--ignore-eos")
    check(r.returncode == 1 and "context is full" in r.stderr, "a full context stops with an error")
    r = run("generate", "-m", ckpt, "-p", "the cat", "-c", "12", "-n", "30", "--temp", "0",
            "--ignore-eos", "--ctx-shift")
    check(r.returncode == 0 and "generated 30 tokens" in r.stderr,
          "--ctx-shift keeps generating: " + r.stderr.strip()[-120:])
    # a GGUF with Q8_0 linear weights (vklm export), loaded directly: weights stay quantized,
    # the tokenizer comes from the file
    gguf = os.path.join(tmp, "model.gguf")
    r = run("export", "-m", ckpt, "--format", "gguf", "--type", "q8_0", "-t", tok, "-o", gguf)
    check(r.returncode == 0, "exported to GGUF Q8_0: " + r.stderr.strip()[-120:])
    r = run("generate", "-m", gguf, "-p", "the cat", "-n", "12", "--temp", "0")
    check(r.returncode == 0 and r.stdout.startswith("the cat") and len(r.stdout) > 12,
          f"generate from the GGUF: {r.stdout.strip()[:60]!r} {r.stderr.strip()[-100:]}")
    # no tokenizer
    lone = os.path.join(tmp, "lone")
    os.makedirs(lone)
    shutil.copy(ckpt, lone)
    r = run("generate", "-m", os.path.join(lone, "checkpoint.bin"), "-p", "x", "-n", "2")
    check(r.returncode == 1 and "tokenizer" in r.stderr, "no tokenizer: a clear error")
    r = run("generate", "-p", "x")
    check(r.returncode == 2, "missing -m is a usage error")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"test_generate_cli: {checks} checks, {failures} failed")
sys.exit(1 if failures else 0)
