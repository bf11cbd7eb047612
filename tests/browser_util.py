"""Drives Debian's headless Chromium over the DevTools protocol (CDP, a websocket from the PyPI
`websocket-client`), for tests of the pages vklm serves (`vklm serve`'s chat, `vklm rank --web`).
Not a test itself. A page is used as a person would use it: real mouse clicks at an element's
centre, typed text, key presses; JavaScript only to read what is on the screen.

    with Browser() as b:
        b.goto("http://127.0.0.1:8080/")
        b.type("#input", "hello")
        b.press("Enter")
        b.wait_for("document.querySelector('#reply').textContent.length > 0")
        b.screenshot("page.png")

Everything is bounded in time (TimeoutError past it); the browser and its profile directory are
removed however the test ends. Console errors and uncaught exceptions of the page are collected
in .errors."""
import base64
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    for p in glob.glob("/usr/lib/chromium/chromium"):
        return p
    return None


class Browser:
    def __init__(self, width=1200, height=800, timeout=60):
        exe = chromium_path()
        if not exe:
            raise RuntimeError("no chromium: install Debian's chromium (scripts/install-deps.sh --tests)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="vklm_chromium_")
        self.errors = []
        self._id = 0
        self._events = []
        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = self._devtools_port()
            page = None
            t0 = time.time()
            while page is None and time.time() - t0 < timeout:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    page = next((t for t in json.load(r) if t.get("type") == "page"), None)
                if page is None:
                    time.sleep(0.1)
            if page is None:
                raise TimeoutError("chromium opened no page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                                  suppress_origin=True)
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self):
        path = os.path.join(self.profile, "DevToolsActivePort")
        t0 = time.time()
        while time.time() - t0 < self.timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            try:
                with open(path) as f:
                    line = f.readline().strip()
                if line:
                    return int(line)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    # ---- the protocol ----
    def _event(self, msg):
        m = msg.get("method")
        if m == "Runtime.exceptionThrown":
            self.errors.append(msg["params"]["exceptionDetails"].get("text", "exception"))
        elif m == "Runtime.consoleAPICalled" and msg["params"].get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                        for a in msg["params"].get("args", [])))
        self._events.append(msg)
        del self._events[:-200]

    def send(self, method, **params):
        """One CDP command; returns its result (raises on a protocol error)."""
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        t0 = time.time()
        while time.time() - t0 < self.timeout:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)
        raise TimeoutError(method)

    def eval(self, expr):
        """The value of a JavaScript expression (promises awaited), for reading the page."""
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expr, timeout=None, every=0.05):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        t0 = time.time()
        while time.time() - t0 < (timeout or self.timeout):
            v = self.eval(expr)
            if v:
                return v
            time.sleep(every)
        raise TimeoutError(f"waiting for {expr}")

    # ---- as a person ----
    def goto(self, url):
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def reload(self):
        self.send("Page.reload", ignoreCache=True)
        time.sleep(0.2)
        self.wait_for("document.readyState === 'complete'")

    def center(self, selector):
        r = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      f" if (!e) return null; e.scrollIntoView({{block: 'center'}});"
                      f" const r = e.getBoundingClientRect();"
                      f" return [r.left + r.width / 2, r.top + r.height / 2, r.width * r.height]; }})()")
        if not r or r[2] <= 0:
            raise RuntimeError(f"{selector}: not on the page or not visible")
        return r[0], r[1]

    def click(self, selector):
        x, y = self.center(selector)
        for t in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=t, x=x, y=y, button="left",
                      clickCount=0 if t == "mouseMoved" else 1)

    def type(self, selector, text, replace=False):
        """Clicks into a field and types text (replace: select what it holds first)."""
        self.click(selector)
        if replace:
            self.key("a", modifiers=2)  # Ctrl+A
        self.send("Input.insertText", text=text)

    def key(self, key, modifiers=0):
        codes = {"Enter": (13, "\r"), "Escape": (27, ""), "Tab": (9, ""), "Backspace": (8, "")}
        vk, text = codes.get(key, (ord(key.upper()) if len(key) == 1 else 0, key if len(key) == 1 else ""))
        down = dict(type="keyDown", key=key, code=f"Key{key.upper()}" if len(key) == 1 else key,
                    windowsVirtualKeyCode=vk, modifiers=modifiers)
        if text and not modifiers:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", **down)
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=down["code"],
                  windowsVirtualKeyCode=vk, modifiers=modifiers)

    def press(self, key):
        self.key(key)

    def text(self, selector):
        return self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            if getattr(self, "ws", None):
                try:
                    self.send("Browser.close")
                except Exception:  # noqa: BLE001 (closing anyway)
                    pass
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
