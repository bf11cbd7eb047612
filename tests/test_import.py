"""Test of model import and export (argv[1]: the vklm binary).

Tiny random GPT-2 and Llama models are written by tools vklm did not write:
  - Hugging Face layout: config.json + model.safetensors (PyPI safetensors, F32 and F16),
    GPT2LMHeadModel names (with and without the "transformer." prefix, Conv1D weights (in, out))
    and LlamaForCausalLM names (untied, and tied without lm_head.weight);
  - GGUF (PyPI gguf's GGUFWriter) with llama.cpp's names, tensors F32, F16, BF16, Q8_0, Q4_0 (quantized
    with gguf.quants; token_embd quantized too), Llama's attn_q / attn_k permuted exactly as
    llama.cpp's convert_hf_to_gguf.py does (`permute` below), tokenizer.ggml.* metadata.
`vklm convert` turns each into a vklm checkpoint; every vklm tensor is compared with what Python
holds (mapped to vklm's names by scripts/reference_model.py's from_hf, written independently of
engine/formats/hf_names.c; dequantized with gguf.quants for quantized files: must be bit-exact),
and the logits of `vklm eval-logits` (the GPU model) are compared with the PyTorch reference
forward (scripts/reference_model.py, the one every test uses) run in float64 on the same
(dequantized) weights: bound 1e-5 relative (max |diff| / max |ref|) for every type. For quantized
files the distance to the forward on the ORIGINAL fp32 weights is reported and held to documented
looser bounds (F16 5e-3, BF16 5e-2, Q8_0 5e-2, Q4_0 5e-1 relative: these tiny random models have no
outliers for the block scales to absorb, so Q4_0's 4-bit error shows in full).
Then `vklm export --format gguf` (f32, q8_0) of a converted model is read back with GGUFReader:
names, shapes, metadata, values (attn_q/attn_k equal to llama.cpp's permutation of HF's q_proj /
k_proj), and the f32 export converts back bit-exactly. Hostile inputs (unknown architecture,
missing tensor, wrong shape, unsupported tensor type, truncated file, missing config) must fail
with a non-zero exit and a message naming the problem.
Greedy continuations: for F32 GPT-2 and Llama models (HF safetensors and GGUF, maxT 48)
`vklm generate --prompt-ids ... --print-ids -n 32 --temp 0` (the GPU KV-cache path: one prefill,
then 31 decode steps) must give exactly the 32 ids that greedy decoding with the float64 reference
forward gives (reference_model.greedy: the whole sequence re-run per step). These models' weights
are rescaled (`greedy_weights`: block matrices x2.5, token embeddings x0.5) so that the blocks, not
the tied embedding, drive the prediction (unscaled, the GPT-2 model just repeats one token) and
the logits are well separated: the smallest top-1 minus top-2 gap along the reference path must
be at least 1e-3 of the largest |logit| (it is 6e-3 and 3e-3 here; float32 logits differ from the
float64 ones by ~1e-6 relative), so the argmax is not fragile across implementations."""
import atexit
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as QT
from safetensors.numpy import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_model as ref  # noqa: E402  (the one PyTorch forward of the tests)

VKLM = os.path.abspath(sys.argv[1])
failures = passes = 0
TOL = 1e-5  # measured: <= 7e-7 (fp32 GPU vs float64)
ORIG_TOL = {"F32": 1e-4, "F16": 5e-3, "BF16": 5e-2, "Q8_0": 5e-2, "Q4_0": 5e-1}


def check(ok, what):
    global failures, passes
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    passes += bool(ok)
    failures += not ok


