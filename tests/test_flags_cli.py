"""Flags through the command line (argv[1]: the vklm binary), issue 14: every command whose flags
come from one table (apps/flags.h: generate, chat, serve, tokenizer and its bench, train, sft,
export, ppo, dpo, reward train/score, rank, eval, report, convert, eval-logits, inspect,
template, devices, bench ops/infer/train, data prepare/tokenize/mix/merge/classifier) refuses out-of-range, signed, junk, NaN and overflowing values, unknown choices and
stray arguments with exit status 2 and a message naming the flag and its range, before any work
(no model is needed to get there); --help exits 0 for each and states the ranges; --version
works for vklm and its commands; `--flag=value` is accepted; a missing, empty, device or
non-model path given to generate -m gets a message naming it (not a config.json it never asked
for); inspect of a bad .gguf says it is not GGUF (not safetensors' errors). Standard library
only; a second or two."""
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


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:100] if lines else ""


def run(*args):
    return subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace",
                          timeout=60)


# (command line, what the message must contain)
BAD = [
    (["generate", "-m", "x", "-p", "hi", "-n", "-5"], "--n-predict wants an integer in [1,"),
    (["generate", "-m", "x", "-p", "hi", "-n", "abc"], "--n-predict wants an integer"),
    (["generate", "-m", "x", "-p", "hi", "-n", "99999999999999999999999"], "--n-predict wants"),
    (["generate", "-m", "x", "-p", "hi", "-n", "+5"], "--n-predict wants"),
    (["generate", "-m", "x", "-p", "hi", "-n", " 5"], "--n-predict wants"),
    (["generate", "-m", "x", "-p", "hi", "-n", "5x"], "--n-predict wants"),
    (["generate", "-m", "x", "-p", "hi", "--temp", "abc"], "--temp wants a number in [0, 100]"),
    (["generate", "-m", "x", "-p", "hi", "--temp", "nan"], "--temp wants a number"),
    (["generate", "-m", "x", "-p", "hi", "--temp", "inf"], "--temp wants a number"),
    (["generate", "-m", "x", "-p", "hi", "--temp", "-1"], "--temp wants a number"),
    (["generate", "-m", "x", "-p", "hi", "--repeat-penalty", "0"], "--repeat-penalty wants"),
    (["generate", "-m", "x", "-p", "hi", "--top-p", "1.5"], "--top-p wants a number in [0, 1]"),
    (["generate", "-m", "x", "-p", "hi", "-c", "0"], "--ctx-size wants an integer in [1,"),
    (["generate", "-m", "x", "-p", "hi", "--limits", "foo"], "--limits wants baseline or device"),
    (["generate", "-m", "x", "-p", "hi", "--seed", "-1"], "--seed wants an integer"),
    (["generate", "-m", "x", "-p", "hi", "--seed", "18446744073709551616"], "--seed wants"),
    (["generate", "-m", "x", "-p", "hi", "--bogus"], "unknown flag '--bogus'"),
    (["generate", "-m", "x", "-p", "hi", "--print-ids=1"], "--print-ids takes no value"),
    (["generate", "-m", "x", "-p", "hi", "-n"], "--n-predict needs a value"),
    (["generate", "-m", "x", "-p", "hi", "stray"], "unexpected argument 'stray'"),
    (["generate", "-m", "x"], "give -m MODEL and one of"),
    (["chat", "-m", "x", "--top-k", "-1"], "--top-k wants an integer"),
    (["chat", "-m", "x", "-n", "0"], "--n-predict wants an integer in [1,"),
    (["serve", "-m", "x", "--port", "99999"], "--port wants an integer in [0, 65535]"),
    (["serve", "-m", "x", "-np", "0"], "--parallel wants an integer in [1, 256]"),
    (["serve", "-m", "x", "--max-body", "12"], "--max-body wants an integer in [1024,"),
    (["serve", "-m", "x", "--timeout", "1e3"], "--timeout wants an integer"),
    (["ppo", "--kl", "k5"], "--kl wants one of k1|k3"),
    (["ppo", "--iters", "0"], "--iters wants an integer in [1,"),
    (["ppo", "--gamma", "1.5"], "--gamma wants a number in [0, 1]"),
    (["dpo", "--loss", "x"], "--loss wants one of sigmoid|ipo|hinge"),
    (["dpo", "--lr", "nan"], "--lr wants a number"),
    (["dpo", "--min-lr", "-1"], "--min-lr wants a number in [0, 10]"),
    (["reward", "train", "-b", "1"], "--batch wants an integer in [2, 4096]"),
    (["reward", "score", "--bad-rows", "maybe"], "--bad-rows wants one of stop|skip"),
    (["rank", "--simulate", "coin"], "--simulate wants one of answer|length"),
    (["rank", "--port", "-1"], "--port wants an integer in [0, 65535]"),
    (["eval", "-m", "x", "--limit", "-3"], "--limit wants an integer in [0,"),
    (["eval", "-m", "x", "--batch", "0", "arith"], "--batch wants an integer in [1, 4096]"),
    (["report", "/tmp", "-n", "99"], "--n-prompts wants an integer in [0, 64]"),
    (["report", "/tmp", "/tmp"], "unexpected argument '/tmp'"),
    (["convert", "-m", "a", "--bogus"], "unknown flag '--bogus'"),
    (["inspect", "--dump-as", "f64", "x"], "--dump-as wants one of f32|f16|bf16|q8_0|q4_0"),
    (["template", "--var", "novalue"], "--var wants NAME=VALUE"),
    (["template", "--now", "yesterday"], "--now wants YYYY-MM-DD"),
    (["devices", "--json=1"], "--json takes no value"),
    (["bench", "ops", "--seconds", "0"], "--seconds wants a number in [0.01, 3600]"),
    (["bench", "infer", "--batch", "1,65"], "--batch wants up to"),
    (["tokenizer", "bench", "--pattern", "x"], "--pattern wants one of"),
    (["train", "--steps", "-5"], "--steps wants an integer in [1,"),
    (["train", "--grad-accum", "-1"], "--grad-accum wants an integer in [1, 65536]"),
    (["train", "--warmup", "-1"], "--warmup wants an integer in [0,"),
    (["train", "--layers", "-1"], "--layers wants an integer in [1, 4096]"),
    (["train", "--lr", "0"], "--lr wants a number in [1e-12, 10]"),
    (["train", "--data-order", "random"], "--data-order wants one of shuffled|sequential"),
    (["train", "--text", "a", "stray"], "unexpected argument 'stray'"),
    (["sft", "--bad-rows", "maybe"], "--bad-rows wants one of stop|skip"),
    (["sft", "--answer-tokens", "0"], "--answer-tokens wants an integer in [1,"),
    (["export", "--type", "q5", "-m", "x", "-o", "y"], "--type wants one of f32|f16|q8_0|q4_0"),
    (["export", "--format", "onnx"], "--format wants one of safetensors|gguf"),
    (["bench", "train", "-b", "0"], "--batch wants an integer in [1,"),
    (["data", "prepare", "-o", "x", "--rep-top-2gram", "2", "in"], "--rep-top-2gram wants a number in [0, 1]"),
    (["data", "prepare", "-o", "x", "--minhash-bands", "0", "in"], "--minhash-bands wants an integer in [1, 1024]"),
    (["data", "prepare", "-o", "x", "--gq-min-words", "-1", "in"], "--gq-min-words wants an integer in [0,"),
    (["data", "prepare", "-o", "x", "--threads", "abc", "in"], "--threads wants an integer"),
    (["data", "prepare", "-o", "x", "--limits", "foo", "in"], "--limits wants baseline or device"),
    (["data", "tokenize", "--val-fraction", "nan"], "--val-fraction wants a number in [0, 1]"),
    (["data", "mix", "--max-repeat", "0"], "--max-repeat wants a number in [1, 65535]"),
    (["data", "merge", "--minhash-rows", "0"], "--minhash-rows wants an integer in [1, 256]"),
    (["data", "classifier", "train", "--lr", "5"], "--lr wants a number in [1e-09, 1]"),
    (["data", "classifier", "score", "-b", "0"], "--batch wants an integer in [1, 4096]"),
    (["tokenizer", "train", "--vocab-size", "-3"], "--vocab-size wants an integer in [256,"),
    (["tokenizer", "train", "--vocab-size", "12abc"], "--vocab-size wants"),
    (["tokenizer", "encode", "--bogus"], "unknown flag '--bogus'"),
]
for argv, want in BAD:
    r = run(*argv)
    check(r.returncode == 2 and want in r.stderr,
          "%-60s -> %d: %s" % (" ".join(argv)[:60], r.returncode, r.stderr.strip()[:90]))

