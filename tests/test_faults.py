"""Faults through the command line (argv[1]: the vklm binary), issue 14, with validation on:
  - the device full (VKLM_DEVICE_MEMORY_LIMIT) for train and generate: exit 1, a message saying
    what ran out and what to change (a smaller -b/-T; a smaller -c), never a crash;
  - a failed device allocation at every point of a short training run and of generate
    (VKLM_FAULT_ALLOC=N for N = 1, 2, ... until the run needs no more): each exits 1 with the
    message, no signal, no validation message while tearing down;
  - the disk full while writing a checkpoint or a token shard (a file size limit, RLIMIT_FSIZE,
    as a full disk fails a write): exit 1 naming the file, the previous checkpoint byte for byte
    intact, no temporary or partial file left as if complete; the run resumes afterwards;
  - kill -9 at seeded random moments (mid-step and mid-checkpoint alike) of a run resumed until
    it finishes: its final checkpoint is byte-identical to that of a run never interrupted (the
    training time it records, elapsed_s, aside).
Standard library only; about a minute on lavapipe."""
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

VKLM = os.path.abspath(sys.argv[1])
failures = passes = 0


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    passes += bool(ok)
    failures += not ok


def run(*args, env=None, fsize=None, timeout=300):
    def limit():  # a full disk: writes past fsize bytes fail with EFBIG (SIGXFSZ ignored)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace", env=e,
                          timeout=timeout, preexec_fn=limit if fsize else None)


def last(text, n=160):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:n] if lines else ""


