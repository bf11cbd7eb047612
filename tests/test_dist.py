"""Data-parallel training over Open MPI (argv[1]: the vklm binary; docs/distributed.md).

On one machine (lavapipe: every rank on the CPU device), with a tiny GPT-2 and a global batch of
6 micro-batches of 2 x 16 tokens:
  - 2 and 3 ranks (`mpirun --oversubscribe`) train 4 steps; their parameters, AdamW moments,
    data position and per-step losses equal a single-process run with the same global batch
    within a bound (the ranks' partial gradients are added on the host in rank order, the single
    process adds them inside its kernels: equal up to float rounding), and a run with another
    global batch lies far outside that bound (the comparison can fail);
  - a run stopped after step 2 on 2 ranks and resumed on 3 ends where the single run does;
  - --grad-accum that the ranks cannot split, and a rank that cannot open its device, end the job
    with a message naming the rank;
  - rank 0 failing cleanly mid-run (its checkpoint cannot be written) stops every rank, the
    failure told once, naming the rank and the step;
  - a rank killed (SIGKILL) mid-run ends the job within a bounded time, the rank named;
  - a rank that hangs (SIGSTOP) makes the others abort after VKLM_DIST_TIMEOUT seconds, naming it;
  - the same run on the same ranks twice gives the same bits;
  - f16 with dynamic loss scaling, started high enough to overflow: 2 ranks with ZeRO-1 skip the
    same steps as one process and end with the same weights and loss scale.
"""
import array
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

VKLM = os.path.abspath(sys.argv[1])
MPIRUN = shutil.which("mpirun")
failures = 0
passes = 0
BOUND = 1e-5  # parameters after 4 steps at lr <= 2.4e-4: observed differences ~2e-7


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if ok:
        passes += 1
    else:
        failures += 1


ENV = dict(os.environ)
ENV["LP_NUM_THREADS"] = "1"  # lavapipe: one thread per rank on a shared CPU
if os.getuid() == 0:
    ENV["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    ENV["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
ENV.pop("VKLM_DIST_TIMEOUT", None)


def mpi_cmd(n, args, extra_env=()):
    cmd = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", str(n)]
    for k in ["LP_NUM_THREADS", "VKLM_VALIDATE", "VKLM_CACHE_DIR", "VKLM_LIMITS"] + list(extra_env):
        if k in ENV:
            cmd += ["-x", k]
    return cmd + [VKLM] + args


def run(cmd, expect=0, env=None, timeout=300):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)
    ok = (p.returncode == expect) if expect is not None else p.returncode != 0
    if not ok:
        print("$ " + " ".join(cmd))
        print(p.stdout[-3000:])
        print(p.stderr[-3000:])
    check(ok, "%s -> exit %d (want %s) in %.1f s" % (" ".join(cmd[:7]) if cmd[0] == MPIRUN
                                                       else "vklm " + cmd[2], p.returncode,
                                                       expect if expect is not None else "!= 0",
                                                       time.time() - t0))
    return p


def write_shard(path, toks, vocab):
    h = bytearray(64)
    h[0:8] = b"VKLMTOK1"
    struct.pack_into("<IIQQiIQ", h, 8, 1, 2, len(toks), vocab, -1, 64, 1)
    with open(path, "wb") as f:
        f.write(bytes(h) + struct.pack("<%dH" % len(toks), *toks))


def load_ckpt(path):
    with open(path, "rb") as f:
        d = f.read()
    nt, = struct.unpack_from("<I", d, 184)
    n, = struct.unpack_from("<Q", d, 192)
    step, = struct.unpack_from("<Q", d, 80)
    pos, epoch = struct.unpack_from("<QQ", d, 104)
    ga, = struct.unpack_from("<I", d, 72)
    scale, = struct.unpack_from("<f", d, 244)
    skipped, = struct.unpack_from("<I", d, 252)
    off = 256 + nt * 112
    a = array.array("f")
    a.frombytes(d[off:off + 12 * n])
    return {"n": n, "step": step, "pos": pos, "epoch": epoch, "ga": ga, "vec": a, "scale": scale,
            "skipped": skipped}