def run(*args, expect_ok=True):
    r = subprocess.run([VKLM, *args], capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        print(r.stdout, r.stderr)
    return r


def read_ckpt(path):
    """The parameters of a vklm checkpoint by vklm name (docs/checkpoint.md)."""
    data = open(path, "rb").read()
    assert data[:8] == b"VKLMCKPT"
    ntensors, = struct.unpack_from("<I", data, 184)
    nparams, = struct.unpack_from("<Q", data, 192)
    flat = np.frombuffer(data, dtype="<f4", count=nparams, offset=256 + 112 * ntensors)
    out = {}
    for i in range(ntensors):
        e = 256 + 112 * i
        name = data[e:e + 64].split(b"\0")[0].decode()
        ndim, = struct.unpack_from("<I", data, e + 64)
        shape = struct.unpack_from("<4I", data, e + 68)[:ndim]
        off, cnt = struct.unpack_from("<QQ", data, e + 84)
        out[name] = flat[off:off + cnt].reshape(shape)
    return out


# ---- tiny models with HF names -----------------------------------------------------------------
GPT2 = dict(arch="gpt2", V=67, maxT=24, L=2, NH=4, NKV=4, C=64, F=256, tie=True, eps=1e-5)
LLAMA = dict(arch="llama", V=300, maxT=32, L=2, NH=4, NKV=2, C=64, F=96, tie=False, eps=1e-5,
             theta=10000.0)
LLAMA_TIED = dict(LLAMA, tie=True, theta=500000.0, eps=1e-6)


def make_hf(c, seed):
    g = np.random.default_rng(seed)
    r = lambda *s, std=0.08: (std * g.standard_normal(s)).astype(np.float32)
    C, Fh, V = c["C"], c["F"], c["V"]
    P = {}
    if c["arch"] == "gpt2":
        P["wte.weight"] = r(V, C, std=0.3)
        P["wpe.weight"] = r(c["maxT"], C, std=0.1)
        for l in range(c["L"]):
            h = "h.%d." % l
            P[h + "ln_1.weight"] = 1 + r(C, std=0.1)
            P[h + "ln_1.bias"] = r(C, std=0.05)
            P[h + "attn.c_attn.weight"] = r(C, 3 * C)  # Conv1D: (in, out)
            P[h + "attn.c_attn.bias"] = r(3 * C, std=0.05)
            P[h + "attn.c_proj.weight"] = r(C, C)
            P[h + "attn.c_proj.bias"] = r(C, std=0.05)
            P[h + "ln_2.weight"] = 1 + r(C, std=0.1)
            P[h + "ln_2.bias"] = r(C, std=0.05)
            P[h + "mlp.c_fc.weight"] = r(C, Fh)
            P[h + "mlp.c_fc.bias"] = r(Fh, std=0.05)
            P[h + "mlp.c_proj.weight"] = r(Fh, C)
            P[h + "mlp.c_proj.bias"] = r(C, std=0.05)
        P["ln_f.weight"] = 1 + r(C, std=0.1)
        P["ln_f.bias"] = r(C, std=0.05)
    else:
        HS = C // c["NH"]
        P["model.embed_tokens.weight"] = r(V, C, std=0.3)
        for l in range(c["L"]):
            m = "model.layers.%d." % l
            P[m + "input_layernorm.weight"] = 1 + r(C, std=0.1)
            P[m + "self_attn.q_proj.weight"] = r(c["NH"] * HS, C, std=0.15)
            P[m + "self_attn.k_proj.weight"] = r(c["NKV"] * HS, C, std=0.15)
            P[m + "self_attn.v_proj.weight"] = r(c["NKV"] * HS, C)
            P[m + "self_attn.o_proj.weight"] = r(C, C)
            P[m + "post_attention_layernorm.weight"] = 1 + r(C, std=0.1)
            P[m + "mlp.gate_proj.weight"] = r(Fh, C)
            P[m + "mlp.up_proj.weight"] = r(Fh, C)
            P[m + "mlp.down_proj.weight"] = r(C, Fh)
        P["model.norm.weight"] = 1 + r(C, std=0.1)
        if not c["tie"]:
            P["lm_head.weight"] = r(V, C, std=0.2)
    return P


def hf_forward(P, c, ids):
    """float64 logits (T, V) of HF-named weights: the reference forward on from_hf's mapping."""
    with torch.no_grad():
        return ref.forward(ref.torch_params(ref.from_hf(P, c)), c, ids).numpy()


def hf_config(c):
    if c["arch"] == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c["V"],
                "n_positions": c["maxT"], "n_ctx": c["maxT"], "n_embd": c["C"], "n_layer": c["L"],
                "n_head": c["NH"], "n_inner": None, "activation_function": "gelu_new",
                "layer_norm_epsilon": c["eps"], "tie_word_embeddings": True}
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c["V"],
            "hidden_size": c["C"], "intermediate_size": c["F"], "num_hidden_layers": c["L"],
            "num_attention_heads": c["NH"], "num_key_value_heads": c["NKV"],
            "max_position_embeddings": c["maxT"], "rms_norm_eps": c["eps"],
            "rope_theta": c["theta"], "hidden_act": "silu", "tie_word_embeddings": c["tie"],
            "rope_scaling": None, "attention_bias": False}