# help and version, generated from the table
r = run("generate", "--help")
check(r.returncode == 0 and "--n-predict N" in r.stdout and "an integer in [1, 16777216]" in r.stdout
      and "--temp X" in r.stdout and "a number in [0, 100]" in r.stdout,
      "generate --help exits 0 and states the ranges")
for argv in (["--version"], ["generate", "--version"], ["chat", "--version"], ["serve", "--version"],
             ["tokenizer", "encode", "--version"]):
    r = run(*argv)
    check(r.returncode == 0 and r.stdout.startswith("vklm "), "%s prints the version: %s"
          % (" ".join(argv), r.stdout.strip()))
with tempfile.TemporaryDirectory() as d:
    bad = os.path.join(d, "bad.gguf")
    with open(bad, "wb") as f:
        f.write(b"not a gguf file")
    r = run("inspect", bad)
    check(r.returncode == 1 and "not a GGUF file" in r.stderr and "safetensors" not in r.stderr,
          "inspect of a bad .gguf says so: " + r.stderr.strip()[:90])
# files: only regular files, never an endless read of a device (engine/io/file.h)
with tempfile.TemporaryDirectory() as d:
    for argv, want in ((["tokenizer", "encode", "-t", "/dev/zero", "-p", "hi"], "'/dev/zero' is a character device"),
                       (["tokenizer", "encode", "-t", d, "-p", "hi"], "holds neither tokenizer.json"),
                       (["template", "--builtin", "chatml", "--messages", "/dev/zero"], "'/dev/zero' is a character device"),
                       (["template", "--builtin", "chatml", "--messages", d], "is a directory"),
                       (["eval", "-m", "/nonexistent", "/dev/zero"], "'/dev/zero' is a character device"),
                       (["data", "tokenize", "-t", "/nonexistent.json", "-i", "/nonexistent", "-o",
                         os.path.join(d, "sh")], "cannot open the input '/nonexistent'"),
                       (["data", "prepare", "-o", os.path.join(d, "x.jsonl"), d],
                        "no documents in the input"),
                       (["data", "prepare", "-o", os.path.join(d, "y.jsonl"), "/nonexistent"],
                        "cannot open the input '/nonexistent'"),
                       (["tokenizer", "train", "-o", os.path.join(d, "t.json"), "--vocab-size",
                         "300", d], "is a directory, not a file")):
        r = run(*argv)
        check(r.returncode == 1 and want in r.stderr, "%s -> %d: %s" % (" ".join(argv)[:60], r.returncode,
                                                                      r.stderr.strip()[:90]))
