"""Hostile files through the command line (argv[1]: the vklm binary), issue 14: checkpoints
crafted here with valid CRCs (docs/checkpoint.md; a gpt2-tiny model with zero weights) given to
`vklm export` (safetensors and GGUF) and `vklm generate`, a tokenizer.json whose Split pattern
holds \\C given to `vklm tokenizer encode`, `--regex '\\C+'` to `vklm tokenizer train`, and a
tiktoken file with a rankless line. Each must exit with status 1 and a message naming the
problem: no abort, no signal, no exit 0 with a wrong file. The unmodified checkpoint exports
(exit 0), which shows the crafting matches the format. Standard library only; a few seconds."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

VKLM = os.path.abspath(sys.argv[1])
failures = passes = 0


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what)
    passes += bool(ok)
    failures += not ok


def run(*args, timeout=60):
    try:
        return subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:  # killed: a hang counts as a failure, not a traceback
        return subprocess.CompletedProcess(args, -999, "", "timed out after %d s" % timeout)


# gpt2-tiny: V 256, ctx 64, L 2, NH 4, NKV 4, C 64, F 256, tied embeddings
V, MAXT, L, NH, NKV, C, F = 256, 64, 2, 4, 4, 64, 256


def table():
    """The model's own parameter table (engine/model/model_params.h) for gpt2-tiny."""
    rows = [("wte.weight", (V, C), 1, -1), ("wpe.weight", (MAXT, C), 1, -1)]
    qkv = (NH + 2 * NKV) * (C // NH)
    for l in range(L):
        rows += [(f"h.{l}.ln1.weight", (C,), 0, l), (f"h.{l}.ln1.bias", (C,), 0, l),
                 (f"h.{l}.attn.qkv.weight", (qkv, C), 1, l), (f"h.{l}.attn.qkv.bias", (qkv,), 0, l),
                 (f"h.{l}.attn.proj.weight", (C, C), 1, l), (f"h.{l}.attn.proj.bias", (C,), 0, l),
                 (f"h.{l}.ln2.weight", (C,), 0, l), (f"h.{l}.ln2.bias", (C,), 0, l),
                 (f"h.{l}.mlp.fc.weight", (F, C), 1, l), (f"h.{l}.mlp.fc.bias", (F,), 0, l),
                 (f"h.{l}.mlp.proj.weight", (C, F), 1, l), (f"h.{l}.mlp.proj.bias", (C,), 0, l)]
    rows += [("lnf.weight", (C,), 0, -1), ("lnf.bias", (C,), 0, -1)]
    out, off = [], 0
    for name, shape, decay, layer in rows:
        n = 1
        for d in shape:
            n *= d
        out.append(dict(name=name, shape=list(shape), offset=off, count=n, decay=decay, layer=layer))
        off += n
    return out, off


def checkpoint(tab, nparams, arch=0, n_layer=L, n_head=NH, vocab=V):
    """A version-2 checkpoint image with both CRCs computed, weights zero."""
    t = b""
    for e in tab:
        shape = e["shape"] + [0] * (4 - len(e["shape"]))
        t += struct.pack("<64sI4IQQIi4x", e["name"].encode(), len(e["shape"]), *shape, e["offset"],
                         e["count"], e["decay"], e["layer"])
    payload = t + bytes(3 * 4 * nparams)
    h = bytearray(256)
    h[0:8] = b"VKLMCKPT"
    struct.pack_into("<II", h, 8, 2, 256)
    struct.pack_into("<12I", h, 16, arch, 0, vocab, MAXT, n_layer, n_head, NKV if n_head else 0,
                     C, F, 0, 0, 1)
    struct.pack_into("<ff", h, 52, 1e-5, 10000.0)
    struct.pack_into("<IIIi", h, 64, 2, 16, 1, 255)
    struct.pack_into("<f", h, 152, 1e-3)
    struct.pack_into("<IIQQQI", h, 184, len(tab), 1, nparams, len(t), len(payload),
                     zlib.crc32(payload))
    struct.pack_into("<I", h, 220, zlib.crc32(bytes(h)))
    return bytes(h) + payload


def expect_refused(r, what, *needles):
    msg = (r.stderr + r.stdout).strip().replace("\n", " | ")
    ok = r.returncode == 1 and all(n in msg for n in needles)
    check(ok, "%s: exit %d (want 1, no signal), message has %s: %s"
          % (what, r.returncode, " + ".join(repr(n) for n in needles), msg[-300:]))


def main():
    with tempfile.TemporaryDirectory() as d:
        tab, n = table()
        good = os.path.join(d, "good.ckpt")
        open(good, "wb").write(checkpoint(tab, n))
        out = os.path.join(d, "m.safetensors")
        r = run("export", "-m", good, "--format", "safetensors", "-o", out, "--no-config")
        check(r.returncode == 0 and os.path.getsize(out) > 4 * n,
              "the crafted valid checkpoint exports to safetensors: " + r.stderr.strip()[-200:])
        r = run("export", "-m", good, "--format", "gguf", "-o", os.path.join(d, "m.gguf"))
        check(r.returncode == 0, "... and to GGUF: " + r.stderr.strip()[-200:])

        bad = os.path.join(d, "bad.ckpt")
        shape = [dict(e) for e in tab]
        shape[0]["shape"] = [512, C]  # wte (512, 64) with 16384 elements
        cases = [
            ("architecture llama over a gpt2 table", checkpoint(tab, n, arch=1), ("llama", "tensors")),
            ("n_head 0", checkpoint(tab, n, n_head=0), ("a size is zero",)),
            ("n_layer 2^31-1", checkpoint(tab, n, n_layer=0x7fffffff), ("n_layer 2147483647",)),
            ("vocab 300 over a 256-row wte", checkpoint(tab, n, vocab=300), ("V 300",)),
            ("wte shape (512,64) over 16384 elements", checkpoint(shape, n), ("wte.weight", "count")),
        ]
        for what, img, needles in cases:
            open(bad, "wb").write(img)
            for fmt in ("safetensors", "gguf"):
                o = os.path.join(d, "bad." + fmt)
                r = run("export", "-m", bad, "--format", fmt, "-o", o, timeout=20)
                expect_refused(r, "export (%s) of a checkpoint with %s" % (fmt, what), "corrupt",
                               *needles)
                check(not os.path.exists(o), "... and no %s file written" % fmt)
        open(bad, "wb").write(checkpoint(tab, n, arch=1))
        r = run("generate", "-m", bad, "-p", "hi", "-n", "1")
        expect_refused(r, "generate from a llama header over a gpt2 table", "corrupt", "tensors")

        # tokenizers
        enc = {}
        extra = 0
        for b in range(256):
            same = 33 <= b <= 126 or 161 <= b <= 172 or b >= 174
            enc[chr(b if same else 256 + extra)] = b
            extra += not same
        for pat in ("\\C", "a|\\C+"):
            tj = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                      {"type": "Split", "pattern": {"Regex": pat}, "behavior": "Isolated"},
                      {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
                  "decoder": {"type": "ByteLevel"},
                  "model": {"type": "BPE", "vocab": enc, "merges": []}}
            tf = os.path.join(d, "tok.json")
            json.dump(tj, open(tf, "w"))
            txt = os.path.join(d, "bad.txt")
            open(txt, "wb").write(b"ab\xff\xfe\xc3 \xe2\x82 caf\xc3\xa9 z\x80\n" * 50)
            r = run("tokenizer", "encode", "-t", tf, txt)
            expect_refused(r, "tokenizer encode with a Split pattern %r" % pat, "\\C")
        corpus = os.path.join(d, "corpus.txt")
        open(corpus, "w").write("the cat sat on the mat\n" * 20)
        r = run("tokenizer", "train", "-o", os.path.join(d, "t.json"), "--vocab-size", "300",
                "--regex", "\\C+", corpus)
        expect_refused(r, "tokenizer train --regex '\\C+'", "\\C")
        tk = os.path.join(d, "r.tiktoken")
        open(tk, "w").write("YQ== 0\nYg== \nYWI= 2\n")
        r = run("tokenizer", "encode", "--tiktoken", tk, "--pattern", "llama3", "-p", "ab")
        expect_refused(r, "a tiktoken line with no rank", "r.tiktoken:2:")

        # validation asked for (VKLM_VALIDATE) with the layer missing fails the command instead of
        # running without it; the same run with the layer present succeeds (the control)
        lg = os.path.join(d, "logits.bin")
        args = ("eval-logits", "-m", good, "--tokens", "1,2,3", "--out", lg)
        env = dict(os.environ, VKLM_VALIDATE="1")
        r = subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace",
                           timeout=120, env=env)
        check(r.returncode == 0 and "validation message" not in r.stderr,
              "eval-logits with the validation layer: exit %d (want 0) %s"
              % (r.returncode, r.stderr.strip()[-200:]))
        env["VK_LAYER_PATH"] = os.path.join(d, "no-layers-here")
        env.pop("VK_ADD_LAYER_PATH", None)
        r = subprocess.run([VKLM, *args], capture_output=True, text=True, errors="replace",
                           timeout=120, env=env)
        expect_refused(r, "VKLM_VALIDATE=1 with the validation layer missing",
                       "VK_LAYER_KHRONOS_validation", "not installed")

    print("%s: %d passed, %d failed" % ("FAILED" if failures else "PASSED", passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