with tempfile.TemporaryDirectory(prefix="vklm_faults_") as d:
    text = os.path.join(d, "c.txt")
    with open(text, "w") as f:
        for i in range(300):
            f.write("The quick brown fox %d jumps over the lazy dog number %d.\n" % (i, i * 7))
    tok = os.path.join(d, "tok.json")
    r = run("tokenizer", "train", "-o", tok, "--vocab-size", "300", "--special", "<|endoftext|>", text)
    check(r.returncode == 0, "tokenizer: " + last(r.stderr))
    base = ["train", "--text", text, "-t", tok, "--model", "gpt2-tiny", "-b", "2", "-T", "32",
            "--val-every", "0", "--quiet", "--no-plot"]

    # ---- the device full -------------------------------------------------------------------
    r = run(*base, "--steps", "2", "--out", os.path.join(d, "oom"),
            env={"VKLM_DEVICE_MEMORY_LIMIT": "262144"})
    check(r.returncode == 1 and "out of device memory" in r.stderr and "a smaller -b or -T" in r.stderr,
          "train on a full device: exit 1 and what to change: " + last(r.stderr, 220))
    model_dir = os.path.join(d, "model")
    r = run(*base, "--steps", "4", "--out", model_dir)
    check(r.returncode == 0, "a model for generate: " + last(r.stderr))
    r = run("generate", "-m", model_dir, "-t", tok, "-p", "The quick", "-n", "4", "--temp", "0",
            env={"VKLM_DEVICE_MEMORY_LIMIT": "65536"})
    check(r.returncode == 1 and "out of device memory" in r.stderr and "a smaller -c" in r.stderr,
          "generate on a full device: exit 1 and what to change: " + last(r.stderr, 220))

    # ---- a failed allocation at every point ---------------------------------------------------
    for what, argv in (("train", base + ["--steps", "2", "--out", os.path.join(d, "fa")]),
                       ("generate", ["generate", "-m", model_dir, "-t", tok, "-p", "The quick",
                                     "-n", "4", "--temp", "0"])):
        bad, n = [], 1
        while n <= 200:
            r = run(*argv, env={"VKLM_FAULT_ALLOC": str(n)})
            if r.returncode == 0:
                break
            if r.returncode != 1 or "out of device memory" not in r.stderr:
                bad.append("N=%d: exit %d: %s" % (n, r.returncode, last(r.stderr, 120)))
            n += 1
        check(n > 1 and n <= 200 and not bad,
              "%s with allocation N failing, for each of the %d allocations it makes: exit 1 with "
              "the message, no crash, no validation message %s" % (what, n - 1, bad[:3]))

    # ---- the disk full ---------------------------------------------------------------------
    out = os.path.join(d, "full")
    r = run(*base, "--steps", "4", "--ckpt-every", "2", "--out", out)
    ck = os.path.join(out, "checkpoint.bin")
    check(r.returncode == 0 and os.path.exists(ck), "a run to step 4: " + last(r.stderr))
    before = open(ck, "rb").read()
    r = run(*base, "--steps", "8", "--ckpt-every", "2", "--out", out, "--resume",
            fsize=len(before) - 1)
    check(r.returncode == 1 and "checkpoint" in r.stderr and "File too large" in r.stderr,
          "a checkpoint write on a full disk fails with the file named: " + last(r.stderr, 200))
    left = sorted(f for f in os.listdir(out) if f.endswith(".tmp"))
    check(open(ck, "rb").read() == before and not left,
          "the previous checkpoint is intact and no temporary file is left (%s)" % left)
    r = run(*base, "--steps", "8", "--ckpt-every", "2", "--out", out, "--resume")
    check(r.returncode == 0 and open(ck, "rb").read() != before,
          "with room again the run resumes and finishes: " + last(r.stderr))
    shards = os.path.join(d, "shards")
    cleaned = os.path.join(d, "cleaned.jsonl")
    with open(cleaned, "w") as f:
        for i in range(400):
            f.write('{"text": "document %d: the quick brown fox jumps over the lazy dog %d times"}\n' % (i, i))
    r = run("data", "tokenize", "-t", tok, "-i", cleaned, "-o", shards, "--quiet", fsize=2048)
    files = sorted(os.listdir(shards)) if os.path.isdir(shards) else []
    check(r.returncode == 1 and "File too large" in r.stderr and
          not any(f.endswith(".tmp") for f in files),
          "a shard write on a full disk fails, no temporary file left (%s): %s" % (files, last(r.stderr)))
    complete = [f for f in files if f.endswith(".bin")]
    ok = True
    for f in complete:  # any shard left must be whole: its header's token count fits its size
        ok &= os.path.getsize(os.path.join(shards, f)) <= 2048
    check(ok, "every shard left is complete (%d)" % len(complete))

    # ---- kill -9, resumed until done --------------------------------------------------------
    straight = os.path.join(d, "straight")
    argv = base + ["--steps", "60", "--ckpt-every", "3"]
    t0 = time.time()
    r = run(*argv, "--out", straight)
    span = time.time() - t0  # kill moments are drawn within a straight run's duration
    want = open(os.path.join(straight, "checkpoint.bin"), "rb").read()
    check(r.returncode == 0, "a straight run of 60 steps (%.1f s): " % span + last(r.stderr))
    chaos = os.path.join(d, "chaos")
    rng = random.Random(1234)
    kills = 0
    for attempt in range(12):
        resume = ["--resume"] if os.path.exists(os.path.join(chaos, "checkpoint.bin")) else []
        e = dict(os.environ)
        p = subprocess.Popen([VKLM, *argv, "--out", chaos, *resume], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=e)
        delay = rng.uniform(0.1, 0.9) * span
        try:
            p.wait(timeout=delay if kills < 4 else 300)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            continue
        err = p.stderr.read()
        if p.returncode == 0 and kills == 0 and attempt < 8:
            # it finished before its kill moment (the straight run was timed on a busier
            # machine): start over with earlier kill moments
            shutil.rmtree(chaos, ignore_errors=True)
            span *= 0.5
            continue
        if p.returncode == 0:
            break
        if "nothing to do" in err:  # killed after its last checkpoint: done already
            break
        check(False, "a resumed run failed: " + last(err))
        break
    got = open(os.path.join(chaos, "checkpoint.bin"), "rb").read() if os.path.exists(
        os.path.join(chaos, "checkpoint.bin")) else b""

    def timeless(b):  # all but elapsed_s (offset 144, f64) and the header CRC that covers it
        return b[:144] + b[152:220] + b[224:]
    check(kills >= 1 and len(got) == len(want) and timeless(got) == timeless(want),
          "killed %d times at random moments and resumed: the final checkpoint equals the "
          "straight run's byte for byte, but for the training time it records" % kills)

    # ---- --recompute: the same run, the cheap activations recomputed in the backward -----------
    re_dir = os.path.join(d, "recompute")
    r = run(*argv, "--out", re_dir, "--recompute")
    got = open(os.path.join(re_dir, "checkpoint.bin"), "rb").read() if r.returncode == 0 else b""
    check(r.returncode == 0 and len(got) == len(want) and timeless(got) == timeless(want),
          "train --recompute gives the straight run's checkpoint byte for byte (but its time): "
          + last(r.stderr))

print("test_faults: %d checks, %d failed" % (passes + failures, failures))
sys.exit(1 if failures else 0)
