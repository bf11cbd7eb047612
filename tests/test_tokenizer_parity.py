#!/usr/bin/env python3
"""Parity of vklm's byte-level BPE with Hugging Face tokenizers (and tiktoken), offline.

usage: test_tokenizer_parity.py VKLM_BINARY

For each pre-tokenizer pattern (gpt2, cl100k, llama3, o200k), on a corpus this test builds:
  1. trains with tokenizers' BpeTrainer and with `vklm tokenizer train`: merges must be identical;
  2. loads tokenizers' tokenizer.json in vklm: ids must equal tokenizers' on a varied text set
     (scripts and languages, code, emoji, runs of spaces/newlines, long numbers, Unicode spaces,
     special tokens in the text);
  3. loads vklm's tokenizer.json in tokenizers: the same;
  4. GPT-2 files (vocab.json + merges.txt saved by tokenizers) and a tiktoken rank file made from
     the same vocabulary load in vklm and give tokenizers' / tiktoken's ids;
  5. invalid UTF-8 and NUL bytes, which tokenizers cannot take (it takes str): vklm must
     round-trip the exact bytes, and tokenizers' decode of vklm's ids must equal the bytes decoded
     with errors="replace" (what tokenizers' ByteLevel decoder does with invalid UTF-8).
Text with special tokens is encoded with specials recognised (tokenizers' default), without
post-processing (add_special_tokens=False).
"""
import base64
import json
import os
import random
import subprocess
import sys
import tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

try:
    import tiktoken
except ImportError:  # optional reference
    tiktoken = None

VKLM = sys.argv[1] if len(sys.argv) > 1 else "vklm"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PATTERNS = ["gpt2", "cl100k", "llama3", "o200k"]
FAILS = []

SAMPLES = [
    "Hello world! It's a test, isn't it? They'RE here, we'll see; I'd say 'quoted' text.",
    "The quick brown fox jumps over the lazy dog.\nNew line.\r\nCRLF line.\n\n\nThree newlines.",
    "Zahlen: 1234567890123 und 3.14159, 1e-10, -42, 007, ١٢٣٤٥ and ５６７.",
    "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "中文：我能吞下玻璃而不伤身体。日本語：私はガラスを食べられます。それは私を傷つけません。",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요.",
    "العربية: أنا قادر على أكل الزجاج و هذا لا يؤلمني. עברית: אני יכול לאכול זכוכית",
    "हिन्दी: मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती. ไทย: ฉันกินกระจกได้",
    "Emoji: 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🏳️‍🌈 and text😀after",
    "def f(x):\n    return x ** 2  # comment\n\n\tif x:\n\t\tpass\n",
    "int main(void) {\n  for (int i = 0; i < 10; i++) printf(\"%d\\n\", i);\n  return 0;\n}\n",
    '{"key": [1, 2, 3], "nested": {"a": null, "b": true}, "s": "x\\ny"}',
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "spaces:    four   three  two end   \n   \n\t\t  \n",
    "trailing spaces     ",
    "     leading spaces",
    "\n\n\n\n",
    " ",
    "a",
    "",
    "Unicode spaces:\u00a0nbsp\u3000ideographic\u2028line\u2029para\u0085nel\u2009thin\u200bzw.",
    "combining: e\u0301 a\u0308 n\u0303 Z\u0335\u0321a\u0334l\u0338go",
    "specials: <|endoftext|>Next doc <|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    "not special: <|endoftext <|unknown|> <|im_start",
    "CamelCaseWordsAndALLCAPS and mixedCASE, HTTPServer, iPhone's",
    "URLs: https://example.com/path?q=1&r=2#frag, user@example.org",
    "Math: ∑ x² ≤ ∞, α+β=γ, ∀ε>0 ∃δ",
    "Long word: " + "antidisestablishmentarianism" * 5,
    "Repeated: " + "ab" * 200 + " " + "aaaa" * 100,
    "digits " + "9876543210" * 20,
    "tab\tseparated\tvalues\t1\t2\n",
    "Mixed 中文English混合text русский123",
    "Punctuation!!! ??? ... --- *** ((())) [[]] {{}} ''' \"\"\" ```",
    "Control chars: \x01\x02\x1b[31mred\x1b[0m \x7f",
    "Fullwidth：ＡＢＣ１２３ halfwidth ｶﾀｶﾅ",
    "o'clock ma'am y'all rock'n'roll 'tis",
    "   \n",
    "\r\n\r\n",
    "x\n y\n  z\n   w",
]


