"""Headless Chromium over the DevTools protocol and the processes of a UI test: the
webserver, the daemon and the browser, each in its own process group, stopped with every child.

Screenshots go to test-artifacts/ui/ (kept by CI as artifacts, not committed).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process in its own process group; the group (with every child) is stopped at exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=20)
                # Code servers and run workers are children of the leader: clear the group.
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def terminate_all(*procs: subprocess.Popen) -> None:
    for proc in procs:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_server(base: str, procs: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"webserver did not answer /server_info:\n{tail(procs['webserver'][1])}")
        time.sleep(0.5)


class Browser:
    """Headless Chromium driven over the DevTools protocol: navigate, read the page, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def open(self, url: str, expect: list[str], shot: str, timeout: float = 90) -> str:
        """Navigate and wait until the rendered text shows every `expect` string; screenshot."""
        self.call("Page.navigate", url=url)
        return self.open_current(expect, shot, timeout)

    def open_current(self, expect: list[str], shot: str, timeout: float = 90) -> str:
        """Wait until the current page shows every `expect` string; screenshot."""
        url = self.eval("location.href")
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.eval("document.body ? document.body.innerText : ''") or ""
            if all(e in text for e in expect):
                break
            time.sleep(0.5)
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / shot).write_bytes(png)
        missing = [e for e in expect if e not in text]
        assert not missing, f"{url} never showed {missing}; see {ARTIFACTS / shot}:\n{text[:2000]}"
        return text

    def wait_for(self, expression: str, what: str, timeout: float = 90) -> None:
        """Wait until the JavaScript `expression` is true on the current page."""
        deadline = time.monotonic() + timeout
        while not self.eval(expression):
            assert time.monotonic() < deadline, f"{self.eval('location.href')}: never {what}"
            time.sleep(0.5)

    def click(self, label: str, within: str = "body") -> None:
        """Click the button inside `within` (a CSS selector) whose text is `label`."""
        clicked = self.eval(
            f"""(() => {{ const b = [...document.querySelectorAll({json.dumps(within + " button")})]
                .find(b => b.innerText.trim() === {json.dumps(label)});
              if (b) b.click(); return !!b; }})()"""
        )
        assert clicked, f"no button {label!r} in {within} of {self.eval('location.href')}"

    def type_into(self, selector: str, text: str) -> None:
        """Type `text` over the value of the input `selector` as keystrokes would (React sees
        each change), then press Enter."""
        assert self.eval(
            f"(e => !!e && (e.focus(), e.select(), true))(document.querySelector({json.dumps(selector)}))"
        )
        self.call("Input.insertText", text=text)
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
            )


@contextmanager
def browser(binary: str, profile: Path) -> Iterator[Browser]:
    args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
    with process(args, dict(os.environ), profile.parent / "chromium.log") as proc:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start:\n{tail(profile.parent / 'chromium.log')}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            yield Browser(ws)


def graphql(base: str, query: str, **variables: Any) -> dict[str, Any]:
    """The webserver's GraphQL API, as the UI asks it; the `data` of the answer."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        answer = json.load(resp)
    assert "errors" not in answer, answer["errors"]
    return answer["data"]
