#!/usr/bin/env python3
"""Tokenizer benchmark, vklm against Hugging Face tokenizers, single-threaded, on one corpus.

Runs `vklm tokenizer bench --json --keep DIR` (which generates or reads the corpus, trains, and
encodes it line by line), then does the same with tokenizers: trains a BpeTrainer with the same
settings (pre-tokenizer taken from vklm's tokenizer.json, byte alphabet, <|endoftext|>), and
encodes the corpus lines with vklm's tokenizer.json loaded in tokenizers. Prints both, the
ratios, and whether the trained merges are identical.

usage: bench_tokenizer_hf.py VKLM_BINARY [--corpus FILE | --mb N] [--vocab-size N]
                             [--pattern gpt2|cl100k|llama3|o200k] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers loads: one thread, like vklm's number
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vklm")
    ap.add_argument("--corpus")
    ap.add_argument("--mb", type=int, default=16)
    ap.add_argument("--vocab-size", type=int, default=16384)
    ap.add_argument("--pattern", default="llama3")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        cmd = [a.vklm, "tokenizer", "bench", "--json", "--keep", d, "--vocab-size", str(a.vocab_size),
               "--pattern", a.pattern]
        cmd += ["--corpus", a.corpus] if a.corpus else ["--mb", str(a.mb)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        v = json.loads(out.strip().splitlines()[-1])
        with open(os.path.join(d, "corpus.txt"), "rb") as f:
            raw = f.read()
        # tokenizers takes str: the corpus is decoded as UTF-8 (a generated corpus is valid)
        # lines end at "\n" only, as vklm splits them (str.splitlines would also cut at \r, \x0c...)
        text = raw.decode("utf-8", errors="replace")
        lines = [ln + "\n" for ln in text.split("\n")]
        lines[-1] = lines[-1][:-1]
        if not lines[-1]:
            lines.pop()
        vk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))

        hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        hf.model = models.BPE()
        tr = trainers.BpeTrainer(vocab_size=a.vocab_size, special_tokens=["<|endoftext|>"],
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                 show_progress=False, min_frequency=0)
        t0, c0 = time.perf_counter(), time.process_time()
        hf.train_from_iterator(lines, trainer=tr)
        hf_train, hf_train_cpu = time.perf_counter() - t0, time.process_time() - c0

        # tokenizers' fastest batch call (no offsets) where it has one, else encode_batch
        fast = getattr(vk, "encode_batch_fast", None) or vk.encode_batch
        t0, c0 = time.perf_counter(), time.process_time()
        encs = fast(lines, add_special_tokens=False)
        hf_enc, hf_enc_cpu = time.perf_counter() - t0, time.process_time() - c0
        ntok = sum(len(e.ids) for e in encs)

        vm = json.loads(vk.to_str())["model"]["merges"]
        hm = json.loads(hf.to_str())["model"]["merges"]
        same = sum(1 for x, y in zip(vm, hm) if x == y)
        first_diff = next((i for i, (x, y) in enumerate(zip(vm, hm)) if x != y), None)

    mb = len(raw) / 1e6
    res = {
        "corpus_mb": round(mb, 3), "vocab_size": a.vocab_size, "pattern": a.pattern,
        "vklm_train_s": v["train_s"], "hf_train_s": round(hf_train, 3),
        "vklm_train_cpu_s": v["train_cpu_s"], "hf_train_cpu_s": round(hf_train_cpu, 3),
        "train_speedup": round(hf_train / v["train_s"], 2) if v["train_s"] > 0 else None,
        "train_speedup_cpu": round(hf_train_cpu / v["train_cpu_s"], 2) if v["train_cpu_s"] > 0 else None,
        "vklm_encode_mb_s": v["encode_mb_s"], "hf_encode_mb_s": round(mb / hf_enc, 2),
        "vklm_encode_mb_s_cpu": v["encode_mb_s_cpu"], "hf_encode_mb_s_cpu": round(mb / hf_enc_cpu, 2),
        "encode_speedup": round(v["encode_mb_s"] / (mb / hf_enc), 2),
        "encode_speedup_cpu": round(v["encode_mb_s_cpu"] / (mb / hf_enc_cpu), 2),
        "hf_encode_call": fast.__name__, "tokens_vklm": v["tokens"], "tokens_hf": ntok,
        "merges_vklm": len(vm), "merges_hf": len(hm), "merges_identical_prefix": same,
        "merges_identical": vm == hm, "first_merge_difference": first_diff,
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(f"corpus {res['corpus_mb']} MB, vocabulary {a.vocab_size}, pattern {a.pattern}, 1 thread")
        print(f"train   vklm {res['vklm_train_s']:.2f} s   tokenizers {res['hf_train_s']:.2f} s   "
              f"(ratio {res['train_speedup']}x; CPU time {res['vklm_train_cpu_s']:.2f} vs "
              f"{res['hf_train_cpu_s']:.2f} s, ratio {res['train_speedup_cpu']}x)")
        print(f"encode  vklm {res['vklm_encode_mb_s']:.2f} MB/s   tokenizers {res['hf_encode_mb_s']:.2f} MB/s"
              f"   (ratio {res['encode_speedup']}x; by CPU time {res['vklm_encode_mb_s_cpu']:.2f} vs "
              f"{res['hf_encode_mb_s_cpu']:.2f} MB/s, ratio {res['encode_speedup_cpu']}x)")
        print(f"tokens  vklm {res['tokens_vklm']}   tokenizers (same tokenizer.json, {fast.__name__}) {res['tokens_hf']}")
        print(f"merges  identical: {res['merges_identical']} ({same} of {len(vm)} vklm / {len(hm)} hf"
              f"{'' if first_diff is None else f', first difference at #{first_diff}'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