def build_corpus(seed=1234, n_docs=3000):
    rnd = random.Random(seed)
    words = []
    for s in SAMPLES:
        words += s.split()
    docs = list(SAMPLES)
    for _ in range(n_docs):
        k = rnd.randint(3, 60)
        parts = []
        for _ in range(k):
            r = rnd.random()
            if r < 0.05:
                parts.append(str(rnd.randint(0, 10 ** rnd.randint(1, 12))))
            elif r < 0.08:
                parts.append(rnd.choice(["\n", "\n\n", "  ", "\t", " \n "]))
            else:
                parts.append(rnd.choice(words))
        docs.append(" ".join(parts))
    return docs


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        FAILS.append(what)
    return cond


def vklm(*args, input_bytes=None):
    r = subprocess.run([VKLM, "tokenizer", *args], input=input_bytes, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"vklm {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def vklm_encode_many(tok_args, texts, d):
    path = os.path.join(d, "texts.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    out = vklm("encode", *tok_args, "--jsonl", path).decode().split("\n")
    return [[int(x) for x in line.split()] for line in out[: len(texts)]]


def hf_tokenizer(pattern_regex, gpt2):
    tok = Tokenizer(models.BPE())
    if gpt2:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern_regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tok


def compare_ids(name, ref, got, texts):
    bad = [i for i in range(len(texts)) if ref[i] != got[i]]
    check(not bad, f"{name}: identical ids on {len(texts) - len(bad)}/{len(texts)} texts")
    for i in bad[:3]:
        print(f"      text {texts[i][:60]!r}\n      ref {ref[i][:20]}\n      got {got[i][:20]}")


def run_pattern(pattern, docs, texts, d):
    print(f"--- pattern {pattern}")
    corpus = os.path.join(d, "corpus.jsonl")
    vk_json = os.path.join(d, f"vklm_{pattern}.json")
    vocab = 4000
    vklm("train", "-o", vk_json, "--vocab-size", str(vocab), "--pattern", pattern,
         *sum([["--special", s] for s in SPECIALS], []), corpus)
    vk_cfg = json.load(open(vk_json, encoding="utf-8"))
    pre = vk_cfg["pre_tokenizer"]
    gpt2 = pre["type"] == "ByteLevel"
    regex = None if gpt2 else pre["pretokenizers"][0]["pattern"]["Regex"]

    hf = hf_tokenizer(regex, gpt2)
    tr = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(docs, trainer=tr)
    hf_json = os.path.join(d, f"hf_{pattern}.json")
    hf.save(hf_json)
    hm = json.loads(hf.to_str())["model"]["merges"]
    vm = vk_cfg["model"]["merges"]
    check(hm == vm, f"{pattern}: vklm-trained merges identical to BpeTrainer ({len(vm)} vs {len(hm)})")
    hv = json.loads(hf.to_str())["model"]["vocab"]
    check(hv == vk_cfg["model"]["vocab"], f"{pattern}: vklm-trained vocabulary identical ({len(hv)} tokens)")

    ref = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    compare_ids(f"{pattern}: HF tokenizer.json in vklm", ref, vklm_encode_many(["-t", hf_json], texts, d), texts)
    vk_in_hf = Tokenizer.from_file(vk_json)
    ref2 = [e.ids for e in vk_in_hf.encode_batch(texts, add_special_tokens=False)]
    compare_ids(f"{pattern}: vklm tokenizer.json in HF", ref2, vklm_encode_many(["-t", vk_json], texts, d), texts)

    # specials off: their text is ordinary text (tokenizers: encode_special_tokens=True)
    hf.encode_special_tokens = True
    ref3 = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    compare_ids(f"{pattern}: --no-specials vs encode_special_tokens", ref3,
                vklm_encode_many(["-t", hf_json, "--no-specials"], texts, d), texts)
    hf.encode_special_tokens = False

    if pattern == "gpt2":  # GPT-2 files
        gdir = os.path.join(d, "gpt2files")
        os.makedirs(gdir, exist_ok=True)
        hf.model.save(gdir)
        got = vklm_encode_many(["--vocab", os.path.join(gdir, "vocab.json"), "--merges",
                                os.path.join(gdir, "merges.txt")], texts, d)
        # the reference: the same two files in tokenizers; only <|endoftext|> is special there
        g = Tokenizer(models.BPE.from_file(os.path.join(gdir, "vocab.json"), os.path.join(gdir, "merges.txt")))
        g.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        g.decoder = decoders.ByteLevel()
        g.add_special_tokens(["<|endoftext|>"])
        gref = [e.ids for e in g.encode_batch(texts, add_special_tokens=False)]
        compare_ids("gpt2: vocab.json+merges.txt in vklm", gref, got, texts)

    # tiktoken rank file from the same vocabulary (ranks = ids; specials after)
    byte_dec = {}
    bl = pre_tokenizers.ByteLevel.alphabet()
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_dec = {chr(c): b for b, c in zip(bs, cs)}
    assert set(byte_dec) == set(bl)
    ranks = {bytes(byte_dec[ch] for ch in tok): i for tok, i in hv.items() if tok not in SPECIALS}
    # re-rank densely after the specials (ids 0..2 are specials in this vocabulary)
    order = sorted(ranks.items(), key=lambda kv: kv[1])
    ranks = {tok: r for r, (tok, _) in enumerate(order)}
    tt_path = os.path.join(d, f"{pattern}.tiktoken")
    with open(tt_path, "w") as f:
        for tok, r in ranks.items():
            f.write(f"{base64.b64encode(tok).decode()} {r}\n")
    pat = regex if regex else vk_cfg_pattern_gpt2()
    got = vklm_encode_many(["--tiktoken", tt_path, "--regex", pat,
                            *sum([["--special", s] for s in SPECIALS], [])], texts, d)
    if tiktoken is not None:
        enc = tiktoken.Encoding(name=f"t_{pattern}", pat_str=pat, mergeable_ranks=ranks,
                                special_tokens={s: len(ranks) + i for i, s in enumerate(SPECIALS)})
        tref = [enc.encode(t, allowed_special="all") for t in texts]
        compare_ids(f"{pattern}: tiktoken file in vklm vs tiktoken", tref, got, texts)
    else:
        print("skip  tiktoken not installed")

    # invalid UTF-8 and NULs: exact round trip in vklm; tokenizers' decode of vklm's ids equals
    # the bytes with invalid sequences replaced
    rnd = random.Random(7 + len(pattern))
    blobs = [b"abc\xff\xfedef", b"\xc3(", b"\xe2\x82", b"caf\xc3\xa9 \xed\xa0\x80 x", b"\x00\x00 nul\x00",
             b"\xf0\x9f\x98 broken emoji \xf0\x9f\x98\x80", b"\x80" * 50, b"  \xff  \n\xfe\n",
             "ok <|endoftext|> ".encode() + b"\xc0\xaf"] + \
            [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))) for _ in range(40)]
    ok_rt = ok_hf = 0
    for i, blob in enumerate(blobs):
        p = os.path.join(d, "blob.bin")
        with open(p, "wb") as f:
            f.write(blob)
        ids = [int(x) for x in vklm("encode", "-t", hf_json, p).split()]
        back = vklm("decode", "-t", hf_json, *map(str, ids)) if ids else b""
        ok_rt += back == blob
        ok_hf += hf.decode(ids, skip_special_tokens=False) == blob.decode("utf-8", errors="replace")
    check(ok_rt == len(blobs), f"{pattern}: invalid UTF-8/NUL exact byte round trip {ok_rt}/{len(blobs)}")
    check(ok_hf == len(blobs), f"{pattern}: HF decode(vklm ids) == bytes.decode(errors='replace') {ok_hf}/{len(blobs)}")