def max_diff(a, b, part):
    n = a["n"]
    lo, hi = part * n, (part + 1) * n
    return max(abs(x - y) for x, y in zip(a["vec"][lo:hi], b["vec"][lo:hi]))


def losses(run_dir, key="train_loss"):
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if isinstance(r.get(key), (int, float)):
                out[r["step"]] = r[key]
    return out


def compare(ref, other, what, bound=BOUND, expect_equal=True):
    a = load_ckpt(os.path.join(ref, "checkpoint.bin"))
    b = load_ckpt(os.path.join(other, "checkpoint.bin"))
    dp = max_diff(a, b, 0)
    dm, dv = max_diff(a, b, 1), max_diff(a, b, 2)
    print("    %s: params max |diff| %.3g, m %.3g, v %.3g (bound %g)" % (what, dp, dm, dv, bound))
    if not expect_equal:
        check(dp > 10 * bound, "%s: a different global batch differs by more than 10x the bound"
              % what)
        return
    check(dp <= bound and dm <= bound and dv <= bound, "%s: parameters and moments within %g"
          % (what, bound))
    check((a["step"], a["pos"], a["epoch"], a["ga"]) == (b["step"], b["pos"], b["epoch"], b["ga"]),
          "%s: step %d, data position %d, epoch %d, grad-accum %d agree" %
          (what, b["step"], b["pos"], b["epoch"], b["ga"]))
    la, lb = losses(ref), losses(other)
    worst = max(abs(la[s] - lb[s]) for s in la) if la.keys() == lb.keys() else float("inf")
    check(worst <= 1e-5, "%s: losses of steps %s agree (worst %.3g)" % (what, sorted(lb), worst))
    va, vb = losses(ref, "val_loss"), losses(other, "val_loss")
    worst = max(abs(va[s] - vb[s]) for s in vb) if vb and set(vb) <= set(va) else float("inf")
    check(worst <= 1e-5, "%s: validation losses of steps %s (split over the ranks) agree "
          "(worst %.3g)" % (what, sorted(vb), worst))


def rank_pids(marker, rank):
    """Pids of vklm processes of this test (marker in the command line) with the given rank."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
            if not cmd or not cmd[0].endswith(b"vklm") or marker.encode() not in b" ".join(cmd):
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            if ("OMPI_COMM_WORLD_RANK=%d" % rank).encode() in env:
                pids.append(int(pid))
        except OSError:
            pass
    return pids


def until_step(p, step, limit):
    """Reads p's stderr until a progress line of `step` (or the limit); returns the text."""
    text, t0 = "", time.time()
    os.set_blocking(p.stderr.fileno(), False)
    while time.time() - t0 < limit and p.poll() is None:
        try:
            chunk = os.read(p.stderr.fileno(), 65536)
        except BlockingIOError:
            chunk = b""
        if chunk:
            text += chunk.decode(errors="replace")
            if ("step %d/" % step) in text:
                break
        time.sleep(0.1)
    return text


def failure_case(tmp, name, sig, extra_env, want, limit):
    """Starts 2 ranks on a long run, sends sig to rank 1 after step 2, and checks that the job
    ends within `limit` seconds with `want` in its output."""
    out = os.path.join(tmp, name)
    env = dict(ENV)
    env.update(extra_env)
    cmd = mpi_cmd(2, ["train", "--train", os.path.join(tmp, "data"), "--vocab", "64", "-b", "2",
                      "-T", "16", "--steps", "100000", "--val-batches", "0", "--no-plot",
                      "--ckpt-every", "0", "--log-every", "1", "--out", out], list(extra_env))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    text = until_step(p, 2, 120)
    pids = rank_pids(out, 1)
    check(len(pids) == 1 and p.poll() is None, "%s: rank 1 found (pid %s) while training" %
          (name, pids))
    if len(pids) != 1:
        p.kill()
        p.wait()
        return
    t0 = time.time()
    os.kill(pids[0], sig)
    os.set_blocking(p.stderr.fileno(), True)
    try:
        _, rest = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        _, rest = p.communicate()
    rest = rest.decode(errors="replace")
    dt = time.time() - t0
    for pid in pids + rank_pids(out, 0):  # a stopped rank left behind: ours, end it
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    text += rest
    tail = "\n".join(l for l in text.splitlines() if "step" not in l or "rank" in l)[-1500:]
    print("    " + tail.replace("\n", "\n    "))
    check(p.returncode not in (0, None) and dt < limit,
          "%s: the job ended (exit %s) %.1f s after the signal (limit %d s)" %
          (name, p.returncode, dt, limit))
    check(all(w in text for w in want), "%s: the message names %s" % (name, want))


