"""End-to-end test of `vklm train` (argv[1]: the vklm binary).

Builds a small English corpus (the licence texts in /usr/share/common-licenses, or Python's own
source files where those are missing), trains a tokenizer (`vklm tokenizer train`), writes shards
(`vklm data tokenize`), trains gpt2-tiny for 150 steps from the shards and checks that the
validation loss in metrics.jsonl falls, that loss.png is a valid PNG of the expected size and that
the checkpoint exists; then resumes the run for a few more steps, resumes it again with flags
that override the checkpoint's values (the start-up line names each value's source; the new
checkpoint, version 3, holds them), refuses a resume whose model or seed flags contradict the
checkpoint, starts new runs from the trained weights with --init (from the checkpoint and from a
Hugging Face export of it: both start at the same validation loss, far below a fresh model's),
runs --text mode in sequential data order, and checks bad input: unknown flags and bad values
(exit 2), missing data, a corrupt checkpoint (exit 1, nothing overwritten)."""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

VKLM = os.path.abspath(sys.argv[1])
failures = 0
passes = 0


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what)
    if ok:
        passes += 1
    else:
        failures += 1


def run(args, expect=0, **kw):
    p = subprocess.run([VKLM] + args, capture_output=True, text=True, **kw)
    if p.returncode != expect:
        print("$ vklm " + " ".join(args))
        print(p.stdout[-3000:])
        print(p.stderr[-3000:])
    check(p.returncode == expect, "vklm %s -> exit %d (want %d)" % (args[0], p.returncode, expect))
    return p


def corpus_docs():
    docs = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                docs += [p.strip() for p in f.read().split("\n\n") if len(p.strip()) > 40]
    if sum(len(d) for d in docs) < 60000:  # no licence texts: Python's own sources
        import json as _j
        base = os.path.dirname(_j.__file__ + "/../..")
        for path in sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))[:40]:
            with open(path, encoding="utf-8", errors="replace") as f:
                docs += [p.strip() for p in f.read().split("\n\n") if len(p.strip()) > 40]
    return docs