def run_variants(texts, d):
    """Pre-tokenizer and added-token variants on one trained model: tokenizers' tokenizer.json
    loaded in vklm must give tokenizers' ids. Covers Oniguruma-only syntax ({n,m}+ as a repeated
    group, \\h as hex digit, $ as end of line, {,n}), every Split behavior, invert, String
    patterns, Digits, ByteLevel's add_prefix_space, NFC/NFKC/NFD normalizers, ignore_merges, and
    lstrip/rstrip/single_word and non-special added tokens."""
    print("--- pre-tokenizer / added-token variants")
    base = Tokenizer.from_file(os.path.join(d, "hf_llama3.json"))
    S, BL = pre_tokenizers.Split, pre_tokenizers.ByteLevel
    variants = {
        "N{1,3}+": [S(Regex(r"\p{N}{1,3}+"), "isolated"), BL(add_prefix_space=False, use_regex=True)],
        "hex \\h, {,2}": [S(Regex(r"\h+|x{,2}"), "isolated"), BL(add_prefix_space=False, use_regex=True)],
        "$ merged_with_previous": [S(Regex(r"\s+$"), "merged_with_previous"), BL(add_prefix_space=False)],
        "^ merged_with_next": [S(Regex(r"^\s*\p{L}"), "merged_with_next"), BL(add_prefix_space=False)],
        "contiguous": [S(Regex(r"\p{P}"), "contiguous"), BL(add_prefix_space=False, use_regex=False)],
        "removed": [S(Regex(r"\s+"), "removed"), BL(add_prefix_space=False, use_regex=False)],
        "invert": [S(Regex(r"\w+|[^\w\s]+"), "isolated", invert=True), BL(add_prefix_space=False)],
        "String": [S(" ", "merged_with_next"), BL(add_prefix_space=False, use_regex=False)],
        "Digits": [pre_tokenizers.Digits(individual_digits=True), BL(add_prefix_space=False)],
        "Digits runs": [pre_tokenizers.Digits(individual_digits=False), BL(add_prefix_space=False)],
        "add_prefix_space": [BL(add_prefix_space=True, use_regex=True)],
        "(?m) dotall, \\S": [S(Regex(r"(?m:a.b)|\S+"), "isolated"), BL(add_prefix_space=False, use_regex=False)],
    }
    for name, seq in variants.items():
        t = Tokenizer.from_str(base.to_str())
        t.pre_tokenizer = pre_tokenizers.Sequence(seq) if len(seq) > 1 else seq[0]
        p = os.path.join(d, "variant.json")
        t.save(p)
        ref = [e.ids for e in t.encode_batch(texts, add_special_tokens=False)]
        compare_ids(f"variant {name}", ref, vklm_encode_many(["-t", p], texts, d), texts)
    # Unicode normalizers (Qwen2 uses NFC)
    from tokenizers import normalizers
    for name, norm in {"NFC": normalizers.NFC(), "NFKC": normalizers.NFKC(), "NFD": normalizers.NFD(),
                       "Sequence[NFD, NFKC]": normalizers.Sequence([normalizers.NFD(), normalizers.NFKC()])}.items():
        t = Tokenizer.from_str(base.to_str())
        t.normalizer = norm
        p = os.path.join(d, "variant.json")
        t.save(p)
        ref = [e.ids for e in t.encode_batch(texts, add_special_tokens=False)]
        compare_ids(f"variant normalizer {name}", ref, vklm_encode_many(["-t", p], texts, d), texts)
    # ignore_merges (Llama 3 sets it)
    cfg = json.loads(base.to_str())
    cfg["model"]["ignore_merges"] = True
    t = Tokenizer.from_str(json.dumps(cfg))
    p = os.path.join(d, "variant.json")
    t.save(p)
    ref = [e.ids for e in t.encode_batch(texts, add_special_tokens=False)]
    compare_ids("variant ignore_merges", ref, vklm_encode_many(["-t", p], texts, d), texts)
    # added tokens: non-special, lstrip/rstrip, single_word
    from tokenizers import AddedToken
    t = Tokenizer.from_str(base.to_str())
    t.add_tokens([AddedToken("<tool>", lstrip=True, rstrip=True), "hello", AddedToken("the", single_word=True),
                  AddedToken("[MASK]", special=True, lstrip=True)])
    t.save(p)
    extra = texts + ["x  <tool>  y", "hello<tool>hello", "the other the, bathe them the", "a [MASK] b  [MASK]"]
    ref = [e.ids for e in t.encode_batch(extra, add_special_tokens=False)]
    compare_ids("variant added tokens", ref, vklm_encode_many(["-t", p], extra, d), extra)