def main():
    if not MPIRUN:
        print("mpirun not found (scripts/install-deps.sh installs openmpi-bin)")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="vklm_dist_")
    try:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        toks, s = [], 12345
        for i in range(6000):  # a learnable stream: mostly i*7 mod 64, some noise
            s = (s * 1103515245 + 12345) % (1 << 31)
            toks.append((i * 7 + (s >> 16) % 4) % 64)
        write_shard(os.path.join(data, "train_000.bin"), toks[:5000], 64)
        write_shard(os.path.join(data, "val_000.bin"), toks[5000:], 64)  # used beside train_*
        base = ["train", "--train", data, "--vocab", "64", "-b", "2", "-T", "16", "--steps", "4",
                "--val-batches", "5", "--val-every", "2", "--no-plot", "--quiet",
                "--ckpt-every", "2", "--lr", "1e-3", "--warmup", "2"]
        ref = os.path.join(tmp, "ref")
        print("single process, grad-accum 6 (the reference)")
        run([VKLM] + base + ["--grad-accum", "6", "--out", ref])
        for n in (2, 3):
            print("%d ranks, the same global batch" % n)
            d = os.path.join(tmp, "np%d" % n)
            run(mpi_cmd(n, base + ["--grad-accum", "6", "--out", d]))
            compare(ref, d, "%d ranks vs 1" % n)
        print("2 ranks again: bit-identical to the first 2-rank run")
        d = os.path.join(tmp, "np2_again")
        run(mpi_cmd(2, base + ["--grad-accum", "6", "--out", d]))
        a, b = (load_ckpt(os.path.join(x, "checkpoint.bin")) for x in (os.path.join(tmp, "np2"), d))
        check(a["vec"] == b["vec"], "the same ranks give the same bits (parameters and moments)")
        for n in (2, 3):
            print("%d ranks with ZeRO-1 (moments and master weights sharded)" % n)
            d = os.path.join(tmp, "zero%d" % n)
            run(mpi_cmd(n, base + ["--grad-accum", "6", "--zero1", "--out", d]))
            compare(ref, d, "%d ranks ZeRO-1 vs 1" % n)
        print("f16 with loss scaling from 2^64 (overflowing steps skipped): 1 process, then 2 "
              "ranks with ZeRO-1")
        f16 = ["--precision", "f16", "--loss-scale", str(2.0 ** 64)]
        fr, fz = os.path.join(tmp, "f16_ref"), os.path.join(tmp, "f16_zero2")
        run([VKLM] + base + ["--grad-accum", "6", "--out", fr] + f16)
        run(mpi_cmd(2, base + ["--grad-accum", "6", "--zero1", "--out", fz] + f16))
        compare(fr, fz, "f16 2 ranks ZeRO-1 vs 1")
        a, b = (load_ckpt(os.path.join(x, "checkpoint.bin")) for x in (fr, fz))
        check(a["skipped"] == b["skipped"] and a["scale"] == b["scale"] and
              a["scale"] == 2.0 ** (64 - a["skipped"]) and a["skipped"] >= 1,
              "f16: both skipped %d overflowing step(s) and hold the loss scale 2^%d"
              % (b["skipped"], 64 - b["skipped"]))
        print("2 ranks with another global batch (grad-accum 4): must differ")
        d = os.path.join(tmp, "np2_ga4")
        run(mpi_cmd(2, base + ["--grad-accum", "4", "--out", d]))
        compare(ref, d, "grad-accum 4 vs 6", expect_equal=False)

        print("resume: 2 ranks stop after step 2, 3 ranks finish")
        d = os.path.join(tmp, "resume")
        run(mpi_cmd(2, base + ["--grad-accum", "6", "--out", d, "--stop-at", "2"]))
        check(load_ckpt(os.path.join(d, "checkpoint.bin"))["step"] == 2, "checkpoint at step 2")
        run(mpi_cmd(3, base + ["--out", d, "--resume"]))
        compare(ref, d, "2 ranks then 3 vs 1")
        print("resume: 3 ranks with ZeRO-1 stop after step 2, 2 ranks without it finish")
        d = os.path.join(tmp, "resume_zero")
        run(mpi_cmd(3, base + ["--grad-accum", "6", "--zero1", "--out", d, "--stop-at", "2"]))
        run(mpi_cmd(2, base + ["--out", d, "--resume"]))
        compare(ref, d, "3 ranks ZeRO-1 then 2 vs 1")

        print("vklm bench train on 2 ranks")
        p = run(mpi_cmd(2, ["bench", "train", "--steps", "2", "-b", "2", "-T", "32", "--peak-size",
                            "128", "--json"]))
        try:
            r = json.loads(p.stdout)["models"][0]
            per, total = r["tokens_per_s_per_rank"], r["tokens_per_s_total"]
            eff = r["scaling_efficiency"]
            print("    per rank %s, total %.0f, one rank alone %.0f tokens/s, efficiency %.2f"
                  % (["%.0f" % x for x in per], total, r["tokens_per_s_one_rank"], eff))
            check(len(per) == 2 and all(x > 0 for x in per) and
                  abs(total - 2 * min(per)) < 1e-6 * total and 0 < eff < 4,
                  "bench: tokens/s of each rank, in all, and the scaling efficiency")
            print("    gradients reduced in %d parts during the backward (%d while the device "
                  "still computed), %.1f ms reducing" % (r["overlap_parts"],
                                                         r["overlap_parts_early"],
                                                         r["overlap_reduce_ms"]))
            check(r["overlap_parts"] == 2 and r["dispatches_per_step"] > 0,
                  "bench: the reduction ran in the backward's 2 parts (one per layer)")
        except (ValueError, KeyError, IndexError) as e:
            check(False, "bench: JSON with the data-parallel figures (%s)" % e)

        print("bad input")
        p = run(mpi_cmd(2, base + ["--grad-accum", "3", "--out", os.path.join(tmp, "bad")]),
                expect=None)
        check("cannot be split over 2 ranks" in p.stderr, "grad-accum 3 on 2 ranks: a clear message")
        p = run(mpi_cmd(2, base + ["--device", "0,99", "--out", os.path.join(tmp, "baddev")]),
                expect=None, timeout=120)
        check("rank 1" in p.stderr and "ending the job" in p.stderr,
              "a rank without its device: the job ends naming rank 1")

        print("rank 0 fails cleanly mid-run (its checkpoint cannot be written at step 2)")
        d = os.path.join(tmp, "ckfail")
        os.makedirs(os.path.join(d, "checkpoint.bin.tmp"))  # a directory: the write fails
        p = run(mpi_cmd(3, base + ["--grad-accum", "6", "--out", d]), expect=None, timeout=120)
        print("    " + "\n    ".join(l for l in p.stderr.splitlines() if "vklm train: rank" in l
                                    and "of 3" not in l))
        check("vklm train: rank 0: " in p.stderr and "checkpoint.bin.tmp" in p.stderr,
              "rank 0 names its own failure")
        check(p.stderr.count("vklm train: rank") - p.stderr.count(" of 3 on ") == 1,
              "the other ranks stop without repeating it (one message)")

        print("a rank killed mid-run")
        failure_case(tmp, "killed", signal.SIGKILL, {}, ["rank 1"], 60)
        print("a rank that hangs (VKLM_DIST_TIMEOUT=15: room for a loaded machine's start-up)")
        failure_case(tmp, "hung", signal.SIGSTOP, {"VKLM_DIST_TIMEOUT": "15"},
                     ["no answer within 15 s", "rank(s) 1"], 90)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passes, failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
