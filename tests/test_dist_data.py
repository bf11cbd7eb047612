"""Sharded data preparation (argv[1]: the vklm binary; docs/data.md, "Sharded runs").

A corpus of English paragraphs (the licence texts of /usr/share/common-licenses, or Python's own
sources) with planted exact and near duplicates placed so that each pair falls in different
shards, prepared with every filter on:
  - `prepare --shard 0/2`, `--shard 1/2` and `vklm data merge` give the output of one unsharded
    run byte for byte (the duplicates across the shards are found: none of the planted copies
    survives), as do 2 and 3 MPI ranks (`mpirun vklm data prepare`, rank 0 merging);
  - `mpirun -np 2 vklm data tokenize` writes every document once, in the split one process gives
    it (the same train and validation token counts);
  - bad input: a shard out of range, a merge of files that are not sharded outputs, overlapping
    shards.
"""
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

VKLM = os.path.abspath(sys.argv[1])
MPIRUN = shutil.which("mpirun")
failures = 0
passes = 0
ENV = dict(os.environ)
ENV["LP_NUM_THREADS"] = "1"
if os.getuid() == 0:
    ENV["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    ENV["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if ok:
        passes += 1
    else:
        failures += 1


def run(cmd, expect=0):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    ok = p.returncode == expect if expect is not None else p.returncode not in (0, None)
    if not ok:
        print("$ " + " ".join(cmd))
        print(p.stdout[-2000:])
        print(p.stderr[-2000:])
    short = " ".join(c for c in cmd[:8] if not c.startswith("/tmp"))
    check(ok, "%s -> exit %d (want %s) in %.1f s" % (short.replace(VKLM, "vklm"), p.returncode,
                                                     expect if expect is not None else "!= 0",
                                                     time.time() - t0))
    return p


def mpi(n, args):
    return [MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", str(n), VKLM] + args


def paragraphs():
    out = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                out += [" ".join(p.split()) for p in f.read().split("\n\n") if len(p.split()) > 20]
    if len(out) < 200:
        for path in sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))[:60]:
            with open(path, encoding="utf-8", errors="replace") as f:
                out += [" ".join(p.split()) for p in f.read().split("\n\n") if len(p.split()) > 20]
    return out


def corpus(path):
    """Documents of several paragraphs; planted copies land in other shards for N = 2 and 3."""
    paras = paragraphs()
    docs, i = [], 0
    while i + 3 <= len(paras) and len(docs) < 240:
        docs.append("\n\n".join(paras[i:i + 3]))
        i += 3
    planted = []
    for src in (4, 17, 30, 57):  # exact copies, 1 and 2 positions later mod 6
        docs.insert(src + 7, docs[src])
        planted.append(("exact", src))
    for src in (10, 23, 44, 71):  # near copies: a few words changed near the end
        words = docs[src].split(" ")
        for k in (len(words) - 3, len(words) - 9, len(words) - 15):
            words[k] = "zebra%d" % k
        docs.insert(src + 5, " ".join(words))
        planted.append(("near", src))
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    return len(docs)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def shard_tokens(d, split):
    total = 0
    for p in glob.glob(os.path.join(d, split + "_*.bin")):
        with open(p, "rb") as f:
            total += struct.unpack_from("<Q", f.read(64), 16)[0]
    return total


def main():
    if not MPIRUN:
        print("mpirun not found (scripts/install-deps.sh installs openmpi-bin)")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="vklm_dist_data_")
    try:
        src = os.path.join(tmp, "in.jsonl")
        n = corpus(src)
        print("corpus: %d documents with 4 exact and 4 near copies planted" % n)
        single = os.path.join(tmp, "single.jsonl")
        p = run([VKLM, "data", "prepare", "-o", single, "--threads", "1", src])
        stats = json.load(open(single + ".stats.json"))
        kept = read(single).count(b"\n")
        print("    one process: %d of %d kept" % (kept, n))
        check(kept > 50, "the filters keep part of the corpus (%d)" % kept)

        print("two shards by hand, then vklm data merge")
        parts = [os.path.join(tmp, "p%d.jsonl" % i) for i in range(2)]
        for i in range(2):
            run([VKLM, "data", "prepare", "-o", parts[i], "--threads", "1", "--shard", "%d/2" % i,
                 "--quiet", src])
        merged = os.path.join(tmp, "merged.jsonl")
        p = run([VKLM, "data", "merge", "-o", merged, parts[1], parts[0]])
        print("    " + p.stderr.strip())
        check(read(merged) == read(single), "merge of 2 shards == one process, byte for byte")
        check("exact" in p.stderr and " 0 exact" not in p.stderr and " 0 near" not in p.stderr,
              "duplicates across the shards were found")
        texts = [json.loads(l)["text"] for l in read(merged).decode().splitlines()]
        check(len(texts) == len(set(texts)) and not any("zebra" in t for t in texts),
              "no planted copy survives")

        for nr in (2, 3):
            print("%d MPI ranks: vklm data prepare" % nr)
            out = os.path.join(tmp, "mpi%d.jsonl" % nr)
            p = run(mpi(nr, ["data", "prepare", "-o", out, "--threads", "1", "--quiet", src]))
            check(os.path.exists(out) and read(out) == read(single),
                  "%d ranks == one process, byte for byte" % nr)
            check(not glob.glob(out + ".shard-*of*[0-9]"), "the shard outputs were removed")

        print("tokenize: one process and 2 MPI ranks")
        tok = os.path.join(tmp, "tok.json")
        run([VKLM, "tokenizer", "train", "-o", tok, "--vocab-size", "400", "--special",
             "<|endoftext|>", single])
        one, two = os.path.join(tmp, "tok1"), os.path.join(tmp, "tok2")
        run([VKLM, "data", "tokenize", "-t", tok, "-i", single, "-o", one, "--val-fraction",
             "0.2", "--quiet"])
        run(mpi(2, ["data", "tokenize", "-t", tok, "-i", single, "-o", two, "--val-fraction",
                    "0.2"]))
        a = (shard_tokens(one, "train"), shard_tokens(one, "val"))
        b = (shard_tokens(two, "train"), shard_tokens(two, "val"))
        print("    train/val tokens: one process %s, 2 ranks %s; files %s" %
              (a, b, sorted(os.path.basename(x) for x in glob.glob(two + "/*.bin"))))
        check(a == b and a[0] > 0 and a[1] > 0,
              "2 ranks write the same train and validation tokens as one process")
        check(len(glob.glob(os.path.join(two, "train_000of002_*.bin"))) >= 1 and
              len(glob.glob(os.path.join(two, "train_001of002_*.bin"))) >= 1,
              "each rank writes its own shard files")

        print("bad input")
        p = run([VKLM, "data", "prepare", "-o", os.path.join(tmp, "x.jsonl"), "--shard", "2/2",
                 src], expect=2)
        check("0 <= i < N" in p.stderr, "--shard 2/2 refused: " + p.stderr.strip()[:80])
        p = run([VKLM, "data", "merge", "-o", os.path.join(tmp, "y.jsonl"), single], expect=1)
        check("not the output of a sharded prepare" in p.stderr,
              "merging an unsharded output refused")
        p = run([VKLM, "data", "merge", "-o", os.path.join(tmp, "z.jsonl"), parts[0], parts[0]],
                expect=1)
        check("in two shards" in p.stderr, "overlapping shards refused")
        check(not os.path.exists(os.path.join(tmp, "z.jsonl")), "no output after a failed merge")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passes, failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