def run_real_llama(texts, d):
    """Optional: the real Llama 3 / Llama 4 rank files shipped in the llama-models package (not in
    requirements-test.txt: heavy dependencies), against tiktoken. Skipped when absent."""
    import importlib.util
    spec = importlib.util.find_spec("llama_models")
    if spec is None or tiktoken is None:
        print("skip  real Llama 3/4 rank files (pip install llama-models to run this check)")
        return
    root = os.path.dirname(spec.origin)
    for name, pattern in (("llama3", "llama3"), ("llama4", "o200k")):
        model = os.path.join(root, name, "tokenizer.model")
        if not os.path.exists(model):
            continue
        ranks = {}
        with open(model, "rb") as f:
            for line in f:
                if line.strip():
                    tok, r = line.split()
                    ranks[base64.b64decode(tok)] = int(r)
        sp = ["<|begin_of_text|>", "<|end_of_text|>"]
        vklm("convert", "--tiktoken", model, "--pattern", pattern, *sum([["--special", x] for x in sp], []),
             "-o", os.path.join(d, "real.json"))
        pat = json.load(open(os.path.join(d, "real.json"), encoding="utf-8"))["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
        enc = tiktoken.Encoding(name=name, pat_str=pat, mergeable_ranks=ranks,
                                special_tokens={x: len(ranks) + i for i, x in enumerate(sp)})
        ref = [enc.encode(t, allowed_special="all") for t in texts]
        got = vklm_encode_many(["--tiktoken", model, "--pattern", pattern, *sum([["--special", x] for x in sp], [])],
                               texts, d)
        compare_ids(f"real {name} rank file in vklm vs tiktoken", ref, got, texts)
        hf = Tokenizer.from_file(os.path.join(d, "real.json"))
        compare_ids(f"real {name} converted by vklm, in tokenizers, vs tiktoken", ref,
                    [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)], texts)


def vk_cfg_pattern_gpt2():
    return r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def main():
    docs = build_corpus()
    texts = list(SAMPLES) + build_corpus(seed=99, n_docs=150)[len(SAMPLES):]
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "corpus.jsonl"), "w", encoding="utf-8") as f:
            for doc in docs:
                f.write(json.dumps({"text": doc}) + "\n")
        print(f"corpus: {len(docs)} documents, {sum(len(x.encode()) for x in docs)} bytes; "
              f"test set: {len(texts)} texts")
        for p in PATTERNS:
            run_pattern(p, docs, texts, d)
        run_variants(texts, d)
        run_real_llama(texts, d)
    print(f"{'FAILED' if FAILS else 'PASSED'}: {len(FAILS)} failing checks")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