# ---- GGUF the way llama.cpp's converter writes it ----------------------------------------------
def permute(w, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py LlamaModel.permute: HF rotate_half rows -> interleaved RoPE rows."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_tensors(P, c):
    """(gguf name, array (out, in) / 1-D) in llama.cpp's conventions."""
    out = []
    if c["arch"] == "gpt2":
        out += [("token_embd.weight", P["wte.weight"]), ("position_embd.weight", P["wpe.weight"])]
        for l in range(c["L"]):
            h, b = "h.%d." % l, "blk.%d." % l
            for hf, gg, tr in (("ln_1", "attn_norm", 0), ("attn.c_attn", "attn_qkv", 1),
                               ("attn.c_proj", "attn_output", 1), ("ln_2", "ffn_norm", 0),
                               ("mlp.c_fc", "ffn_up", 1), ("mlp.c_proj", "ffn_down", 1)):
                w = P[h + hf + ".weight"]
                out.append((b + gg + ".weight", np.ascontiguousarray(w.T) if tr else w))
                out.append((b + gg + ".bias", P[h + hf + ".bias"]))
        out += [("output_norm.weight", P["ln_f.weight"]), ("output_norm.bias", P["ln_f.bias"])]
        return out
    out.append(("token_embd.weight", P["model.embed_tokens.weight"]))
    for l in range(c["L"]):
        m, b = "model.layers.%d." % l, "blk.%d." % l
        out.append((b + "attn_norm.weight", P[m + "input_layernorm.weight"]))
        out.append((b + "attn_q.weight", permute(P[m + "self_attn.q_proj.weight"], c["NH"], c["NH"])))
        out.append((b + "attn_k.weight", permute(P[m + "self_attn.k_proj.weight"], c["NH"], c["NKV"])))
        out.append((b + "attn_v.weight", P[m + "self_attn.v_proj.weight"]))
        out.append((b + "attn_output.weight", P[m + "self_attn.o_proj.weight"]))
        out.append((b + "ffn_norm.weight", P[m + "post_attention_layernorm.weight"]))
        out.append((b + "ffn_gate.weight", P[m + "mlp.gate_proj.weight"]))
        out.append((b + "ffn_up.weight", P[m + "mlp.up_proj.weight"]))
        out.append((b + "ffn_down.weight", P[m + "mlp.down_proj.weight"]))
    out.append(("output_norm.weight", P["model.norm.weight"]))
    if not c["tie"]:
        out.append(("output.weight", P["lm_head.weight"]))
    return out


def unpermute(w, n_head):
    """The inverse of permute (written independently: interleaved row 2j+i -> rotate_half i*HS/2+j)."""
    rows = w.shape[0]
    HS = rows // n_head
    idx = np.empty(rows, dtype=np.int64)
    for h in range(n_head):
        for g in range(HS):
            idx[h * HS + (g % 2) * (HS // 2) + g // 2] = h * HS + g
    return w[idx]


def write_gguf(path, P, c, qtype, tokenizer=None, arch=None, skip=(), reshape=None, f64=None):
    """Returns the HF-named weights as the file holds them (dequantized)."""
    a = arch or c["arch"]
    w = gguf.GGUFWriter(path, a)
    w.add_context_length(c["maxT"])
    w.add_embedding_length(c["C"])
    w.add_block_count(c["L"])
    w.add_feed_forward_length(c["F"])
    w.add_head_count(c["NH"])
    w.add_head_count_kv(c["NKV"])
    if c["arch"] == "gpt2":
        w.add_layer_norm_eps(c["eps"])
    else:
        w.add_layer_norm_rms_eps(c["eps"])
        w.add_rope_freq_base(c["theta"])
        w.add_rope_dimension_count(c["C"] // c["NH"])
    if tokenizer:
        toks, types, merges = tokenizer
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list(toks)
        w.add_token_types(types)
        if merges and not isinstance(merges[0], str):  # a hostile file: merges of another type
            w.add_array("tokenizer.ggml.merges", merges)
        else:
            w.add_token_merges(merges)
        w.add_eos_token_id(types.index(3))
        w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    held = {}
    for name, arr in gguf_tensors(P, c):
        if any(name.startswith(s) for s in skip):
            continue
        if reshape and name == reshape:
            arr = arr[:-2]
        if f64 and name == f64:
            w.add_tensor(name, arr.astype(np.float64))
            continue
        q = qtype if arr.ndim == 2 else QT.F32
        if q == QT.F32:
            w.add_tensor(name, arr.astype(np.float32))
            held[name] = arr.astype(np.float32)
        elif q == QT.F16:
            w.add_tensor(name, arr.astype(np.float16))
            held[name] = arr.astype(np.float16).astype(np.float32)
        else:
            data = gguf.quants.quantize(arr, q)
            w.add_tensor(name, data, raw_dtype=q)
            held[name] = gguf.quants.dequantize(data, q).reshape(arr.shape).astype(np.float32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


def hf_from_gguf(held, c):
    """Back to HF names (undoing the permutation) from what a GGUF holds."""
    P = {}
    if c["arch"] == "gpt2":
        P["wte.weight"], P["wpe.weight"] = held["token_embd.weight"], held["position_embd.weight"]
        for l in range(c["L"]):
            h, b = "h.%d." % l, "blk.%d." % l
            for hf, gg, tr in (("ln_1", "attn_norm", 0), ("attn.c_attn", "attn_qkv", 1),
                               ("attn.c_proj", "attn_output", 1), ("ln_2", "ffn_norm", 0),
                               ("mlp.c_fc", "ffn_up", 1), ("mlp.c_proj", "ffn_down", 1)):
                wt = held[b + gg + ".weight"]
                P[h + hf + ".weight"] = wt.T if tr else wt
                P[h + hf + ".bias"] = held[b + gg + ".bias"]
        P["ln_f.weight"], P["ln_f.bias"] = held["output_norm.weight"], held["output_norm.bias"]
        return P
    P["model.embed_tokens.weight"] = held["token_embd.weight"]
    for l in range(c["L"]):
        m, b = "model.layers.%d." % l, "blk.%d." % l
        P[m + "input_layernorm.weight"] = held[b + "attn_norm.weight"]
        P[m + "self_attn.q_proj.weight"] = unpermute(held[b + "attn_q.weight"], c["NH"])
        P[m + "self_attn.k_proj.weight"] = unpermute(held[b + "attn_k.weight"], c["NKV"])
        P[m + "self_attn.v_proj.weight"] = held[b + "attn_v.weight"]
        P[m + "self_attn.o_proj.weight"] = held[b + "attn_output.weight"]
        P[m + "post_attention_layernorm.weight"] = held[b + "ffn_norm.weight"]
        P[m + "mlp.gate_proj.weight"] = held[b + "ffn_gate.weight"]
        P[m + "mlp.up_proj.weight"] = held[b + "ffn_up.weight"]
        P[m + "mlp.down_proj.weight"] = held[b + "ffn_down.weight"]
    P["model.norm.weight"] = held["output_norm.weight"]
    if not c["tie"]:
        P["lm_head.weight"] = held["output.weight"]
    return P


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def compare_ckpt(ckpt, P, c, label):
    got = read_ckpt(ckpt)
    exp = ref.from_hf(P, c)
    worst, ok = 0.0, set(got) == set(exp)
    for k, v in exp.items():
        if k in got and got[k].shape == v.shape:
            worst = max(worst, float(np.max(np.abs(got[k] - v))))
        else:
            ok = False
    check(ok and worst == 0.0, "%s: %d tensors, names/shapes match, max |vklm - python| = %.3g"
          % (label, len(exp), worst))


def compare_logits(ckpt, P, c, label, tmp, P_orig=None, qname="F32"):
    ids = [int(x) for x in np.random.default_rng(5).integers(0, c["V"], size=c["maxT"] - 3)]
    out = os.path.join(tmp, "logits.bin")
    r = run("eval-logits", "-m", ckpt, "--tokens", ",".join(map(str, ids)), "--out", out)
    if r.returncode != 0:
        check(False, "%s: eval-logits ran" % label)
        return
    got = np.fromfile(out, dtype="<f4").reshape(len(ids), c["V"])
    e = rel(got, hf_forward(P, c, ids))
    check(e < TOL, "%s: logits vs the float64 reference forward on the same weights: rel %.2e (< %g)"
          % (label, e, TOL))
    if P_orig is not None:
        e2 = rel(got, hf_forward(P_orig, c, ids))
        check(e2 < ORIG_TOL[qname], "%s: logits vs forward on the original fp32 weights: rel %.2e "
              "(documented bound %g)" % (label, e2, ORIG_TOL[qname]))


def greedy_weights(P):
    """make_hf's weights with the block matrices x2.5 and the token embeddings x0.5."""
    emb = ("wte.weight", "model.embed_tokens.weight")
    return {k: v * 0.5 if k in emb else v * 2.5 if v.ndim == 2 and k != "wpe.weight" else v
            for k, v in P.items()}


def check_greedy(model, P, c, label, n=32):
    prompt = [int(x) for x in np.random.default_rng(11).integers(0, c["V"], size=8)]
    want, gap = ref.greedy(ref.torch_params(ref.from_hf(P, c)), c, prompt, n)
    r = run("generate", "-m", model, "--prompt-ids", ",".join(map(str, prompt)), "--print-ids",
            "-n", str(n), "--temp", "0", "--ignore-eos", "-c", str(c["maxT"]))
    got = [int(x) for x in r.stdout.split()] if r.returncode == 0 else []
    first = next((i for i in range(n) if i >= len(got) or got[i] != want[i]), None)
    check(gap >= 1e-3 and len(set(want)) >= 4,
          "%s: reference path well separated (smallest top-2 gap / max |logit| %.2g >= 1e-3; %d "
          "distinct ids)" % (label, gap, len(set(want))))
    check(r.returncode == 0 and got == want,
          "%s: greedy continuation of %d tokens == float64 reference (reference_model.greedy)%s "
          "(relative top-2 gap %.2g)" % (label, n, "" if first is None else " -- FIRST DIFFERENCE at %d: got %s want %s"
                     % (first, got[first:first + 4], want[first:first + 4]), gap))


def tiny_tokenizer(tmp):
    """A byte-level BPE trained by HF tokenizers (300 ids: 256 bytes, merges, <|endoftext|>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = ["the quick brown fox jumps over the lazy dog. " * 3, "hello world, hello there! 12345",
            "import and export of models, tensors and tokenizers"] * 20
    tk.train_from_iterator(text, tr)
    path = os.path.join(tmp, "tokenizer.json")
    tk.save(path)
    j = json.load(open(path))
    vocab = j["model"]["vocab"]
    V = max(vocab.values()) + 1
    toks = [None] * V
    for s, i in vocab.items():
        toks[i] = s
    types = [1] * V
    for a in j["added_tokens"]:
        toks[a["id"]] = a["content"]
        types[a["id"]] = 3
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    return tk, path, (toks, types, merges)


def main():
    tmp = tempfile.mkdtemp(prefix="vklm_import_")
    atexit.register(shutil.rmtree, tmp, True)  # the models and checkpoints written below
    tk, tk_path, tk_meta = tiny_tokenizer(tmp)
    LL = dict(LLAMA, V=len(tk_meta[0]))

    # ---- Hugging Face directories ----
    for c, prefix, label in ((GPT2, "transformer.", "hf gpt2"), (GPT2, "", "hf gpt2 f16 bare"),
                             (LL, "", "hf llama"), (dict(LLAMA_TIED, V=LL["V"]), "", "hf llama tied")):
        P = make_hf(c, 1)
        if "f16" in label:  # fp16 safetensors: python holds the fp16 values
            P = {k: v.astype(np.float16).astype(np.float32) for k, v in P.items()}
        d = os.path.join(tmp, label.replace(" ", "_"))
        os.makedirs(d)
        dt = np.float16 if "f16" in label else np.float32
        save_file({prefix + k: v.astype(dt) for k, v in P.items()}, os.path.join(d, "model.safetensors"))
        json.dump(hf_config(c), open(os.path.join(d, "config.json"), "w"))
        if c["arch"] == "llama":
            shutil.copy(tk_path, os.path.join(d, "tokenizer.json"))
        ck = os.path.join(d, "model.ckpt")
        r = run("convert", "-m", d, "-o", ck)
        check(r.returncode == 0, "%s: vklm convert (%s)" % (label, r.stderr.strip().splitlines()[0]
                                                             if r.stderr else ""))
        if r.returncode:
            continue
        compare_ckpt(ck, P, c, label)
        compare_logits(ck, P, c, label, tmp)

    # ---- GGUF files written by PyPI gguf ----
    for c, label in ((GPT2, "gguf gpt2"), (LL, "gguf llama"), (dict(LLAMA_TIED, V=LL["V"]), "gguf llama tied")):
        P = make_hf(c, 2)
        for qname, q in (("F32", QT.F32), ("F16", QT.F16), ("BF16", QT.BF16), ("Q8_0", QT.Q8_0),
                         ("Q4_0", QT.Q4_0)):
            if ("tied" in label and qname in ("F16", "Q8_0")) or (qname == "BF16" and c is GPT2):
                continue
            d = os.path.join(tmp, "%s_%s" % (label.replace(" ", "_"), qname))
            os.makedirs(d)
            path = os.path.join(d, "model.gguf")
            held = write_gguf(path, P, c, q, tokenizer=tk_meta if c["arch"] == "llama" else None)
            Pq = hf_from_gguf(held, c)
            if q == QT.F32:  # the test's own permute/unpermute pair is an exact inverse
                check(all(np.array_equal(Pq[k], P[k]) for k in P),
                      "%s %s: unpermute(permute(w)) == w in python" % (label, qname))
            ck = os.path.join(d, "model.ckpt")
            r = run("convert", "-m", path, "-o", ck)
            lab = "%s %s" % (label, qname)
            check(r.returncode == 0, "%s: vklm convert" % lab)
            if r.returncode:
                continue
            compare_ckpt(ck, Pq, c, lab)
            compare_logits(ck, Pq, c, lab, tmp, P_orig=P if q != QT.F32 else None, qname=qname)
            if c["arch"] == "llama" and qname == "F32":
                # the tokenizer rebuilt from GGUF metadata encodes as the original does
                from tokenizers import Tokenizer
                tj = os.path.join(d, "tokenizer.json")
                ok = os.path.exists(tj)
                if ok:
                    t2 = Tokenizer.from_file(tj)
                    for s in ("hello world, the quick brown fox!", "export 12345 <|endoftext|> x"):
                        ok = ok and t2.encode(s).ids == tk.encode(s).ids
                check(ok, "%s: tokenizer from tokenizer.ggml.* encodes like the original" % lab)
                tpl = os.path.join(d, "chat_template.jinja")
                check(os.path.exists(tpl) and "messages" in open(tpl).read(),
                      "%s: chat template written" % lab)

    # ---- hostile tokenizer metadata: refused with the reason, never a wrong tokenizer ----
    c = LL
    P = make_hf(c, 5)
    toks, types, merges = tk_meta
    for what, meta, want in (
            ("merges of integers", (toks, types, list(range(len(merges)))), "merges is not an array of strings"),
            ("token types one short", (toks, types[:-1], merges), "token_type has %d entries for %d tokens" % (len(toks) - 1, len(toks))),
            ("a token type of 9", (toks, [9 if i == 5 else t for i, t in enumerate(types)], merges), "token_type[5] is not a token type")):
        d = tempfile.mkdtemp(dir=tmp)
        path = os.path.join(d, "bad.gguf")
        write_gguf(path, P, c, QT.F32, tokenizer=meta)
        ck = os.path.join(d, "model.ckpt")
        r = run("convert", "-m", path, "-o", ck, expect_ok=False)
        check(r.returncode == 0 and not os.path.exists(os.path.join(d, "tokenizer.json")) and
              want in r.stderr, "GGUF with %s: convert writes the weights, no tokenizer, and says why: %s"
              % (what, r.stderr.strip().splitlines()[-1][:120] if r.stderr.strip() else ""))
        r = run("generate", "-m", path, "-p", "hi", "-n", "2", expect_ok=False)
        check(r.returncode == 1 and want in r.stderr,
              "GGUF with %s: generate names the tokenizer's defect: %s" % (what, r.stderr.strip()[:160]))

    # ---- export to GGUF, read back by PyPI gguf ----
    c = LL
    P = make_hf(c, 3)
    d = os.path.join(tmp, "export")
    os.makedirs(d)
    save_file(P, os.path.join(d, "model.safetensors"))
    json.dump(hf_config(c), open(os.path.join(d, "config.json"), "w"))
    ck = os.path.join(d, "model.ckpt")
    run("convert", "-m", d, "-o", ck, "--no-tokenizer")
    ref = dict(gguf_tensors(P, c))
    for tname, qt in (("f32", QT.F32), ("q8_0", QT.Q8_0), ("q4_0", QT.Q4_0)):
        out = os.path.join(d, "out_%s.gguf" % tname)
        r = run("export", "-m", ck, "--format", "gguf", "--type", tname, "-t", tk_path, "-o", out)
        check(r.returncode == 0, "export gguf %s: exit 0" % tname)
        if r.returncode:
            continue
        rd = gguf.GGUFReader(out)
        names = {t.name for t in rd.tensors}
        check(names == set(ref), "export gguf %s: %d tensors with llama.cpp's names" % (tname, len(ref)))
        worst, types_ok = 0.0, True
        for t in rd.tensors:
            if t.name not in ref:
                continue
            want = ref[t.name]
            exp_t = qt if want.ndim == 2 and t.name != "token_embd.weight" else QT.F32
            types_ok = types_ok and t.tensor_type == exp_t
            if t.tensor_type in (QT.F32, QT.F16):
                arr = np.asarray(t.data, dtype=np.float32).reshape(want.shape)
                expv = want
            else:
                arr = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(want.shape)
                expv = gguf.quants.dequantize(gguf.quants.quantize(want, t.tensor_type),
                                              t.tensor_type).reshape(want.shape)
            worst = max(worst, float(np.max(np.abs(arr - expv))))
        check(types_ok and worst == 0.0, "export gguf %s: tensor types, shapes and values (attn_q/k "
              "= llama.cpp's permute of HF q/k_proj; quantized = gguf.quants of them): max err %.3g"
              % (tname, worst))
        f = rd.fields
        meta_ok = (f["general.architecture"].contents() == "llama" and
                   f["llama.block_count"].contents() == c["L"] and
                   f["llama.attention.head_count_kv"].contents() == c["NKV"] and
                   f["llama.embedding_length"].contents() == c["C"] and
                   f["llama.feed_forward_length"].contents() == c["F"] and
                   abs(f["llama.rope.freq_base"].contents() - c["theta"]) < 1e-3 and
                   f["tokenizer.ggml.model"].contents() == "gpt2" and
                   f["tokenizer.ggml.tokens"].contents() == tk_meta[0] and
                   f["tokenizer.ggml.merges"].contents() == tk_meta[2] and
                   list(f["tokenizer.ggml.token_type"].contents()) == tk_meta[1])
        check(meta_ok, "export gguf %s: metadata (hyperparameters, tokens, merges, types)" % tname)
        if tname == "f32":
            ck2 = os.path.join(d, "back.ckpt")
            r = run("convert", "-m", out, "-o", ck2, "--no-tokenizer")
            a, b = read_ckpt(ck), read_ckpt(ck2) if r.returncode == 0 else {}
            check(r.returncode == 0 and set(a) == set(b) and
                  all(np.array_equal(a[k], b[k]) for k in a),
                  "export gguf f32 -> convert: bit-identical checkpoint")

    # safetensors export still works
    r = run("export", "-m", ck, "-o", os.path.join(d, "re.safetensors"))
    check(r.returncode == 0, "export safetensors still works")

    # ---- hostile inputs ----
    c = LL
    P = make_hf(c, 4)
    cases = [
        ("unknown architecture", dict(arch="mamba"), "mamba"),
        ("missing tensor", dict(skip=("blk.1.attn_k.weight",)), "blk.1.attn_k.weight"),
        ("wrong shape", dict(reshape="blk.0.attn_v.weight"), "blk.0.attn_v.weight"),
        ("unsupported type F64", dict(f64="blk.0.ffn_up.weight"), "F64"),
    ]
    for what, kw, needle in cases:
        path = os.path.join(tmp, "bad_%s.gguf" % what.replace(" ", "_"))
        write_gguf(path, P, c, QT.F32, **kw)
        r = run("convert", "-m", path, "-o", os.path.join(tmp, "bad.ckpt"), expect_ok=False)
        check(r.returncode != 0 and needle in r.stderr,
              "hostile gguf, %s: exit %d, %s" % (what, r.returncode, r.stderr.strip()))
    good = os.path.join(tmp, "good.gguf")
    write_gguf(good, P, c, QT.F32)
    data = open(good, "rb").read()
    trunc = os.path.join(tmp, "trunc.gguf")
    open(trunc, "wb").write(data[:len(data) - 1000])
    r = run("convert", "-m", trunc, "-o", os.path.join(tmp, "bad.ckpt"), expect_ok=False)
    check(r.returncode != 0 and r.stderr.strip() != "", "hostile gguf, truncated: exit %d, %s"
          % (r.returncode, r.stderr.strip()))
    empty = os.path.join(tmp, "empty_dir")
    os.makedirs(empty)
    r = run("convert", "-m", empty, "-o", os.path.join(tmp, "bad.ckpt"), expect_ok=False)
    check(r.returncode != 0 and "config.json" in r.stderr, "hf dir without config.json: exit %d, %s"
          % (r.returncode, r.stderr.strip()))
    d = os.path.join(tmp, "hf_bad")
    os.makedirs(d)
    Pb = dict(P)
    del Pb["model.layers.1.mlp.up_proj.weight"]
    save_file(Pb, os.path.join(d, "model.safetensors"))
    json.dump(hf_config(c), open(os.path.join(d, "config.json"), "w"))
    r = run("convert", "-m", d, "-o", os.path.join(tmp, "bad.ckpt"), expect_ok=False)
    check(r.returncode != 0 and "model.layers.1.mlp.up_proj.weight" in r.stderr,
          "hf missing tensor: exit %d, %s" % (r.returncode, r.stderr.strip()))
    cfg = hf_config(c)
    cfg["hidden_size"] = 48
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    save_file(P, os.path.join(d, "model.safetensors"))
    r = run("convert", "-m", d, "-o", os.path.join(tmp, "bad.ckpt"), expect_ok=False)
    check(r.returncode != 0 and "shape" in r.stderr, "hf shape vs config mismatch: exit %d, %s"
          % (r.returncode, r.stderr.strip()))

    # ---- greedy continuations through `vklm generate` (the KV-cache path) ----
    for c, label in ((dict(GPT2, maxT=48), "gpt2"), (dict(LL, maxT=48), "llama")):
        P = greedy_weights(make_hf(c, 5))
        d = os.path.join(tmp, "greedy_" + label)
        os.makedirs(d)
        save_file(P, os.path.join(d, "model.safetensors"))
        json.dump(hf_config(c), open(os.path.join(d, "config.json"), "w"))
        check_greedy(d, P, c, "hf %s F32" % label)
        path = os.path.join(d, "model.gguf")
        held = write_gguf(path, P, c, QT.F32)
        check_greedy(path, hf_from_gguf(held, c), c, "gguf %s F32" % label)

    print("%d passed, %d failed" % (passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