def read_png_size(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    # every chunk's CRC must hold
    at = 8
    while at < len(data):
        n, = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
        crc, = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
        if zlib.crc32(kind + body) & 0xffffffff != crc:
            return None
        at += 12 + n
        if kind == b"IEND":
            break
    return struct.unpack(">II", data[16:24])


def main():
    with tempfile.TemporaryDirectory(prefix="vklm_train_cli_") as d:
        docs = corpus_docs()
        jsonl = os.path.join(d, "docs.jsonl")
        with open(jsonl, "w") as f:
            for t in docs:
                f.write(json.dumps({"text": t}) + "\n")
        print("corpus: %d documents, %d characters" % (len(docs), sum(len(t) for t in docs)))
        tok = os.path.join(d, "tok.json")
        run(["tokenizer", "train", "-o", tok, "--vocab-size", "512", "--special", "<|endoftext|>", jsonl])
        shards = os.path.join(d, "shards")
        run(["data", "tokenize", "-t", tok, "-i", jsonl, "-o", shards, "--val-fraction", "0.1"])
        out = os.path.join(d, "run")
        t0 = time.time()
        steps = 120
        p = run(["train", "--train", shards, "--model", "gpt2-tiny", "-b", "8", "-T", "32",
                 "--steps", str(steps), "--lr", "3e-3", "--warmup", "10", "--val-every", "25",
                 "--val-batches", "4", "--ckpt-every", "50", "--log-every", "50", "--out", out])
        dt = time.time() - t0
        print(p.stderr.strip()[-1500:])
        rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        train = [r["train_loss"] for r in rows if "train_loss" in r]
        print("validation loss by step: " + ", ".join("%d: %.3f" % v for v in val))
        check(len(train) == steps, "metrics.jsonl has %d training rows" % len(train))
        check(len(val) >= 5 and val[0][0] == 0 and val[-1][0] == steps, "validation measured at 0..%d" % steps)
        check(val[-1][1] < val[0][1] - 0.5, "validation loss falls: %.3f -> %.3f" % (val[0][1], val[-1][1]))
        check(all(k in rows[5] for k in ("step", "train_loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s")),
              "a row has step, train_loss, lr, grad_norm, tokens_per_s, elapsed_s")
        tps = sum(r["tokens_per_s"] for r in rows[1:]) / max(1, len(rows) - 1)
        print("%d steps in %.1f s, mean %.0f tokens/s" % (steps, dt, tps))
        size = read_png_size(os.path.join(out, "loss.png"))
        check(size == (800, 500), "loss.png is a valid 800x500 PNG (%s)" % (size,))
        ck = os.path.join(out, "checkpoint.bin")
        check(os.path.getsize(ck) > 256, "checkpoint.bin exists (%d bytes)" % os.path.getsize(ck))
        check(not glob.glob(os.path.join(out, "*.tmp*")), "no temporary files left")

        # resume for 10 more steps: the log continues from step 150
        run(["train", "--train", shards, "--steps", str(steps + 10), "--out", out, "--resume",
             "--quiet", "--val-every", "25", "--val-batches", "4"])
        rows2 = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
        check(rows2[:len(rows)] == rows and rows2[-1]["step"] == steps + 10,
              "resume appends steps %d..%d to the log" % (steps + 1, rows2[-1]["step"]))

        # resume with flags that override the checkpoint's values
        p = run(["train", "--train", shards, "--steps", str(steps + 20), "--out", out, "--resume",
                 "-b", "4", "--lr", "1e-4", "--val-every", "25", "--val-batches", "4",
                 "--log-every", "5"])
        line = next((l for l in p.stderr.splitlines() if "resuming" in l), "")
        print(line)
        check("at step %d of %d" % (steps + 10, steps + 20) in line and
              "from flags: B=4 steps=%d lr=0.0001 min-lr=1e-05 (lr/10)" % (steps + 20) in line and
              "from the checkpoint: seed=1337 objective=causal T=32 grad-accum=1" in line and
              "data-order=shuffled" in line, "the resume line names each value's source")
        h = open(os.path.join(out, "checkpoint.bin"), "rb").read(256)
        version, = struct.unpack_from("<I", h, 8)
        B, T = struct.unpack_from("<II", h, 64)
        total, = struct.unpack_from("<Q", h, 88)
        lr, min_lr = struct.unpack_from("<ff", h, 152)
        order, = struct.unpack_from("<I", h, 224)
        check(version == 3 and (B, T) == (4, 32) and total == steps + 20 and abs(lr - 1e-4) < 1e-9
              and abs(min_lr - 1e-5) < 1e-10 and order == 1,
              "checkpoint v%d holds B=%d T=%d steps=%d lr=%g min-lr=%g order=%d" % (
                  version, B, T, total, lr, min_lr, order))
        rows3 = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
        check(rows3[-1]["step"] == steps + 20 and abs(rows3[-1]["lr"] - 1e-5) < 1e-9,
              "the resumed run reached step %d with lr %g (min-lr)" % (rows3[-1]["step"], rows3[-1]["lr"]))
        for flags, needle in ((["--layers", "3"], "--layers 3 (the model has 2)"),
                              (["--seed", "5"], "--seed cannot change"),
                              (["--model", "llama-tiny"], "--arch llama (the model is gpt2)"),
                              (["-T", "100"], "exceeds the model's 64 positions")):
            p = run(["train", "--train", shards, "--steps", "200", "--out", out, "--resume"] + flags,
                    expect=1)
            check(needle in p.stderr, "resume %s refused: %s" % (" ".join(flags), p.stderr.strip()))

        # new runs from the trained weights: the checkpoint, and its Hugging Face export
        hf = os.path.join(d, "hf")
        os.makedirs(hf)
        run(["export", "-m", os.path.join(out, "checkpoint.bin"), "-o", os.path.join(hf, "model.safetensors")])
        v0 = {}
        for label, src in (("ckpt", os.path.join(out, "checkpoint.bin")), ("hf", hf), ("fresh", None)):
            ft = os.path.join(d, "ft_" + label)
            args = ["train", "--train", shards, "--steps", "3", "-b", "8", "-T", "32", "--lr", "1e-4",
                    "--val-batches", "4", "--out", ft]
            p = run(args + (["--init", src] if src else []))
            r0 = json.loads(open(os.path.join(ft, "metrics.jsonl")).readline())
            v0[label] = r0["val_loss"]
            if src:
                line = next((l for l in p.stderr.splitlines() if "new run from the weights" in l), "")
                print(line)
                check(("(%s, gpt2: V 512, ctx 64, L 2" % ("checkpoint" if label == "ckpt" else "hf")) in line
                      and "from flags: B=8 T=32 steps=3 lr=0.0001" in line and "defaults:" in line,
                      "--init %s: the start-up line names the model and each value's source" % label)
        check(v0["ckpt"] == v0["hf"] and v0["ckpt"] < v0["fresh"] - 0.5,
              "--init from the checkpoint and from its HF export start at the same validation loss "
              "%.4f (a fresh model: %.4f)" % (v0["ckpt"], v0["fresh"]))
        p = run(["train", "--train", shards, "--init", hf, "--embd", "128", "--out",
                 os.path.join(d, "ft_bad")], expect=1)
        check("--embd 128 (the model has 64)" in p.stderr and not os.path.exists(os.path.join(d, "ft_bad")),
              "--init with a contradicting model flag: " + p.stderr.strip())

        # killed at random moments (checkpoint every step): the checkpoint always reads back
        kill_dir = os.path.join(d, "kill")
        ok_reads = 0
        for i, delay in enumerate((0.9, 1.3, 1.7)):
            args = [VKLM, "train", "--train", shards, "-b", "8", "-T", "32", "--steps", "1000",
                    "--ckpt-every", "1", "--out", kill_dir, "--quiet", "--val-batches", "0"]
            args += ["--resume"] if i else []
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ck_kill = os.path.join(kill_dir, "checkpoint.bin")
            t_end = time.time() + 60
            while time.time() < t_end and proc.poll() is None and (
                    not os.path.exists(ck_kill) or (i == 0 and os.path.getsize(ck_kill) == 0)):
                time.sleep(0.05)
            time.sleep(delay - 0.7)  # then a few more steps, each writing a checkpoint
            proc.kill()
            proc.wait()
            p = subprocess.run([VKLM, "export", "-m", os.path.join(kill_dir, "checkpoint.bin"),
                                "-o", os.path.join(d, "k.safetensors"), "--no-config"],
                               capture_output=True, text=True)
            ok_reads += p.returncode == 0
        check(ok_reads == 3, "SIGKILL during checkpointing leaves a valid checkpoint (%d/3)" % ok_reads)

        # SIGINT: the step finishes, a checkpoint is written, exit 130; --resume continues
        int_dir = os.path.join(d, "int")
        proc = subprocess.Popen([VKLM, "train", "--train", shards, "-b", "8", "-T", "32", "--steps",
                                 "1000", "--ckpt-every", "1000", "--out", int_dir, "--quiet",
                                 "--val-batches", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        log = os.path.join(int_dir, "metrics.jsonl")
        t_end = time.time() + 60
        while time.time() < t_end and proc.poll() is None and (
                not os.path.exists(log) or len(open(log).readlines()) < 3):
            time.sleep(0.05)
        proc.send_signal(2)
        _, err = proc.communicate(timeout=60)
        last = json.loads(open(log).readlines()[-1])["step"]
        p = subprocess.run([VKLM, "export", "-m", os.path.join(int_dir, "checkpoint.bin"), "-o",
                            os.path.join(d, "i.safetensors"), "--no-config"], capture_output=True, text=True)
        check(proc.returncode == 130 and "interrupted after step %d" % last in err and
              "step %d)" % last in p.stderr,
              "SIGINT: exit %d, checkpoint at step %d: %s" % (proc.returncode, last, err.strip()))

        # --text mode with a tokenizer
        text = os.path.join(d, "corpus.txt")
        with open(text, "w") as f:
            f.write("\n\n".join(docs))
        run(["train", "--text", text, "-t", tok, "--steps", "5", "-b", "2", "-T", "32",
             "--out", os.path.join(d, "text"), "--quiet", "--data-order", "sequential"])
        check(os.path.exists(os.path.join(d, "text", "checkpoint.bin")), "--text run wrote a checkpoint")

        # bad input
        run(["train", "--bogus"], expect=2)
        for flags, needle in ((["-b", "0"], "--batch wants an integer in [1,"),
                              (["--lr", "fast"], "--lr wants a number in [1e-12,"),
                              (["--steps", "-3"], "--steps wants an integer"),
                              (["--data-order", "random"], "--data-order wants one of shuffled|sequential"),
                              (["--resume", "--init", out], "give one of them")):
            p = run(["train", "--train", shards, "--out", os.path.join(d, "w")] + flags, expect=2)
            check(needle in p.stderr, "%s: %s" % (" ".join(flags[:2]), p.stderr.strip().splitlines()[0]))
        p = run(["train", "--train", os.path.join(d, "nothing_*.bin"), "--out", os.path.join(d, "x")], expect=1)
        check("no token shards" in p.stderr, "missing data: " + p.stderr.strip())
        short = os.path.join(d, "short.txt")
        with open(short, "w") as f:
            f.write("too short")
        p = run(["train", "--text", short, "-t", tok, "--out", os.path.join(d, "y")], expect=1)
        check("too little data" in p.stderr, "short data: " + p.stderr.strip())
        p = run(["train", "--train", shards, "--vocab", "100", "--out", os.path.join(d, "z")], expect=1)
        check("do not match" in p.stderr, "vocabulary mismatch: " + p.stderr.strip())
        check(not os.path.exists(os.path.join(d, "z")), "nothing written for a failed start")
        with open(ck, "rb") as f:
            good = bytearray(f.read())
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0x40
        with open(ck, "wb") as f:
            f.write(bad)
        log_before = open(os.path.join(out, "metrics.jsonl")).read()
        png_before = open(os.path.join(out, "loss.png"), "rb").read()
        p = run(["train", "--train", shards, "--steps", "200", "--out", out, "--resume"], expect=1)
        check("CRC" in p.stderr, "corrupt checkpoint: " + p.stderr.strip())
        check(open(ck, "rb").read() == bad and open(os.path.join(out, "metrics.jsonl")).read() == log_before
              and open(os.path.join(out, "loss.png"), "rb").read() == png_before,
              "nothing overwritten after the corrupt checkpoint")
        p = run(["export", "-m", ck, "-o", os.path.join(d, "m.safetensors")], expect=1)
        check("CRC" in p.stderr and not os.path.exists(os.path.join(d, "m.safetensors")),
              "export refuses a corrupt checkpoint")
        with open(ck, "wb") as f:
            f.write(good[:1000])
        p = run(["train", "--train", shards, "--steps", "200", "--out", out, "--resume"], expect=1)
        check("truncated" in p.stderr, "truncated checkpoint: " + p.stderr.strip())
        p = run(["train", "--train", shards, "--steps", "5", "--out", out], expect=1)
        check("exists" in p.stderr, "a fresh run does not replace a checkpoint: " + p.stderr.strip())

    print("%d passed, %d failed" % (passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
