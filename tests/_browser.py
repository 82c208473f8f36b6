"""Render an HTML file in a real headless Chromium and report what a reader would see.

Test helper (not part of the package). Chromium is driven through the Chrome DevTools
Protocol over ``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file
descriptors 3 and 4), so no websocket library is needed. The page is loaded from
``file://``; nothing is injected into it: the checks run through ``Runtime.evaluate``.

>>> from _browser import render_in_browser   # from a test module in tests/  # doctest: +SKIP
>>> render_in_browser("report.html", "shot.png")          # doctest: +SKIP
{'images_ok': True, 'n_images': 5, 'console_errors': [], ...}
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Browser", "BrowserError", "find_chromium", "render_in_browser"]

DEFAULT_TIMEOUT = 60.0  # seconds: Chromium starts slowly on a busy 2-core machine

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--no-default-browser-check", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--disable-extensions",
          "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio",
          "--hide-scrollbars", "--remote-debugging-pipe"]

# every image finished loading and decoded to a non-empty bitmap
_IMAGES_JS = """JSON.stringify({
  n: document.images.length,
  broken: Array.from(document.images)
    .filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0))
    .map(i => (i.getAttribute('src') || '').slice(0, 80)),
  height: Math.ceil(document.documentElement.scrollHeight),
  title: document.title
})"""


class BrowserError(RuntimeError):
    """Chromium could not be started or stopped answering."""


def find_chromium() -> str | None:
    """Path of a Chromium executable (``/usr/bin/chromium`` or one on PATH), else None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class Browser:
    """One headless Chromium process; render several pages with :meth:`render`.

    Use as a context manager; the process and its temporary profile are removed on exit.
    """

    def __init__(self, executable: str | None = None, *, timeout: float = DEFAULT_TIMEOUT):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError("no chromium executable found: install Debian's chromium "
                               "(apt-get install chromium)")
        self.timeout = float(timeout)
        self._proc = None
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []

    # -- process -------------------------------------------------------------------
    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="topobrain-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def _wire_fds():  # in the child: CDP reads fd 3 and writes fd 4
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._stderr = tempfile.TemporaryFile()
        cmd = [self.executable, *_FLAGS, f"--user-data-dir={self._profile}", "about:blank"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=self._stderr,
                                      preexec_fn=_wire_fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            self._send("Browser.getVersion")  # waits until the browser answers
        except BaseException:
            self.close()  # never leave a half-started browser behind
            raise

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                try:
                    self._send("Browser.close", timeout=10)
                except BrowserError:
                    pass
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=15)
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)
            self._proc = None

    def _stderr_tail(self, n: int = 2000) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-n:]
        except (OSError, ValueError):
            return ""

    # -- protocol ------------------------------------------------------------------
    def _send(self, method: str, params: dict | None = None, *, session: str | None = None,
              timeout: float | None = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        data = json.dumps(msg).encode("utf-8") + b"\0"
        try:
            while data:
                data = data[os.write(self._to_child, data):]
        except OSError as err:
            raise BrowserError(f"chromium closed its pipe ({err}); stderr:\n"
                               f"{self._stderr_tail()}") from None
        reply = self._read_until(lambda m: m.get("id") == self._next_id, timeout)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def _read_until(self, stop, timeout: float | None = None) -> dict:
        """Read messages (keeping events) until ``stop(message)``; return that message."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self._events.append(message)
                if stop(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"chromium did not answer within {self.timeout:.0f} s; "
                                   f"stderr:\n{self._stderr_tail()}")
            ready, _, _ = select.select([self._from_child], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise BrowserError("chromium exited; stderr:\n" + self._stderr_tail())
                self._buffer += chunk
            elif self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with status {self._proc.returncode}; "
                                   f"stderr:\n{self._stderr_tail()}")

    # -- pages ---------------------------------------------------------------------
    def render(self, html_path, screenshot_path, *, width: int = 1200, height: int = 2000,
               full_page: bool = False, evaluate=()) -> dict:
        """Load ``html_path``, check its images and console, save a PNG screenshot.

        Returns
        -------
        dict
            ``images_ok`` (bool: every ``<img>`` complete with a non-zero natural size),
            ``n_images``, ``console_errors`` (list of str: console errors, uncaught
            exceptions and failed loads), ``broken_images`` (their ``src``, cut to 80
            characters), ``title``, ``page_height`` (CSS px), ``screenshot`` (Path) and
            ``evaluated`` (the JSON value of each expression in ``evaluate``, run in order
            after the screenshot, so that a script may click and read the page).
        """
        html_path = Path(html_path).resolve()
        if not html_path.is_file():
            raise FileNotFoundError(f"no HTML file at {html_path}")
        screenshot_path = Path(screenshot_path)
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget",
                             {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log"):
                self._send(f"{domain}.enable", session=session)
            self._send("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1,
                        "mobile": False}, session=session)
            self._events.clear()
            nav = self._send("Page.navigate", {"url": html_path.as_uri()}, session=session)
            if nav.get("errorText"):
                raise BrowserError(f"navigation to {html_path} failed: {nav['errorText']}")
            self._read_until(lambda m: m.get("method") == "Page.loadEventFired"
                             and m.get("sessionId") == session)
            # let pending decodes and late console messages settle
            self._send("Runtime.evaluate",
                       {"expression": "Promise.all(Array.from(document.images).map("
                                      "i => i.decode().catch(() => null)))",
                        "awaitPromise": True}, session=session)
            info = json.loads(self._send(
                "Runtime.evaluate", {"expression": _IMAGES_JS, "returnByValue": True},
                session=session)["result"]["value"])
            params = {"format": "png"}
            if full_page:
                params.update(captureBeyondViewport=True,
                              clip={"x": 0, "y": 0, "width": width,
                                    "height": max(1, info["height"]), "scale": 1})
            shot = self._send("Page.captureScreenshot", params, session=session)
            screenshot_path.parent.mkdir(parents=True, exist_ok=True)
            screenshot_path.write_bytes(base64.b64decode(shot["data"]))
            evaluated = []
            for expression in evaluate:
                res = self._send("Runtime.evaluate",
                                 {"expression": f"JSON.stringify({expression})",
                                  "returnByValue": True, "awaitPromise": True},
                                 session=session)
                if "exceptionDetails" in res:
                    raise BrowserError(f"{expression!r} failed: {res['exceptionDetails']}")
                evaluated.append(json.loads(res["result"]["value"]))
            errors = [_describe(m) for m in self._events
                      if m.get("sessionId") == session and _is_error(m)]
        finally:
            try:
                self._send("Target.closeTarget", {"targetId": target}, timeout=10)
            except BrowserError:
                pass  # the original error, if any, is the one to report
        return {"images_ok": not info["broken"], "n_images": int(info["n"]),
                "console_errors": errors, "broken_images": info["broken"],
                "title": info["title"], "page_height": info["height"],
                "screenshot": screenshot_path, "evaluated": evaluated}


def _is_error(message: dict) -> bool:
    method, p = message.get("method"), message.get("params", {})
    if method == "Runtime.consoleAPICalled":
        return p.get("type") in ("error", "assert")
    if method == "Runtime.exceptionThrown":
        return True
    if method == "Log.entryAdded":
        return p.get("entry", {}).get("level") == "error"
    return False


def _describe(message: dict) -> str:
    method, p = message["method"], message.get("params", {})
    if method == "Runtime.consoleAPICalled":
        args = [a.get("value", a.get("description", "")) for a in p.get("args", [])]
        return "console." + p.get("type", "?") + ": " + " ".join(map(str, args))
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return "exception: " + str(d.get("exception", {}).get("description", d.get("text")))
    e = p.get("entry", {})
    return f"{e.get('source', 'log')}: {e.get('text', '')} {e.get('url', '')}".strip()


def render_in_browser(html_path, screenshot_path, *, timeout: float = DEFAULT_TIMEOUT,
                      **kwargs) -> dict:
    """Start Chromium, :meth:`Browser.render` one page, stop Chromium.

    Returns ``dict(images_ok: bool, n_images: int, console_errors: list[str], ...)``; see
    :meth:`Browser.render` for the other keys.
    """
    with Browser(timeout=timeout) as browser:
        return browser.render(html_path, screenshot_path, **kwargs)
