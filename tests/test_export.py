"""Test of `vklm export` (argv[1]: the vklm binary): trains a tiny GPT-2 and a tiny Llama for two
steps, exports each to safetensors, loads the file with the `safetensors` package and maps it back
to vklm's names with scripts/reference_model.py's from_hf (the tests' one HF name mapping: GPT-2's
Conv1D weights transposed, Llama's q/k/v and gate/up fused; it refuses a missing or an unplaced
tensor, so the export's name set is checked too), which must give the checkpoint's parameters
(parsed here from its documented format, docs/checkpoint.md) bit for bit. Also checks config.json
(read back by reference_model.config_from_hf), and that the reference forward
(reference_model.forward, float64) of the export's weights reproduces, from the exported files
alone, the validation loss vklm logged for the same parameters; and that Hugging Face's
GPT2LMHeadModel / LlamaForCausalLM load the export with every weight placed and their forward gives
that loss too (transformers is a test requirement: its absence fails the test)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_model as ref  # noqa: E402  (the tests' one PyTorch forward and HF name mapping)

VKLM = os.path.abspath(sys.argv[1])
failures = passes = 0


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what)
    passes += bool(ok)
    failures += not ok


def read_ckpt(path):
    """The parameters of a vklm checkpoint by vklm name (docs/checkpoint.md)."""
    data = open(path, "rb").read()
    assert data[:8] == b"VKLMCKPT"
    ntensors, = struct.unpack_from("<I", data, 184)
    nparams, = struct.unpack_from("<Q", data, 192)
    cfg = dict(zip(("arch", "objective", "V", "maxT", "L", "NH", "NKV", "C", "F"),
                   struct.unpack_from("<9I", data, 16)))
    flat = np.frombuffer(data, dtype="<f4", count=nparams, offset=256 + 112 * ntensors)
    out = {}
    for i in range(ntensors):
        e = 256 + 112 * i
        name = data[e:e + 64].split(b"\0")[0].decode()
        ndim, = struct.unpack_from("<I", data, e + 64)
        shape = struct.unpack_from("<4I", data, e + 68)[:ndim]
        off, cnt = struct.unpack_from("<QQ", data, e + 84)
        out[name] = flat[off:off + cnt].reshape(shape)
    return cfg, out


def hf_val_loss(st_path, conf, ids, B, T, nb):
    """The mean causal loss over the first nb validation windows (B x T + 1 tokens each, the
    sequential validation batches of vklm train), by the reference forward in float64 on the
    export's weights mapped back to vklm's names."""
    c = ref.config_from_hf(conf)
    W = ref.torch_params(ref.from_hf(load_file(st_path), c), torch.float64)
    losses = []
    with torch.no_grad():
        for b in range(nb):
            win = torch.tensor(ids[b * B * T: b * B * T + B * T + 1])
            inp, tgt = win[:-1].view(B, T), win[1:].view(B, T)
            losses.append(ref.loss_of(ref.forward(W, c, inp), tgt).item())
    return sum(losses) / len(losses)


def hf_model_loss(d, arch, ids, B, T, nb):
    """Hugging Face's own model class loads the export (strict: every weight placed, none left
    over) and its forward gives the same mean validation loss."""
    import transformers  # scripts/requirements-test.txt: the version Debian 12's torch runs
    cls = transformers.GPT2LMHeadModel if arch == 0 else transformers.LlamaForCausalLM
    model, info = cls.from_pretrained(d, output_loading_info=True, torch_dtype=torch.float64)
    placed = not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    check(placed, "transformers loads the export into %s with every weight placed (%s)"
          % (cls.__name__, {k: v for k, v in info.items() if v} or "none missing or extra"))
    losses = []
    with torch.no_grad():
        for b in range(nb):
            win = torch.tensor(ids[b * B * T: b * B * T + B * T + 1])
            inp, tgt = win[:-1].view(B, T), win[1:].view(B, T)
            logits = model(inp).logits
            losses.append(torch.nn.functional.cross_entropy(logits.reshape(B * T, -1),
                                                            tgt.reshape(-1)).item())
    return cls.__name__, sum(losses) / len(losses)


def main():
    with tempfile.TemporaryDirectory(prefix="vklm_export_") as d:
        text = os.path.join(d, "c.txt")
        with open(text, "w") as f:
            for i in range(400):
                f.write("The quick brown fox %d jumps over the lazy dog number %d.\n" % (i, i * 7))
        tok = os.path.join(d, "tok.json")
        subprocess.run([VKLM, "tokenizer", "train", "-o", tok, "--vocab-size", "300", text],
                       check=True, capture_output=True)
        for preset, arch in (("gpt2-tiny", 0), ("llama-tiny", 1)):
            out = os.path.join(d, preset)
            r = subprocess.run([VKLM, "train", "--text", text, "-t", tok, "--model", preset,
                                "--steps", "2", "-b", "2", "-T", "16", "--out", out, "--quiet"],
                               capture_output=True, text=True)
            check(r.returncode == 0, "%s: trained 2 steps %s" % (preset, r.stderr[-500:]))
            ck = os.path.join(out, "checkpoint.bin")
            exp_dir = os.path.join(d, preset + "-hf")
            os.makedirs(exp_dir)
            st = os.path.join(exp_dir, "model.safetensors")
            r = subprocess.run([VKLM, "export", "-m", ck, "--format", "safetensors", "-o", st],
                               capture_output=True, text=True)
            check(r.returncode == 0, "%s: export %s" % (preset, r.stderr.strip()))
            got = load_file(st)
            cfg, params = read_ckpt(ck)
            conf = json.load(open(os.path.join(exp_dir, "config.json")))
            c = ref.config_from_hf(conf)
            try:
                back, why = ref.from_hf(got, c), ""
            except KeyError as e:
                back, why = {}, str(e)
            check(sorted(back) == sorted(params), "%s: %d tensors with HF names map back onto the "
                  "checkpoint's %d %s" % (preset, len(got), len(params), why))
            bad = [k for k in params if k not in back or back[k].shape != params[k].shape or
                   not np.array_equal(back[k], params[k])]
            check(not bad, "%s: shapes and values match the checkpoint (%s)" % (preset, bad[:3] or "all"))
            check(all(v.dtype == np.float32 for v in got.values()), "%s: dtype F32" % preset)
            hdr_len = struct.unpack("<Q", open(st, "rb").read(8))[0]
            check(hdr_len % 8 == 0, "%s: header length %d is a multiple of 8" % (preset, hdr_len))
            if arch == 0:
                ok = conf["model_type"] == "gpt2" and conf["n_layer"] == cfg["L"] and \
                    conf["n_embd"] == cfg["C"] and conf["vocab_size"] == cfg["V"]
            else:
                ok = conf["model_type"] == "llama" and conf["num_hidden_layers"] == cfg["L"] and \
                    conf["num_key_value_heads"] == cfg["NKV"] and conf["intermediate_size"] == cfg["F"]
            check(ok, "%s: config.json (%s)" % (preset, conf["architectures"][0]))
            # the export, run by the reference forward, reproduces vklm's final validation loss
            enc = subprocess.run([VKLM, "tokenizer", "encode", "-t", tok, text],
                                 capture_output=True, text=True, check=True).stdout.split()
            ids = [int(x) for x in enc]
            nval = int(len(ids) * 0.1)
            val_ids = ids[len(ids) - nval:]
            nb = min(8, (len(val_ids) - 1) // (2 * 16))
            rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
            want_loss = [r["val_loss"] for r in rows if "val_loss" in r][-1]
            got_loss = hf_val_loss(st, conf, val_ids, 2, 16, nb)
            check(abs(got_loss - want_loss) < 1e-4 * max(1.0, abs(want_loss)),
                  "%s: the reference forward of the export gives vklm's validation loss "
                  "(%.6f vs %.6f)" % (preset, got_loss, want_loss))
            name, hf_loss = hf_model_loss(exp_dir, arch, val_ids, 2, 16, nb)
            check(abs(hf_loss - want_loss) < 1e-4 * max(1.0, abs(want_loss)),
                  "%s: %s's forward of the export gives vklm's validation loss (%.6f vs %.6f)"
                  % (preset, name, hf_loss, want_loss))
    print("%d passed, %d failed" % (passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
