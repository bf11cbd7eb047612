"""`vklm serve` against hostile clients on loopback, bounded in count and time: slow-loris
connections (stalled headers and stalled bodies) closed by the idle timeout while others are
served, truncated bodies, 10 MB bodies (by Content-Length and chunked), deeply nested JSON,
negative / huge / non-finite / wrongly typed numbers, invalid UTF-8 (body, header, path), a
burst of 2,000 requests from 32 threads plus 300 simultaneous connections; throughout, the
server keeps answering, its resident memory stays bounded (measured), a reply after it all
equals the one before, and SIGTERM ends it cleanly. Usage: test_serve_hostile.py vklm"""
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Checks, Server, tiny_model  # noqa: E402

vklm = sys.argv[1]
check = Checks()
t_start = time.time()
model = tiny_model(vklm)
GOOD = json.dumps({"prompt": "the cat sat", "max_tokens": 12, "temperature": 0})


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raw(port, data, read=True, timeout=10, shut=False):
    """Sends raw bytes; returns what came back (b"" when the server closed first)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        if not read:
            return b""
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            out += b
            if b"\r\n\r\n" in out and b"Content-Length" in out.split(b"\r\n\r\n")[0]:
                head, body = out.split(b"\r\n\r\n", 1)
                n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0]
                        .split(b":")[1])
                if len(body) >= n:
                    break
        return out
    finally:
        s.close()


def status(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def post(path, body, extra=b""):
    b = body if isinstance(body, bytes) else body.encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\nConnection: close\r\n").encode() + extra + b"\r\n" + b


def metric(srv, name):
    _, m = srv.get("/metrics")
    for line in m.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


with Server(vklm, model, "-np", "2", "-c", "4096", "--timeout", "2", "--queue", "8") as srv:
    pid = srv.proc.pid
    st, before = srv.post("/v1/completions", GOOD)
    before = json.loads(before)["choices"][0]["text"]
    rss0 = rss_kb(pid)
    print(f"resident memory at start: {rss0 / 1024:.1f} MiB")

    # ---- slow-loris: 40 stalled connections; others are served; the stalled ones are closed ----
    lor = []
    for i in range(40):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        if i % 2:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")  # headers never end
        else:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"pr")
        lor.append(s)
    t0 = time.time()
    st, b = srv.post("/v1/completions", GOOD, timeout=10)
    check(st == 200 and json.loads(b)["choices"][0]["text"] == before,
          f"with 40 slow-loris connections open, a request is served ({time.time() - t0:.2f} s)")
    time.sleep(3.5)  # the idle timeout is 2 s
    closed = 0
    for s in lor:
        s.settimeout(2)
        try:
            s.recv(1024)  # b"" (closed) or an error answer; a timeout: still open
            closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except socket.timeout:
            pass
        s.close()
    check(closed == 40, f"the idle timeout closed the stalled connections: {closed}/40")

    # ---- clients that hang up mid-reply free their slot at once (streaming or not) ----
    for stream in (False, True):
        g0 = metric(srv, "vklm_tokens_generated_total")
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(post("/v1/completions", json.dumps({
            "prompt": "the", "max_tokens": 3000, "ignore_eos": True, "stream": stream})))
        t0 = time.time()
        while metric(srv, "vklm_slots_busy") != 1 and time.time() - t0 < 10:
            time.sleep(0.02)
        time.sleep(0.2)
        s.close()
        t0 = time.time()
        while metric(srv, "vklm_slots_busy") != 0 and time.time() - t0 < 10:
            time.sleep(0.02)
        dt = time.time() - t0
        gen = metric(srv, "vklm_tokens_generated_total") - g0
        check(dt < 1 and 0 < gen < 3000,
              f"a {'streaming' if stream else 'waiting'} client hangs up: its slot is free "
              f"{dt:.2f} s later ({int(gen)} of 3000 tokens made)")

    # ---- a full queue: 2 running, 8 waiting, the next gets 503; all freed when they leave ----
    long_req = post("/v1/completions", json.dumps({
        "prompt": "the", "max_tokens": 3000, "ignore_eos": True, "stream": True}))
    held = []
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(long_req)
        held.append(s)
        t0 = time.time()
        want_q = max(0, i - 1)
        while (metric(srv, "vklm_queue_length") != want_q or
               metric(srv, "vklm_slots_busy") != min(i + 1, 2)) and time.time() - t0 < 10:
            time.sleep(0.02)
    q, busy = metric(srv, "vklm_queue_length"), metric(srv, "vklm_slots_busy")
    r = raw(srv.port, post("/v1/completions", GOOD))
    payload = r.partition(b"\r\n\r\n")[2]
    check(q == 8 and busy == 2 and status(r) == 503 and
          json.loads(payload)["error"]["code"] == "server_busy",
          f"2 slots busy, {int(q)} queued (--queue 8): the next request gets 503 server_busy")
    for s in held:
        s.close()
    t0 = time.time()
    while (metric(srv, "vklm_queue_length") or metric(srv, "vklm_slots_busy")) and \
            time.time() - t0 < 10:
        time.sleep(0.02)
    check(metric(srv, "vklm_queue_length") == 0 and metric(srv, "vklm_slots_busy") == 0,
          f"their clients hang up: queue and slots empty {time.time() - t0:.2f} s later")
    st, _ = srv.post("/v1/completions", GOOD)
    check(st == 200, "and the next request is served")

    # ---- truncated bodies ----
    for n in (5, 100):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
                  b"{" * n)
        s.close()
    r = raw(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{}",
            shut=True, timeout=5)
    st, _ = srv.post("/v1/completions", GOOD)
    check(st == 200, f"truncated bodies (client hung up, or half-closed): the server goes on "
                     f"({status(r) or 'closed'})")

    # ---- 10 MB bodies ----
    t0 = time.time()
    r = raw(srv.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n"
                      b"Connection: close\r\n\r\n" + b"x" * 65536)
    check(status(r) == 413, f"a 10 MB Content-Length: 413 before the body is read "
                            f"({time.time() - t0:.2f} s)")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n")
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < 10 << 20:
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sent += len(chunk)
        s.sendall(b"0\r\n\r\n")
        r = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        r = b"HTTP/1.1 413 closed"
    s.close()
    check(status(r) == 413, f"a 10 MB chunked body: 413 (sent {sent >> 20} MB)")
    rss1 = rss_kb(pid)
    check(rss1 - rss0 < 32 * 1024, f"memory after the 10 MB bodies: +{(rss1 - rss0) / 1024:.1f} MiB")

    # ---- deeply nested JSON, bad numbers, bad types ----
    cases = {
        "100,000 nested arrays": "[" * 100000 + "]" * 100000,
        "50,000 nested objects": '{"a":' * 50000 + "1" + "}" * 50000,
        "nested prompt": '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}",
        "max_tokens -1e308": '{"prompt": "x", "max_tokens": -1e308}',
        "max_tokens 1e309": '{"prompt": "x", "max_tokens": 1e309}',
        "n 1e10": '{"prompt": "x", "n": 1e10}',
        "seed 1e30": '{"prompt": "x", "seed": 1e30}',
        "top_k -5": '{"prompt": "x", "top_k": -5}',
        "logprobs 1e6": '{"prompt": "x", "logprobs": 1000000}',
        "temperature NaN": '{"prompt": "x", "temperature": NaN}',
        "temperature as string": '{"prompt": "x", "temperature": "hot"}',
        "stream as number": '{"prompt": "x", "stream": 1}',
        "stop as object": '{"prompt": "x", "stop": {"a": 1}}',
        "prompt as number": '{"prompt": 5}',
        "prompt ids negative": '{"prompt": [-1, 2]}',
        "prompt ids huge": '{"prompt": [1e300]}',
        "messages as string": '{"messages": "hi"}',
        "a message without role": '{"messages": [{"content": "hi"}]}',
        "a body that is an array": '[1, 2]',
        "an empty body": "",
        "NUL bytes": '{"prompt": "a\u0000b", "max_tokens": "\u0000"}',
    }
    bad = []
    for name, body in cases.items():
        path = "/v1/chat/completions" if "message" in name else "/v1/completions"
        r = raw(srv.port, post(path, body))
        head, _, payload = r.partition(b"\r\n\r\n")
        try:
            ok = 400 <= status(r) < 500 and "error" in json.loads(payload)
        except ValueError:
            ok = False
        if not ok:
            bad.append(f"{name}: {r[:80]!r}")
    check(not bad, f"{len(cases)} malformed bodies each get a 4xx with an error object {bad}")

    # ---- invalid UTF-8 ----
    r1 = raw(srv.port, post("/v1/completions", b'{"prompt": "\xc3\x28\xff"}'))
    r2 = raw(srv.port, post("/v1/chat/completions",
                            b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'))
    r3 = raw(srv.port, post("/tokenize", b'{"content": "\xf8\x88\x80\x80\x80"}'))
    r4 = raw(srv.port, post("/v1/completions", GOOD, extra=b"X-Bad: \xff\xfe\r\n"))
    r5 = raw(srv.port, b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status(r1) == 400 and status(r2) == 400 and status(r3) == 400,
          "invalid UTF-8 in a prompt, a message, /tokenize: 400")
    check(status(r4) == 200 and status(r5) in (400, 404),
          f"invalid UTF-8 in a header (ignored: {status(r4)}) and in the path ({status(r5)})")

    # ---- a burst: 2,000 requests from 32 threads; then 300 simultaneous connections ----
    counts = {}
    lock = threading.Lock()

    def worker(k):
        for i in range(k, 2000, 32):
            if i % 8 == 0:
                body = json.dumps({"prompt": "the dog", "max_tokens": 2, "temperature": 0})
                req = post("/v1/completions", body)
            elif i % 8 == 1:
                req = post("/v1/completions", "{oops")
            else:
                req = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            try:
                st = status(raw(srv.port, req, timeout=30))
            except OSError:
                st = -1
            with lock:
                counts[st] = counts.get(st, 0) + 1

    t0 = time.time()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    dt = time.time() - t0
    check(sum(counts.values()) == 2000 and set(counts) <= {200, 400, 503} and
          counts.get(200, 0) >= 1500 and counts.get(400, 0) == 250,
          f"2,000 requests from 32 threads in {dt:.1f} s: every one answered {counts}")
    socks = []
    for i in range(300):
        try:
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        except OSError:
            pass
    st, b = (0, b"")
    for s in socks:
        s.close()
    time.sleep(0.5)
    st, b = srv.post("/v1/completions", GOOD, timeout=30)
    check(st == 200, f"after 300 simultaneous idle connections ({len(socks)} opened), a request "
                     f"is served")

    # ---- afterwards ----
    st, b = srv.post("/v1/completions", GOOD)
    check(st == 200 and json.loads(b)["choices"][0]["text"] == before,
          "after it all, the same request gives the same reply")
    rss2 = rss_kb(pid)
    check(rss2 - rss0 < 64 * 1024, f"resident memory stays bounded: {rss0 / 1024:.1f} -> "
                                   f"{rss2 / 1024:.1f} MiB")
    st, m = srv.get("/metrics")
    check(st == 200 and b"vklm_request_errors_total" in m, "/metrics still answers")
    rc = srv.stop(signal.SIGTERM)
    log = srv.log()
    check(rc == 0 and "validation" not in log, f"SIGTERM: exit {rc}; no validation message")

print(f"test_serve_hostile: {time.time() - t_start:.1f} s")
check.done("test_serve_hostile")
