"""Safe by default: Host check, token on writes, typed and bounded bodies, no file outside the atlas."""

import socket
import threading
import time

import pytest
import uvicorn

from deepatlas.cli import main
from deepatlas.web import assets
from deepatlas.web.app import Settings, create_app, safe_file

from .conftest import AUTH

TRAVERSALS = [
    "/static/../../pyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/%2E%2E%2F%2E%2E%2Fpyproject.toml",
    "/static/..%2f..%2fapi.py", "/static/%252e%252e/%252e%252e/pyproject.toml", "/static/....//....//app.py",
    "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/index.html%00.js",
    "/vendor/katex/../../package.json", "/vendor/katex/%2e%2e/%2e%2e/package.json",
    "/vendor/katex/%2e%2e/%2e%2e/%2e%2e/package.json", "/vendor/katex/%2e%2e%2fpackage.json",
    "/vendor/commander/package.json", "/vendor/%2e%2e/package.json", "/vendor/..%2f/package.json",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_no_file_outside_the_atlas(client, url):
    r = client.get(url)
    assert r.status_code == 404, url
    assert b"[project]" not in r.content and b"dependencies" not in r.content


def test_safe_file(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.js").write_text("ok")
    (tmp_path / "secret.txt").write_text("no")
    (root / "link.js").symlink_to(tmp_path / "secret.txt")
    assert safe_file(root, "sub/a.js") == (root / "sub" / "a.js").resolve()
    outside = str(tmp_path / "secret.txt")
    for bad in ("../secret.txt", "sub/../../secret.txt", outside, "link.js", "sub", "a\x00.js", ""):
        assert safe_file(root, bad) is None, bad


def test_static_and_vendor_serve_their_own_files(client, monkeypatch, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>atlas</title>")
    (static / "app.js").write_text("export const x = 1;")
    monkeypatch.setattr("deepatlas.web.app.STATIC_DIR", static)
    modules = tmp_path / "node_modules"
    (modules / "katex" / "dist" / "fonts").mkdir(parents=True)
    (modules / "katex" / "dist" / "fonts" / "KaTeX_Main-Regular.woff2").write_bytes(b"wOF2")
    (modules / "katex" / "package.json").write_text("{}")
    monkeypatch.setattr(assets, "NODE_MODULES", modules)
    assert client.get("/").text.startswith("<!doctype html>")
    js = client.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    font = client.get("/vendor/katex/fonts/KaTeX_Main-Regular.woff2")
    assert font.status_code == 200 and font.headers["content-type"] == "font/woff2"
    assert client.get("/vendor/katex/../package.json").status_code == 404
    assert client.get("/vendor/katex/%2e%2e/package.json").status_code == 404
    assert client.get("/vendor/uplot/uPlot.min.js").status_code == 404  # not installed here
    assert sorted(assets.missing_assets()) == ["@highlightjs/cdn-assets", "cytoscape/dist", "uplot/dist"]


@pytest.mark.parametrize("host", ["evil.example:8765", "127.0.0.1:9999", "localhost", "", "testserver.evil"])
def test_wrong_host_is_400(client, host):
    for method, url in (("GET", "/api/catalog.json"), ("GET", "/"), ("PUT", "/api/progress/resnet")):
        r = client.request(method, url, headers={"host": host, **AUTH}, json={"state": "done"})
        assert r.status_code == 400, (method, url, host)


def test_default_hosts_are_the_bound_one_and_localhost():
    assert Settings().hosts() == {"127.0.0.1:8765", "localhost:8765"}
    assert Settings(host="::1", port=9000).hosts() == {"[::1]:9000", "localhost:9000", "127.0.0.1:9000"}
    assert Settings(allowed_hosts=["Testserver"]).hosts() == {"testserver"}
    assert Settings().token != Settings().token and len(Settings().token) >= 32


@pytest.mark.parametrize("headers", [{}, {"X-Deepatlas-Token": "wrong"}, {"X-Deepatlas-Token": ""},
                                     {"X-Deepatlas-Token": AUTH["X-Deepatlas-Token"] + "x"},
                                     {"X-Other": AUTH["X-Deepatlas-Token"]}])
def test_writes_need_the_token(client, headers):
    assert client.put("/api/progress/resnet", json={"state": "done"}, headers=headers).status_code == 403
    assert client.post("/api/jobs", json={"lab": "neuron/bias"}, headers=headers).status_code == 403
    assert client.delete("/api/jobs/0123456789ab", headers=headers).status_code == 403
    assert client.get("/api/catalog.json", headers=headers).status_code == 200  # reads need none


@pytest.mark.parametrize("body", [
    {"lab": "neuron/bias", "scale": "full"}, {"lab": "neuron/bias", "scale": 1},
    {"lab": "neuron/bias", "seed": 1_000_001}, {"lab": "neuron/bias", "seed": -1}, {"lab": "neuron/bias", "seed": "5"},
    {"lab": "neuron/bias", "seed": 1.5}, {"lab": "neuron/bias", "seed": True}, {"lab": "neuron/bias", "seed": 10**30},
    {"lab": "neuron/bias", "extra": 1}, {"lab": "../../etc/passwd"}, {"lab": "x" * 500}, {"lab": 5}, {},
    {"lab": "neuron/bias", "overrides": {"steps": "1e9"}}, ["neuron/bias"], "neuron/bias",
])
def test_job_bodies_are_typed_and_bounded(client, body):
    r = client.post("/api/jobs", json=body, headers=AUTH)
    assert r.status_code == 422, r.text


def test_unknown_lab_is_404(client):
    r = client.post("/api/jobs", json={"lab": "perceptron/xxor"}, headers=AUTH)
    assert r.status_code == 404 and "unknown lab" in r.json()["detail"]


class LiveServer:
    """The app under uvicorn in a thread, for what only a real HTTP server shows (raw paths)."""

    def __init__(self, app, port):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_real_server_raw_requests():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LiveServer(create_app(Settings(port=port)), port):
        good = f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        assert raw(port, b"GET /api/session.json HTTP/1.1\r\n" + good).startswith(b"HTTP/1.1 200")
        assert raw(port, b"GET /api/session.json HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n"
                   % port).startswith(b"HTTP/1.1 200")
        for path in (b"/static/../../pyproject.toml", b"/static/../../../pyproject.toml",
                     b"/vendor/katex/../../package.json", b"/static/%2e%2e/%2e%2e/pyproject.toml",
                     b"/api/runs/x/files/..%2f..%2fdeepatlas.sqlite"):
            answer = raw(port, b"GET " + path + b" HTTP/1.1\r\n" + good)
            assert answer.startswith(b"HTTP/1.1 404") or answer.startswith(b"HTTP/1.1 400"), path
            assert b"[project]" not in answer and b'"dependencies"' not in answer
        rebinding = b"GET /api/session.json HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
        answer = raw(port, rebinding)
        assert answer.startswith(b"HTTP/1.1 400") and b"token" not in answer


def test_serve_cli(monkeypatch, capsys, tmp_path):
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    modules = tmp_path / "node_modules"
    for folder in assets.VENDOR.values():
        (modules / folder).mkdir(parents=True)
    monkeypatch.setattr(assets, "NODE_MODULES", modules)
    assert main(["serve", "--no-open", "--port", "8799"]) == 0
    out = capsys.readouterr()
    assert "http://127.0.0.1:8799/" in out.out and "warning" not in out.err
    assert started["host"] == "127.0.0.1" and started["port"] == 8799
    assert started["app"].state.settings.hosts() == {"127.0.0.1:8799", "localhost:8799"}

    assert main(["serve", "--no-open", "--host", "0.0.0.0", "--allow-host", "atlas.lan:8765"]) == 0
    out = capsys.readouterr()
    assert "warning: binding 0.0.0.0" in out.err and started["host"] == "0.0.0.0"
    assert "atlas.lan:8765" in started["app"].state.settings.hosts()

    assert main(["serve", "--port", "70000"]) == 2
    (modules / "katex" / "dist").rmdir()
    started.clear()
    assert main(["serve", "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "katex/dist" in err and "make setup" in err and not started
