"""test_formats_py: vklm's GGUF and safetensors readers and writer against tools vklm did not write.

Run by CTest as `python3 tests/test_formats_py.py PATH/TO/vklm`, with PyPI gguf (GGUFWriter,
GGUFReader, gguf.quants), safetensors and numpy (scripts/requirements-test.txt):
  1. gguf-py writes a small model-like file (metadata strings, ints, floats, bool, arrays of
     strings/ints/floats; F32, F16, BF16 tensors and Q8_0, Q4_0 tensors made by gguf.quants);
     `vklm inspect --json` must report the same metadata and tensor table, and
     `vklm inspect --tensor NAME --dump` the same fp32 values that gguf.quants.dequantize gives.
  2. The same fp32 data quantized by both: vklm's bytes (`--dump-as q8_0|q4_0|f16|bf16`) must
     equal gguf.quants.quantize's bytes (random data, wide scales, a zero block, rounding ties).
  3. `vklm inspect --write-test-gguf` writes a file that gguf's GGUFReader must read back with
     the metadata and tensor bytes this script expects (mirroring apps/cmd_inspect.c).
  4. safetensors.numpy.save_file (F32, F16; BF16 through torch when it is importable) read by vklm.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as Q
except ImportError as e:  # the venv lacks the test requirements
    print(f"test_formats_py: cannot import gguf ({e}); install scripts/requirements-test.txt")
    sys.exit(1)

VKLM = sys.argv[1] if len(sys.argv) > 1 else "vklm"
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")


def vklm(*args):
    r = subprocess.run([VKLM, "inspect", *args], capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"vklm inspect {' '.join(args)} failed: {r.stderr.decode()}")
    return r.stdout


def dump(path, name, as_type="f32"):
    return vklm(path, "--tensor", name, "--dump", "--dump-as", as_type)


def dump_f32(path, name):
    return np.frombuffer(dump(path, name), dtype="<f4")


def test_gguf_py_to_vklm(tmp):
    path = os.path.join(tmp, "py.gguf")
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(path, "llama")
    meta = {  # key -> (gguf type name, value) as vklm must report them
        "general.architecture": ("string", "llama"),
        "general.name": ("string", "tiny py model \u00e9\u2713"),
        "llama.block_count": ("uint32", 2),
        "llama.context_length": ("uint32", 128),
        "llama.rope.freq_base": ("float32", 10000.0),
        "llama.attention.layer_norm_rms_epsilon": ("float32", float(np.float32(1e-5))),
        "test.i64": ("int64", -(2 ** 40)),
        "test.u64": ("uint64", 2 ** 64 - 1),
        "test.f64": ("float64", 0.1),
        "test.bool": ("bool", False),
        "test.i8": ("int8", -3),
        "tokenizer.ggml.tokens": ("array", ["<s>", "</s>", "a", "b", "\u00e9t\u00e9", " ", ""]),
        "tokenizer.ggml.scores": ("array", [0.0, -1.5, 2.25, 3.0, -4.0, 0.5, 1.0]),
        "tokenizer.ggml.token_type": ("array", [3, 3, 1, 1, 1, 1, 1]),
    }
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_name(meta["general.name"][1])
    w.add_int64("test.i64", meta["test.i64"][1])
    w.add_uint64("test.u64", meta["test.u64"][1])
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.bool", False)
    w.add_int8("test.i8", -3)
    w.add_token_list(meta["tokenizer.ggml.tokens"][1])
    w.add_token_scores(meta["tokenizer.ggml.scores"][1])
    w.add_token_types(meta["tokenizer.ggml.token_type"][1])
    src = {
        "token_embd.weight": (Q.F32, rng.standard_normal((7, 64)).astype(np.float32)),
        "blk.0.attn_q.weight": (Q.F16, rng.standard_normal((3, 40)).astype(np.float32)),
        "blk.0.attn_k.weight": (Q.BF16, rng.standard_normal((2, 24)).astype(np.float32)),
        "blk.0.ffn_up.weight": (Q.Q8_0, rng.standard_normal((5, 96)).astype(np.float32)),
        "blk.0.ffn_down.weight": (Q.Q4_0, rng.standard_normal((4, 128)).astype(np.float32)),
        "output_norm.weight": (Q.F32, rng.standard_normal((64,)).astype(np.float32)),
    }
    raw = {}
    for name, (qt, x) in src.items():
        if qt == Q.F32:
            raw[name] = x
            w.add_tensor(name, x)
        elif qt == Q.F16:
            raw[name] = x.astype(np.float16)
            w.add_tensor(name, raw[name])
        else:
            raw[name] = gguf.quants.quantize(x, qt)
            w.add_tensor(name, raw[name], raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    info = json.loads(vklm(path, "--json"))
    got = {m["key"]: m for m in info["metadata"]}
    for key, (typ, val) in meta.items():
        m = got.get(key)
        ok = m is not None and m["type"] == typ
        if ok and typ == "array":
            ok = m["value"] == val or np.allclose(np.array(m["value"], np.float64), np.array(val, np.float64), 0, 0)
        elif ok and typ == "float32":  # printed with 9 digits: equal as fp32
            ok = np.float32(m["value"]) == np.float32(val)
        elif ok:
            ok = m["value"] == val
        check(ok, f"gguf-py -> vklm metadata {key}: got {m}, want {typ} {val!r}")
    check(info["version"] == 3 and info["alignment"] == 32, "gguf-py file: version 3, alignment 32")
    tensors = {t["name"]: t for t in info["tensors"]}
    worst = 0.0
    for name, (qt, x) in src.items():
        t = tensors.get(name)
        check(t is not None and t["type"] == qt.name and t["ne"] == list(reversed(x.shape)),
              f"gguf-py -> vklm tensor {name}: {t} vs {qt.name} {x.shape}")
        want = gguf.quants.dequantize(np.asarray(raw[name]).view(np.uint8) if qt not in (Q.F32, Q.F16)
                                      else raw[name], qt).astype(np.float32).reshape(-1)
        got_v = dump_f32(path, name)
        same = got_v.shape == want.shape and np.array_equal(got_v, want)
        check(same, f"gguf-py -> vklm {name} ({qt.name}): dequantized values differ")
        if same:
            worst = max(worst, float(np.max(np.abs(got_v - x.reshape(-1)))))
    print(f"gguf-py -> vklm: {len(meta)} metadata entries and {len(src)} tensors (F32 F16 BF16 Q8_0 Q4_0) "
          f"equal; vklm's fp32 dump == gguf.quants.dequantize bit for bit (worst |x' - x| {worst:.4f})")


def test_quantize_both(tmp):
    """Same fp32 data quantized by vklm and by gguf.quants: the bytes must be equal."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 64)).astype(np.float32)
    x *= (10.0 ** rng.integers(-6, 5, size=(24, 1))).astype(np.float32)  # block scales 1e-6..1e4
    x[0, :32] = 0  # a zero block
    x[1, :32] = np.float32(0.5) * rng.integers(-16, 17, 32)  # many exact .5 values
    x[1, 5] = -8.0  # Q4_0: d = 1, so x/d + 8.5 lands on integers (ties)
    x[2, :32] = np.float32(0.5) * rng.integers(-254, 255, 32)
    x[2, 0] = 127.0  # Q8_0: d = 1, x * 1/d on .5 ties
    x[3, 7] = 1e4  # an outlier
    path = os.path.join(tmp, "data.gguf")
    w = gguf.GGUFWriter(path, "test")
    w.add_tensor("x", x)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for as_type, qt in (("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0), ("f16", Q.F16), ("bf16", Q.BF16)):
        ours = dump(path, "x", as_type)
        theirs = gguf.quants.quantize(x, qt)
        theirs = np.ascontiguousarray(theirs).tobytes()
        diff = sum(a != b for a, b in zip(ours, theirs)) if len(ours) == len(theirs) else -1
        check(ours == theirs, f"quantize {as_type}: vklm and gguf.quants differ ({diff} bytes differ, "
                              f"lengths {len(ours)} vs {len(theirs)})")
        print(f"quantize {as_type}: {x.size} values -> {len(ours)} bytes, vklm == gguf.quants byte for byte"
              if ours == theirs else f"quantize {as_type}: MISMATCH")


def lcg(n, seed):
    s, out = seed, np.empty(n, np.float32)
    for i in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = ((s >> 8) - (1 << 23)) / float(1 << 22)
    return out


def test_vklm_to_gguf_py(tmp):
    path = os.path.join(tmp, "vklm.gguf")
    vklm("--write-test-gguf", path)
    r = gguf.GGUFReader(path)
    want_meta = {  # mirrors write_test_gguf in apps/cmd_inspect.c
        "general.architecture": "vklm-test", "general.name": "tiny \u00fcn\u00efcode \u2713",
        "test.u8": 200, "test.i8": -100, "test.u16": 60000, "test.i16": -30000,
        "test.u32": 4000000000, "test.i32": -2000000000, "test.u64": 9223372036854775813,
        "test.i64": -4611686018427387907, "test.f32": float(np.float32(3.14159274)),
        "test.f64": 2.718281828459045, "test.bool": True, "test.str": "hello",
        "test.arr.u8": [0, 1, 255], "test.arr.i32": [-1, 0, 7, 2147483647],
        "test.arr.f32": [0.5, -2.25, float(np.float32(1e-3))], "test.arr.bool": [True, False, True],
        "test.arr.i64": [-(2 ** 63), -5, 2 ** 63 - 1], "test.arr.f64": [0.1, -1e300],
        "test.arr.u16": [65535, 3], "test.arr.empty": [], "test.arr.str": ["a", "", "tok\u00e9n", "<|eot|>"],
    }
    V = gguf.GGUFValueType
    want_types = {"test.u8": V.UINT8, "test.i8": V.INT8, "test.u16": V.UINT16, "test.i16": V.INT16,
                  "test.u32": V.UINT32, "test.i32": V.INT32, "test.u64": V.UINT64, "test.i64": V.INT64,
                  "test.f32": V.FLOAT32, "test.f64": V.FLOAT64, "test.bool": V.BOOL, "test.str": V.STRING}
    for key, val in want_meta.items():
        f = r.fields.get(key)
        got = f.contents() if f is not None else None
        if isinstance(got, list) and got and isinstance(got[0], float):
            got = [float(v) for v in got]
        check(got == val, f"vklm -> gguf-py metadata {key}: got {got!r}, want {val!r}")
        if key in want_types:
            check(f is not None and f.types == [want_types[key]], f"vklm -> gguf-py type of {key}: {f.types}")
    check(len(r.fields) == len(want_meta) + 3, f"vklm -> gguf-py: {len(r.fields)} fields (3 are the header)")
    tie8 = np.zeros(64, np.float32)
    tie8[:10] = [127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 3]
    tie4 = np.zeros(64, np.float32)
    tie4[:11] = [-8, 2.5, -2.5, 0.5, -0.5, 7.5, -7.5, 3.5, -3.5, 1, 6.5]
    want_t = [("token_embd.weight", Q.F32, (5, 64), lcg(320, 1)),
              ("blk.0.attn_q.weight", Q.F16, (3, 32), lcg(96, 2)),
              ("blk.0.ffn_up.weight", Q.Q8_0, (4, 96), lcg(384, 3)),
              ("blk.0.ffn_down.weight", Q.Q4_0, (6, 64), lcg(384, 4)),
              ("blk.0.attn_k.weight", Q.BF16, (2, 16), lcg(32, 5)),
              ("output_norm.weight", Q.F32, (7,), lcg(7, 6)),
              ("ties.q8_0", Q.Q8_0, (2, 32), tie8), ("ties.q4_0", Q.Q4_0, (2, 32), tie4)]
    tensors = {t.name: t for t in r.tensors}
    check(len(tensors) == len(want_t), f"vklm -> gguf-py: {len(tensors)} tensors")
    for name, qt, shape, x in want_t:
        t = tensors.get(name)
        if t is None:
            check(False, f"vklm -> gguf-py: tensor {name} missing")
            continue
        x = x.reshape(shape)
        check(t.tensor_type == qt and list(t.shape) == list(reversed(shape)),
              f"vklm -> gguf-py {name}: type {t.tensor_type.name} shape {list(t.shape)}")
        want_bytes = np.ascontiguousarray(gguf.quants.quantize(x, qt)).tobytes()
        got_bytes = np.ascontiguousarray(t.data).tobytes()
        check(got_bytes == want_bytes, f"vklm -> gguf-py {name}: bytes differ from gguf.quants.quantize")
        deq = gguf.quants.dequantize(np.ascontiguousarray(t.data).view(np.uint8).reshape(shape[:-1] + (-1,))
                                     if qt not in (Q.F32, Q.F16) else t.data, qt).astype(np.float32)
        check(np.array_equal(deq.reshape(-1), dump_f32(path, name)),
              f"vklm -> gguf-py {name}: gguf dequantize != vklm dump")
    print(f"vklm -> gguf-py: GGUFReader reads {len(want_meta)} metadata entries (all 12 value types, "
          f"arrays incl. strings and empty) and {len(want_t)} tensors; bytes == gguf.quants.quantize of "
          f"the same data (incl. rounding-tie blocks), dequantized == vklm's dump")


def test_safetensors(tmp):
    from safetensors.numpy import save_file
    rng = np.random.default_rng(2)
    arrs = {"w.f32": rng.standard_normal((3, 5)).astype(np.float32),
            "w.f16": rng.standard_normal((4, 2, 3)).astype(np.float16),
            "scalar": np.array(1.25, np.float32),
            "ids": np.arange(6, dtype=np.int32)}
    path = os.path.join(tmp, "np.safetensors")
    save_file(arrs, path, metadata={"format": "np", "note": "hello"})
    info = json.loads(vklm(path, "--json"))
    check(info["metadata"] == {"format": "np", "note": "hello"}, f"safetensors metadata: {info['metadata']}")
    tensors = {t["name"]: t for t in info["tensors"]}
    for name, a in arrs.items():
        t = tensors.get(name)
        check(t is not None and t["shape"] == list(a.shape), f"safetensors {name}: {t}")
        if a.dtype == np.int32:
            check(t is not None and not t["supported"] and t["dtype"] == "I32", "safetensors I32 reported unsupported")
            continue
        check(np.array_equal(dump_f32(path, name), a.astype(np.float32).reshape(-1)), f"safetensors {name} values")
    n_bf16 = 0
    try:
        import torch
        from safetensors.torch import save_file as save_torch
    except Exception as e:  # numpy has no bfloat16; torch is the writer for it
        print(f"safetensors BF16: SKIPPED (numpy has no bfloat16 and torch is unavailable: {e})")
    else:
        t = torch.randn(5, 7, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
        p2 = os.path.join(tmp, "bf16.safetensors")
        save_torch({"w.bf16": t}, p2)
        check(np.array_equal(dump_f32(p2, "w.bf16"), t.float().numpy().reshape(-1)), "safetensors BF16 values")
        n_bf16 = 1
    print(f"safetensors: save_file (numpy: F32, F16, a scalar, an I32 reported unsupported"
          f"{'; torch: BF16' if n_bf16 else ''}) read by vklm: shapes, metadata and values equal")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for t in (test_gguf_py_to_vklm, test_quantize_both, test_vklm_to_gguf_py, test_safetensors):
            try:
                t(tmp)
            except Exception as e:
                check(False, f"{t.__name__}: {type(e).__name__}: {e}")
    from importlib.metadata import version
    print(f"test_formats_py (gguf {version('gguf')}, safetensors {version('safetensors')}, "
          f"numpy {np.__version__}): "
          f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
