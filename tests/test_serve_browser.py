"""`vklm serve`'s web chat page in headless Chromium (tests/browser_util.py), used as a person
would: open the page, set the sampling settings, type a message and press Enter, watch the reply
stream in (it equals the API's reply to the same request), see tokens/s, reload and find the
conversation kept, start a long reply and press Stop (the reply stops growing and the server frees
the slot at once), start a new chat. Keeps a screenshot, serve-browser.png, in the build tree.
Usage: test_serve_browser.py vklm"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_util import Browser  # noqa: E402
from serve_util import Checks, Server, tiny_model  # noqa: E402

vklm = sys.argv[1]
check = Checks()
t_start = time.time()
model = tiny_model(vklm)
build = os.path.dirname(os.path.dirname(os.path.abspath(vklm)))
shot = os.path.join(build, "serve-browser.png")


def metric(srv, name):
    _, m = srv.get("/metrics")
    for line in m.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


with Server(vklm, model, "-np", "2", "-c", "4096") as srv, Browser() as b:
    b.goto(srv.url + "/")
    check(b.eval("document.title") == "vklm chat" and b.eval("!!document.querySelector('#input')"),
          "the page opens: title, message box")
    # settings, as a person: open them and type the values
    b.click("#settings summary")
    b.type("#temperature", "0", replace=True)
    b.type("#max_tokens", "40", replace=True)
    b.press("Tab")
    check(b.eval("document.querySelector('#temperature').value") == "0" and
          b.eval("document.querySelector('#max_tokens').value") == "40",
          "sampling settings typed into the settings panel")

    # a message: type it, press Enter, watch the reply stream in
    b.type("#input", "the cat sat")
    b.press("Enter")
    b.wait_for("document.querySelector('#stop') && !document.querySelector('#stop').disabled || "
               "document.querySelectorAll('.msg.assistant').length > 0", timeout=30)
    b.wait_for("!document.querySelector('#send').disabled && "
               "document.querySelectorAll('.msg.assistant').length === 1", timeout=60)
    reply = b.eval("document.querySelector('.msg.assistant').firstChild.textContent")
    meta = b.text(".msg.assistant .meta")
    st, api = srv.post("/v1/chat/completions", json.dumps({
        "messages": [{"role": "user", "content": "the cat sat"}], "temperature": 0,
        "top_p": 0.95, "top_k": 40, "min_p": 0.05, "max_tokens": 40}))
    want = json.loads(api)["choices"][0]["message"]["content"]
    check(reply == want and len(reply) > 0,
          f"the streamed reply shows and equals the API's reply: {reply[:60]!r}")
    check("tokens/s" in meta and "tokens" in meta, f"tokens/s shown: {meta!r}")
    check(b.eval("document.querySelectorAll('.msg.user').length") == 1 and
          b.text(".msg.user") == "the cat sat", "the user's message shows")

    # the conversation is kept in the browser
    b.reload()
    b.wait_for("document.querySelectorAll('.msg').length === 2", timeout=10)
    check(b.eval("document.querySelector('.msg.assistant').firstChild.textContent") == reply and
          b.eval("JSON.parse(localStorage.getItem('vklm.chat.v1')).convs.length") == 1,
          "after a reload the conversation is still there (localStorage)")

    # a long reply, stopped: it streams (grows), Stop ends it, the slot is freed at once
    b.click("#settings summary") if not b.eval("document.querySelector('#settings').open") else None
    b.type("#max_tokens", "3500", replace=True)
    b.type("#temperature", "1", replace=True)
    b.press("Tab")
    b.type("#input", "tell me a long story")
    b.press("Enter")
    b.wait_for("document.querySelectorAll('.msg.assistant').length === 2 && "
               "document.querySelectorAll('.msg.assistant')[1].textContent.length > 20", timeout=30)
    n1 = b.eval("document.querySelectorAll('.msg.assistant')[1].textContent.length")
    time.sleep(0.4)
    n2 = b.eval("document.querySelectorAll('.msg.assistant')[1].textContent.length")
    busy = metric(srv, "vklm_slots_busy")
    check(n2 > n1 and busy == 1, f"the long reply streams: {n1} -> {n2} characters, 1 slot busy")
    b.screenshot(shot)
    b.click("#stop")
    b.wait_for("!document.querySelector('#send').disabled", timeout=10)
    t0 = time.time()
    while metric(srv, "vklm_slots_busy") != 0 and time.time() - t0 < 5:
        time.sleep(0.05)
    freed = time.time() - t0
    m1 = b.eval("document.querySelectorAll('.msg.assistant')[1].firstChild.textContent.length")
    time.sleep(0.5)
    m2 = b.eval("document.querySelectorAll('.msg.assistant')[1].firstChild.textContent.length")
    meta = b.text(".msg.assistant:last-of-type .meta") or ""
    gen = metric(srv, "vklm_tokens_generated_total")
    check(metric(srv, "vklm_slots_busy") == 0 and freed < 2,
          f"Stop: the client hung up and the server freed the slot ({freed:.2f} s)")
    check(m1 == m2 and "stopped" in meta and gen < 3500,
          f"the reply stopped growing ({m2} characters, {int(gen)} tokens generated): {meta!r}")

    # a new chat
    b.click("#new")
    b.wait_for("document.querySelectorAll('.msg').length === 0", timeout=10)
    check(b.eval("document.querySelectorAll('#convs li').length") == 2,
          "New chat: an empty conversation, the old one listed beside it")
    check(not b.errors, f"no errors in the page's console: {b.errors[:3]}")
    check(os.path.getsize(shot) > 5000, f"screenshot kept: {shot}")
    rc = srv.stop()
    check(rc == 0 and "validation" not in srv.log(), f"server exit {rc}; no validation message")

print(f"test_serve_browser: {time.time() - t_start:.1f} s")
check.done("test_serve_browser")
