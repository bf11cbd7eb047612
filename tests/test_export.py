"""Test of `vklm export` (argv[1]: the vklm binary): trains a tiny GPT-2 and a tiny Llama for two
steps, exports each to safetensors, loads the file with the `safetensors` package and checks every
Hugging Face tensor name and shape, and the values against the checkpoint (parsed here from its
documented format, docs/checkpoint.md): GPT-2's Conv1D weights transposed, Llama's fused qkv and
gate/up split. Also checks config.json, and (with torch) that an independent forward pass written
against HF's names and semantics (Conv1D, rotate_half RoPE, GQA, SwiGLU) reproduces, from the
exported file alone, the validation loss vklm logged for the same parameters. When torch and transformers are importable, the export is
loaded into GPT2LMHeadModel / LlamaForCausalLM (strict) as well."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

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


def expected(cfg, p):
    L = cfg["L"]
    e = {}
    if cfg["arch"] == 0:
        e["wte.weight"] = p["wte.weight"]
        e["wpe.weight"] = p["wpe.weight"]
        for i in range(L):
            h = "h.%d." % i
            e[h + "ln_1.weight"] = p[h + "ln1.weight"]
            e[h + "ln_1.bias"] = p[h + "ln1.bias"]
            e[h + "attn.c_attn.weight"] = p[h + "attn.qkv.weight"].T
            e[h + "attn.c_attn.bias"] = p[h + "attn.qkv.bias"]
            e[h + "attn.c_proj.weight"] = p[h + "attn.proj.weight"].T
            e[h + "attn.c_proj.bias"] = p[h + "attn.proj.bias"]
            e[h + "ln_2.weight"] = p[h + "ln2.weight"]
            e[h + "ln_2.bias"] = p[h + "ln2.bias"]
            e[h + "mlp.c_fc.weight"] = p[h + "mlp.fc.weight"].T
            e[h + "mlp.c_fc.bias"] = p[h + "mlp.fc.bias"]
            e[h + "mlp.c_proj.weight"] = p[h + "mlp.proj.weight"].T
            e[h + "mlp.c_proj.bias"] = p[h + "mlp.proj.bias"]
        e["ln_f.weight"] = p["lnf.weight"]
        e["ln_f.bias"] = p["lnf.bias"]
    else:
        HS = cfg["C"] // cfg["NH"]
        q, kv, F = cfg["NH"] * HS, cfg["NKV"] * HS, cfg["F"]
        e["model.embed_tokens.weight"] = p["wte.weight"]
        for i in range(L):
            h, m = "h.%d." % i, "model.layers.%d." % i
            qkv = p[h + "attn.qkv.weight"]
            e[m + "input_layernorm.weight"] = p[h + "ln1.weight"]
            e[m + "self_attn.q_proj.weight"] = qkv[:q]
            e[m + "self_attn.k_proj.weight"] = qkv[q:q + kv]
            e[m + "self_attn.v_proj.weight"] = qkv[q + kv:]
            e[m + "self_attn.o_proj.weight"] = p[h + "attn.proj.weight"]
            e[m + "post_attention_layernorm.weight"] = p[h + "ln2.weight"]
            e[m + "mlp.gate_proj.weight"] = p[h + "mlp.fc.weight"][:F]
            e[m + "mlp.up_proj.weight"] = p[h + "mlp.fc.weight"][F:]
            e[m + "mlp.down_proj.weight"] = p[h + "mlp.proj.weight"]
        e["model.norm.weight"] = p["lnf.weight"]
        e["lm_head.weight"] = p.get("lm_head.weight", p["wte.weight"])
    return e


def hf_val_loss(st_path, conf, ids, B, T, nb):
    """The mean causal loss over the first nb validation windows, computed by an independent
    forward pass written against Hugging Face's tensor names and semantics (Conv1D (in, out)
    weights for GPT-2; q/k/v/o, rotate_half RoPE, GQA, gate/up/down for Llama)."""
    import torch
    import torch.nn.functional as F
    W = {k: torch.from_numpy(v.copy()).double() for k, v in load_file(st_path).items()}
    gpt2 = conf["model_type"] == "gpt2"
    if gpt2:
        C, NH, L, eps = conf["n_embd"], conf["n_head"], conf["n_layer"], conf["layer_norm_epsilon"]
        NKV = NH
    else:
        C, NH, L, eps = conf["hidden_size"], conf["num_attention_heads"], conf["num_hidden_layers"], conf["rms_norm_eps"]
        NKV = conf["num_key_value_heads"]
    HS = C // NH
    mask = torch.ones(T, T, dtype=torch.bool).tril()

    def attend(q, k, v):  # (B,T,H,HS) each, k/v with NKV heads
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        a = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
        a = a.masked_fill(~mask, float("-inf")).softmax(-1)
        return (a @ v).transpose(1, 2).reshape(q.shape[0], T, C)

    def rope(x):  # (B,T,H,HS), HF rotate_half
        inv = 1.0 / (conf["rope_theta"] ** (torch.arange(0, HS, 2).double() / HS))
        f = torch.outer(torch.arange(T).double(), inv)
        emb = torch.cat((f, f), -1)[None, :, None, :]
        x1, x2 = x[..., :HS // 2], x[..., HS // 2:]
        return x * emb.cos() + torch.cat((-x2, x1), -1) * emb.sin()

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    losses = []
    for b in range(nb):
        win = torch.tensor(ids[b * B * T: b * B * T + B * T + 1])
        inp, tgt = win[:-1].view(B, T), win[1:].view(B, T)
        if gpt2:
            x = W["wte.weight"][inp] + W["wpe.weight"][:T]
            for i in range(L):
                h = "h.%d." % i
                y = F.layer_norm(x, (C,), W[h + "ln_1.weight"], W[h + "ln_1.bias"], eps)
                qkv = y @ W[h + "attn.c_attn.weight"] + W[h + "attn.c_attn.bias"]
                q, k, v = (t.reshape(B, T, NH, HS) for t in qkv.split(C, -1))
                x = x + attend(q, k, v) @ W[h + "attn.c_proj.weight"] + W[h + "attn.c_proj.bias"]
                y = F.layer_norm(x, (C,), W[h + "ln_2.weight"], W[h + "ln_2.bias"], eps)
                f = F.gelu(y @ W[h + "mlp.c_fc.weight"] + W[h + "mlp.c_fc.bias"], approximate="tanh")
                x = x + f @ W[h + "mlp.c_proj.weight"] + W[h + "mlp.c_proj.bias"]
            x = F.layer_norm(x, (C,), W["ln_f.weight"], W["ln_f.bias"], eps)
            logits = x @ W["wte.weight"].T
        else:
            x = W["model.embed_tokens.weight"][inp]
            for i in range(L):
                m = "model.layers.%d." % i
                y = rms(x, W[m + "input_layernorm.weight"])
                q = rope((y @ W[m + "self_attn.q_proj.weight"].T).view(B, T, NH, HS))
                k = rope((y @ W[m + "self_attn.k_proj.weight"].T).view(B, T, NKV, HS))
                v = (y @ W[m + "self_attn.v_proj.weight"].T).view(B, T, NKV, HS)
                x = x + attend(q, k, v) @ W[m + "self_attn.o_proj.weight"].T
                y = rms(x, W[m + "post_attention_layernorm.weight"])
                g = F.silu(y @ W[m + "mlp.gate_proj.weight"].T) * (y @ W[m + "mlp.up_proj.weight"].T)
                x = x + g @ W[m + "mlp.down_proj.weight"].T
            x = rms(x, W["model.norm.weight"])
            logits = x @ W["lm_head.weight"].T
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1)).item())
    return sum(losses) / len(losses)


def try_transformers(d, arch):
    try:
        import torch  # noqa: F401
        import transformers
    except Exception:
        print("  (transformers not importable: HF model load skipped)")
        return
    cls = transformers.GPT2LMHeadModel if arch == 0 else transformers.LlamaForCausalLM
    model = cls.from_pretrained(d)
    check(model is not None, "transformers loads the export (%s)" % cls.__name__)


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
            want = expected(cfg, params)
            check(sorted(got) == sorted(want), "%s: %d tensors with HF names (extra %s, missing %s)" % (
                preset, len(got), sorted(set(got) - set(want))[:3], sorted(set(want) - set(got))[:3]))
            bad = [k for k in want if k in got and (got[k].shape != want[k].shape or
                                                    not np.array_equal(got[k], want[k]))]
            check(not bad, "%s: shapes and values match the checkpoint (%s)" % (preset, bad[:3] or "all"))
            check(all(v.dtype == np.float32 for v in got.values()), "%s: dtype F32" % preset)
            hdr_len = struct.unpack("<Q", open(st, "rb").read(8))[0]
            check(hdr_len % 8 == 0, "%s: header length %d is a multiple of 8" % (preset, hdr_len))
            conf = json.load(open(os.path.join(exp_dir, "config.json")))
            if arch == 0:
                ok = conf["model_type"] == "gpt2" and conf["n_layer"] == cfg["L"] and \
                    conf["n_embd"] == cfg["C"] and conf["vocab_size"] == cfg["V"]
            else:
                ok = conf["model_type"] == "llama" and conf["num_hidden_layers"] == cfg["L"] and \
                    conf["num_key_value_heads"] == cfg["NKV"] and conf["intermediate_size"] == cfg["F"]
            check(ok, "%s: config.json (%s)" % (preset, conf["architectures"][0]))
            try:
                import torch  # noqa: F401
                have_torch = True
            except Exception:
                have_torch = False
            if have_torch:
                # the export, run with HF semantics, reproduces vklm's final validation loss
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
                      "%s: HF-semantics forward of the export gives vklm's validation loss "
                      "(%.6f vs %.6f)" % (preset, got_loss, want_loss))
            try_transformers(exp_dir, arch)
    print("%d passed, %d failed" % (passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
