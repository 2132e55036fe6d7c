"""Fixtures for the web atlas' tests.

Browser fixtures: the real server (`deepatlas serve` in a child process, on a free port, with its
own DEEPATLAS_HOME that the tests read back), the static site (`deepatlas site build`, served by a
plain file server), and Debian's chromium driven by Playwright. Playwright never downloads a
browser here; `make setup` installs Debian's `chromium` when it is missing.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync"]
WEB_DIR = Path(__file__).resolve().parents[2] / "src" / "deepatlas" / "web"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Server:
    url: str          # ends with "/"
    home: Path        # the server's DEEPATLAS_HOME

    def env(self) -> dict:
        return {**os.environ, "DEEPATLAS_HOME": str(self.home), "NO_COLOR": "1"}

    def cli(self, *args: str) -> str:
        """Run `deepatlas ARGS` against the same store as the server; return its stdout."""
        out = subprocess.run([sys.executable, "-m", "deepatlas", *args], env=self.env(),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("atlas-home")
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}/", home)
    proc = subprocess.Popen([sys.executable, "-m", "deepatlas", "serve", "--port", str(port), "--no-open"],
                            env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(server.url + "api/session.json", proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def static_site(tmp_path_factory):
    """`deepatlas site build` into a folder, served by Python's plain file server."""
    site = tmp_path_factory.mktemp("site")
    home = tmp_path_factory.mktemp("site-home")
    env = {**os.environ, "DEEPATLAS_HOME": str(home), "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "deepatlas", "site", "build", str(site)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", home)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests drive Debian's chromium at {CHROMIUM}, which is missing: "
                    "`make setup` installs it (apt-get install chromium)", pytrace=False)
    if not (WEB_DIR / "node_modules" / "cytoscape").is_dir() and "DEEPATLAS_NODE_MODULES" not in os.environ:
        pytest.fail("the web atlas' npm packages are missing: `make setup` installs them (npm ci in src/deepatlas/web)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _page(browser, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(45_000)  # a loaded 2-core CI machine runs other tests beside the browser
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Offline by design: nothing may be fetched from anywhere but the atlas itself (no CDN, no web fonts).
    page.on("request", lambda req: None if req.url.startswith(("http://127.0.0.1:", "data:", "blob:"))
            else errors.append(f"request to {req.url}"))
    page.errors = errors
    return context, page


@pytest.fixture
def page(browser):
    """A fresh browser tab at 1280x800 (its own localStorage); an uncaught script error or a request
    that leaves the machine fails the test."""
    context, page = _page(browser, 1280, 800)
    yield page
    context.close()
    assert not page.errors, f"errors in the page: {page.errors}"


@pytest.fixture
def phone(browser):
    """A fresh tab 390 px wide, a phone's screen."""
    context, page = _page(browser, 390, 844)
    yield page
    context.close()
    assert not page.errors, f"errors in the page: {page.errors}"


# API fixtures (SERVER helper): the app in-process through FastAPI's TestClient ------------------

TOKEN = "test-token"
AUTH = {"X-Deepatlas-Token": TOKEN}


@pytest.fixture(scope="session")
def api_app():
    """One app for the API tests: it reads DEEPATLAS_HOME on every request, so each test's own
    (empty) home applies. Tests that run labs build their own app with its own queue."""
    from deepatlas.web.app import Settings, create_app

    return create_app(Settings(allowed_hosts=["testserver"], token=TOKEN))


@pytest.fixture
def client(api_app):
    from fastapi.testclient import TestClient

    return TestClient(api_app)
