"""`vklm serve` through the official `openai` Python client: completions and chat, streaming and
not (the role in the first delta, finish_reason and usage in the last, [DONE]), replies equal to
`vklm generate` with the same seed and settings, stop strings, n > 1, log-probs (generated and
echoed prompt tokens, consistent with each other), every kind of bad request answered 4xx with an
OpenAI error object, the API key, /tokenize /detokenize /metrics /health, UTF-8 never split in a
stream, 16 simultaneous streaming clients each equal to the same request served alone, and a
graceful SIGTERM with a stream in flight. Usage: test_serve.py vklm"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import openai

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Checks, Server, tiny_model  # noqa: E402

vklm = sys.argv[1]
check = Checks()
t_start = time.time()
model = tiny_model(vklm)
print(f"tiny model ready in {time.time() - t_start:.1f} s")

SAMPLING = dict(temperature=0.9, top_p=0.95, extra_body={"top_k": 40, "min_p": 0.05})


def generate(prompt, n, *flags):
    r = subprocess.run([vklm, "generate", "-m", model, "-p", prompt, "-n", str(n), "--no-echo",
                        *flags], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout[:-1]  # generate ends its output with a newline


def raw_stream(srv, path, body):
    """The SSE body as raw bytes, and the parsed events."""
    req = urllib.request.Request(srv.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        ctype = r.headers.get("Content-Type", "")
        raw = r.read()
    events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
    return ctype, raw, events


with Server(vklm, model, "-np", "8", "-c", "256") as srv:
    cl = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=120)
    st, body = srv.get("/health")
    check(st == 200 and json.loads(body)["status"] == "ok", f"/health 200 ok: {body[:60]!r}")
    ms = cl.models.list()
    check(len(ms.data) == 1 and ms.data[0].id, f"/v1/models lists the model: {ms.data[0].id}")

    # ---- completions equal `vklm generate` ----
    for seed in (7, 11):
        want = generate("the cat sat", 24, "--seed", str(seed), "--temp", "0.9", "--top-k", "40",
                        "--top-p", "0.95", "--min-p", "0.05")
        r = cl.completions.create(model="x", prompt="the cat sat", max_tokens=24, seed=seed,
                                  **SAMPLING)
        check(r.choices[0].text == want and len(want) > 0,
              f"completion (seed {seed}) equals vklm generate: {r.choices[0].text[:50]!r}")
    want_greedy = generate("the dog", 20, "--temp", "0")
    r = cl.completions.create(model="x", prompt="the dog", max_tokens=20, temperature=0)
    check(r.choices[0].text == want_greedy, f"greedy completion equals vklm generate: {want_greedy[:40]!r}")
    ntok = len(json.loads(srv.post("/tokenize", '{"content": "the dog"}')[1])["tokens"])
    check(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 20 and
          r.usage.prompt_tokens == ntok and r.usage.total_tokens == 20 + ntok,
          f"finish_reason length and usage: {r.usage}")
    # streaming: the same text, finish_reason and usage in the last chunk
    chunks = list(cl.completions.create(model="x", prompt="the dog", max_tokens=20, temperature=0,
                                        stream=True))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    check(text == want_greedy, "streamed completion equals the non-streamed one")
    check(chunks[-1].choices[0].finish_reason == "length" and chunks[-1].usage is not None and
          chunks[-1].usage.completion_tokens == 20 and
          all(c.choices[0].finish_reason is None for c in chunks[:-1]),
          "finish_reason and usage in the last chunk only")
    # stop strings, as vklm generate --stop
    want = generate("the cat sat", 40, "--temp", "0", "--stop", " happy")
    r = cl.completions.create(model="x", prompt="the cat sat", max_tokens=40, temperature=0,
                              stop=[" happy", "zzz"])
    check(r.choices[0].text == want and "happy" not in r.choices[0].text and
          r.choices[0].finish_reason == "stop",
          f"stop string ends the reply (finish_reason stop), as generate --stop: {want!r}")
    chunks = list(cl.completions.create(model="x", prompt="the cat sat", max_tokens=40,
                                        temperature=0, stop=" happy", stream=True))
    check("".join(c.choices[0].text for c in chunks) == want and
          chunks[-1].choices[0].finish_reason == "stop", "streamed stop string: the same")
    # n > 1: choice i uses seed + i; choice 0 is the n = 1 reply
    r1 = cl.completions.create(model="x", prompt="the fox", max_tokens=16, seed=3, **SAMPLING)
    rn = cl.completions.create(model="x", prompt="the fox", max_tokens=16, seed=3, n=3, **SAMPLING)
    check([c.index for c in rn.choices] == [0, 1, 2] and rn.choices[0].text == r1.choices[0].text,
          f"n=3: three choices, the first equal to n=1: {[c.text[:20] for c in rn.choices]}")
    check(r1.usage.completion_tokens < rn.usage.completion_tokens <= 48,
          f"usage counts the tokens of every choice: {rn.usage.completion_tokens}")
    r2 = cl.completions.create(model="x", prompt="the fox", max_tokens=16, seed=4, **SAMPLING)
    check(rn.choices[1].text == r2.choices[0].text, "choice 1 equals seed + 1 alone")
    chunks = list(cl.completions.create(model="x", prompt="the fox", max_tokens=16, seed=3, n=3,
                                        stream=True, **SAMPLING))
    per = ["", "", ""]
    for c in chunks:
        for ch in c.choices:
            per[ch.index] += ch.text
    check(per == [c.text for c in rn.choices], "streamed n=3 equals non-streamed n=3")

    # ---- log-probs ----
    r = cl.completions.create(model="x", prompt="the cat", max_tokens=6, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    check(len(lp.tokens) == 6 and len(lp.token_logprobs) == 6 and
          all(len(t) == 3 for t in lp.top_logprobs) and all(v <= 0 for v in lp.token_logprobs),
          f"completion logprobs: 6 tokens, top 3 each: {lp.tokens}")
    check(all(abs(max(t.values()) - v) < 1e-5 for t, v in zip(lp.top_logprobs, lp.token_logprobs)),
          "greedy tokens are each the top log-prob")
    gen_sat = lp.token_logprobs[0]
    ids = json.loads(srv.post("/tokenize", '{"content": "the cat"}')[1])["tokens"]
    idx = json.loads(srv.post("/tokenize", json.dumps({"content": "the cat" + lp.tokens[0]}))[1])
    ext = idx["tokens"]
    check(ext[:len(ids)] == ids and len(ext) == len(ids) + 1,
          f"the greedy token extends the prompt's ids by one: {ids} + {ext[len(ids):]}")
    e = cl.completions.create(model="x", prompt=ext, max_tokens=0, echo=True, logprobs=1)
    el = e.choices[0].logprobs
    check(e.choices[0].text == "the cat" + lp.tokens[0] and el.token_logprobs[0] is None and
          len(el.tokens) == len(ext) and e.usage.completion_tokens == 0 and
          all(v is not None and v <= 0 for v in el.token_logprobs[1:]),
          f"echo of token ids with max_tokens 0: the prompt's log-probs (first null): "
          f"{[round(v, 4) if v is not None else v for v in el.token_logprobs]}")
    check(abs(el.token_logprobs[-1] - gen_sat) < 1e-3,
          f"a prompt token's log-prob equals the same token's when generated "
          f"({el.token_logprobs[-1]:.6f} vs {gen_sat:.6f})")
    c = cl.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}],
                                   max_tokens=5, temperature=0, logprobs=True, top_logprobs=2)
    cc = c.choices[0].logprobs.content
    check(len(cc) == c.usage.completion_tokens and all(len(t.top_logprobs) == 2 for t in cc) and
          all(t.logprob <= 0 and isinstance(t.bytes, list) for t in cc),
          f"chat logprobs: one entry per token, top 2: {[t.token for t in cc]}")

    # ---- chat ----
    msgs = [{"role": "system", "content": "you are a cat"}, {"role": "user", "content": "the cat"}]
    c = cl.chat.completions.create(model="x", messages=msgs, max_tokens=12, seed=5, **SAMPLING)
    check(c.object == "chat.completion" and c.choices[0].message.role == "assistant" and
          c.choices[0].finish_reason in ("stop", "length") and c.usage.prompt_tokens > 10,
          f"chat completion: {c.choices[0].message.content[:50]!r}, {c.usage}")
    chunks = list(cl.chat.completions.create(model="x", messages=msgs, max_tokens=12, seed=5,
                                             stream=True, **SAMPLING))
    check(chunks[0].choices[0].delta.role == "assistant" and
          "".join(ch.choices[0].delta.content or "" for ch in chunks) == c.choices[0].message.content
          and chunks[-1].choices[0].finish_reason == c.choices[0].finish_reason and
          chunks[-1].usage.completion_tokens == c.usage.completion_tokens,
          "streamed chat: role first, the same text, finish_reason and usage last")
    c2 = cl.chat.completions.create(model="x", messages=[{"role": "user", "content": [
        {"type": "text", "text": "the "}, {"type": "text", "text": "cat"}]}], max_tokens=4)
    check(c2.choices[0].message.content is not None, "content as a list of text parts")
    ctype, raw, events = raw_stream(srv, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True})
    check(ctype.startswith("text/event-stream") and events[-1] == b"[DONE]" and
          raw.endswith(b"data: [DONE]\n\n"), "SSE: text/event-stream, ends with data: [DONE]")

    # ---- UTF-8 is never split: every event strict UTF-8 and JSON, at temperature 2 ----
    ok = True
    for seed in range(4):
        body = {"prompt": "caf\u00e9 \u65e5", "max_tokens": 40, "temperature": 2, "top_k": 0,
                "top_p": 1, "seed": seed, "stream": True}
        _, raw, events = raw_stream(srv, "/v1/completions", body)
        try:
            text = "".join(json.loads(e.decode("utf-8", "strict"))["choices"][0]["text"]
                           for e in events[:-1])
        except (UnicodeDecodeError, ValueError):
            ok = False
            break
        body["stream"] = False
        st, whole = srv.post("/v1/completions", json.dumps(body))
        ok &= json.loads(whole)["choices"][0]["text"] == text
    check(ok, "multi-byte text at temperature 2: every SSE event is valid UTF-8 JSON, and the "
              "pieces join to the non-streamed text")
    # tokens that are lone bytes of no valid character (0xC0, 0xF8, ...; partial characters)
    # echoed back: the JSON stays strict UTF-8, the bytes become U+FFFD
    odd = [i for i in range(300) if "\ufffd" in json.loads(srv.post(
        "/detokenize", json.dumps({"tokens": [i]}))[1])["content"]]
    body = {"prompt": (odd + odd[::-1])[:200], "max_tokens": 3, "echo": True, "logprobs": 2,
            "temperature": 0}
    st, whole = srv.post("/v1/completions", json.dumps(body))
    body["stream"] = True
    _, raw, events = raw_stream(srv, "/v1/completions", body)
    try:
        whole.decode("utf-8", "strict")
        raw.decode("utf-8", "strict")
        j = json.loads(whole)
        ok = st == 200 and j["choices"][0]["text"].startswith("\ufffd")
    except (UnicodeDecodeError, ValueError, KeyError):
        ok = False
    check(ok and len(odd) > 60, f"{len(odd)} lone-byte tokens echoed: strict UTF-8 JSON, U+FFFD "
                                f"for the bytes, streaming or not")

    # ---- errors: 4xx with an OpenAI error object ----
    def err(fn, exc, what):
        try:
            fn()
            check(False, what + ": no error")
        except exc as e:
            body = e.body if isinstance(e.body, dict) else {}
            check("message" in body and "type" in body, f"{what}: {type(e).__name__} "
                  f"{e.status_code}: {body.get('message', '')[:70]}")

    P = dict(model="x", prompt="the cat")
    err(lambda: cl.completions.create(**P, max_tokens=-1), openai.BadRequestError, "max_tokens -1")
    err(lambda: cl.completions.create(**P, max_tokens=10**9), openai.BadRequestError, "max_tokens 1e9")
    err(lambda: cl.completions.create(**P, temperature=7), openai.BadRequestError, "temperature 7")
    err(lambda: cl.completions.create(**P, n=1000), openai.BadRequestError, "n 1000")
    err(lambda: cl.completions.create(**P, extra_body={"top_p": "high"}), openai.BadRequestError,
        "top_p a string")
    err(lambda: cl.completions.create(**P, extra_body={"max_tokens": 1.5}), openai.BadRequestError,
        "max_tokens 1.5")
    err(lambda: cl.completions.create(model="x", prompt="the " * 400), openai.BadRequestError,
        "a prompt longer than the context")
    err(lambda: cl.completions.create(model="x", prompt=[5, 99999]), openai.BadRequestError,
        "a token id outside the vocabulary")
    err(lambda: cl.completions.create(**P, stop=[""]), openai.BadRequestError, "an empty stop")
    err(lambda: cl.chat.completions.create(model="x", messages=[{"role": "wizard", "content": "x"}]),
        openai.BadRequestError, "an unknown role")
    err(lambda: cl.chat.completions.create(model="x", messages=[]), openai.BadRequestError,
        "no messages")
    err(lambda: cl.chat.completions.create(model="x", messages=[{"role": "user", "content": 5}]),
        openai.BadRequestError, "content a number")
    try:
        cl.completions.create(model="x", prompt="the " * 400)
    except openai.BadRequestError as e:
        check(e.code == "context_length_exceeded", f"over-long prompt: code {e.code}")
    st, b = srv.post("/v1/completions", '{"prompt": "x", ')
    check(st == 400 and "error" in json.loads(b), f"malformed JSON: 400 {b[:70]!r}")
    st, b = srv.post("/v1/completions", b'{"prompt": "\xff\xfe"}')
    check(st == 400 and "UTF-8" in json.loads(b)["error"]["message"], "invalid UTF-8: 400")
    st, b = srv.post("/v1/nothing", "{}")
    check(st == 404 and "error" in json.loads(b), "unknown endpoint: 404")
    st, b = srv.get("/v1/completions")
    check(st == 405, "GET on a POST endpoint: 405")

    # ---- tokenize / detokenize / metrics ----
    t = json.loads(srv.post("/tokenize", '{"content": "the cat sat"}')[1])["tokens"]
    d = json.loads(srv.post("/detokenize", json.dumps({"tokens": t}))[1])["content"]
    check(len(t) >= 3 and d == "the cat sat", f"/tokenize then /detokenize round-trips: {t}")
    st, b = srv.post("/detokenize", '{"tokens": [1, -5]}')
    check(st == 400, "/detokenize of a bad id: 400")
    st, m = srv.get("/metrics")
    m = m.decode()
    vals = {ln.split()[0]: float(ln.split()[1]) for ln in m.splitlines() if ln and ln[0] != "#"}
    check(st == 200 and vals.get("vklm_requests_total", 0) >= 20 and
          vals.get("vklm_tokens_generated_total", 0) > 200 and
          vals.get("vklm_request_errors_total", 0) >= 14 and vals.get("vklm_slots_total") == 8 and
          "vklm_queue_length" in vals and "vklm_tokens_per_second" in vals,
          f"/metrics (Prometheus text): requests {vals.get('vklm_requests_total')}, tokens "
          f"{vals.get('vklm_tokens_generated_total')}, errors {vals.get('vklm_request_errors_total')}")

    # ---- 16 simultaneous streaming clients, each equal to the same request alone ----
    reqs = [dict(model="x", prompt=f"the {['cat', 'dog', 'owl', 'cow'][i % 4]} sat with",
                 max_tokens=24 + (i % 5) * 4, seed=100 + i, **SAMPLING) for i in range(16)]
    alone = [cl.completions.create(**q).choices[0].text for q in reqs]
    got = [None] * 16
    barrier = threading.Barrier(16)

    def client(i):
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=120)
        barrier.wait()
        got[i] = "".join(ch.choices[0].text for ch in c.completions.create(**reqs[i], stream=True))

    t0 = time.time()
    ths = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    same = sum(g == a for g, a in zip(got, alone))
    check(same == 16, f"16 simultaneous streams (8 slots, 8 queued) each equal the request served "
                      f"alone: {same}/16 in {time.time() - t0:.2f} s")

    # ---- SIGTERM with a stream in flight: it ends with a finish_reason and [DONE] ----
    result = {}

    def long_stream():
        try:
            _, raw, events = raw_stream(srv, "/v1/completions", {
                "prompt": "the", "max_tokens": 250, "temperature": 1, "stream": True,
                "stop": None})
            result["events"] = events
        except Exception as e:  # noqa: BLE001
            result["error"] = repr(e)

    th = threading.Thread(target=long_stream)
    th.start()
    time.sleep(0.3)
    t0 = time.time()
    rc = srv.stop(signal.SIGTERM)
    th.join(30)
    ev = result.get("events", [])
    last = json.loads(ev[-2]) if len(ev) >= 2 else {}
    check(rc == 0 and time.time() - t0 < 15 and ev and ev[-1] == b"[DONE]" and
          last.get("choices", [{}])[0].get("finish_reason") in ("length", "stop"),
          f"SIGTERM: exit {rc} in {time.time() - t0:.2f} s; the stream in flight ended with "
          f"finish_reason and [DONE] ({len(ev)} events) {result.get('error', '')}")
    check("stopped" in srv.log() and "validation" not in srv.log(),
          "the server says it stopped; no validation message")

# ---- the API key ----
with Server(vklm, model, "-np", "2", "-c", "128", "--api-key", "s3cret-key") as srv:
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
    good = openai.OpenAI(base_url=srv.url + "/v1", api_key="s3cret-key", max_retries=0)
    try:
        bad.completions.create(model="x", prompt="the", max_tokens=2)
        check(False, "a wrong API key is refused")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, "a wrong API key: 401 authentication_error")
    st, _ = srv.get("/v1/models")
    check(st == 401, "no API key: 401 on every endpoint (here /v1/models)")
    st, _ = srv.get("/health")
    check(st == 200, "/health needs no key")
    r = good.completions.create(model="x", prompt="the", max_tokens=2)
    check(len(r.choices) == 1, "the right API key is accepted")
    st, _ = srv.get("/v1/models", headers={"Authorization": "Bearer s3cret-kez"})
    st2, _ = srv.get("/v1/models", headers={"Authorization": "Bearer s3cret-key-and-more"})
    check(st == 401 and st2 == 401, "a key differing in its last byte, or longer: 401")
    check(srv.stop() == 0 and "validation" not in srv.log(), "exit 0; no validation message")

print(f"test_serve: {time.time() - t_start:.1f} s")
check.done("test_serve")