# a JSONL text holding \u0000 is a malformed line for the data pipeline, never a text cut short
with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "in.jsonl")
    with open(src, "w") as f:
        f.write('{"text": "%s"}\n' % ("A long enough document about foxes and dogs. " * 20))
        f.write('{"text": "cut here\\u0000%s"}\n' % ("and a hidden rest of the text. " * 20))
    out = os.path.join(d, "out.jsonl")
    r = run("data", "prepare", "-o", out, "--no-langid", "--no-gopher-quality", "--no-c4",
            "--no-fineweb", "--no-gopher-repetition", src)
    kept = open(out).read() if os.path.exists(out) else ""
    check(r.returncode == 0 and "cut here" not in kept and "foxes" in kept and
          "1 malformed" in r.stdout + r.stderr,
          "data prepare: a \\u0000 line is malformed, not cut: " + last_line(r.stdout))
r = run("tokenizer", "encode", "--help")
check(r.returncode == 0 and "--no-specials" in r.stdout, "tokenizer encode --help exits 0")
for argv in (["chat", "--help"], ["tokenizer", "train", "-h"], ["ppo", "--help"], ["dpo", "-h"],
             ["reward", "train", "--help"], ["reward", "score", "--help"], ["rank", "--help"],
             ["eval", "--help"], ["report", "--help"], ["convert", "--help"], ["inspect", "--help"],
             ["template", "--help"], ["devices", "--help"], ["bench", "ops", "--help"],
             ["bench", "infer", "--help"], ["tokenizer", "bench", "--help"], ["serve", "--help"],
             ["eval-logits", "--help"], ["train", "--help"], ["sft", "--help"],
             ["export", "--help"], ["bench", "train", "--help"], ["data", "prepare", "--help"],
             ["data", "tokenize", "--help"], ["data", "mix", "--help"], ["data", "merge", "--help"],
             ["data", "classifier", "train", "--help"], ["data", "classifier", "score", "--help"]):
    r = run(*argv)
    check(r.returncode == 0 and "usage: vklm" in r.stdout, " ".join(argv) + " exits 0")

# --flag=value reaches the same checks (and a good value gets past them to the model)
r = run("generate", "-m", "/nonexistent/model.bin", "-p", "hi", "--n-predict=4", "--temp=0.5")
check(r.returncode == 1 and "cannot open the model /nonexistent/model.bin" in r.stderr,
      "--flag=value accepted; a missing model is named: " + r.stderr.strip()[:90])

with tempfile.TemporaryDirectory() as d:
    empty = os.path.join(d, "empty.bin")
    open(empty, "wb").close()
    junk = os.path.join(d, "junk.bin")
    with open(junk, "wb") as f:
        f.write(b"this is not a model at all\n")
    for path, want in ((empty, "is empty"), (junk, "is not a model"),
                       ("/dev/null", "not a regular file or a directory")):
        r = run("generate", "-m", path, "-p", "hi")
        check(r.returncode == 1 and want in r.stderr and "config.json" not in r.stderr,
              "generate -m %s: %s" % (path, r.stderr.strip()[:90]))

print("test_flags_cli: %d checks, %d failed" % (passes + failures, failures))
sys.exit(1 if failures else 0)
