"""`deepatlas site build`: the same JSON as the server, a file for every card, nothing live."""

import json

import pytest

from deepatlas.catalog import load_catalog
from deepatlas.cli import main
from deepatlas.web import assets
from deepatlas.web.site import SiteError, build_site

CAT = load_catalog()


@pytest.fixture
def fake_assets(tmp_path, monkeypatch):
    """A node_modules with every VENDOR folder (one small file each) and a static folder with a page."""
    modules = tmp_path / "node_modules"
    for folder in assets.VENDOR.values():
        (modules / folder).mkdir(parents=True)
        (modules / folder / "lib.min.js").write_text("/* lib */")
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text('<script type="module" src="static/app.js"></script>')
    (static / "app.js").write_text("export {};")
    monkeypatch.setattr(assets, "NODE_MODULES", modules)
    monkeypatch.setattr("deepatlas.web.site.STATIC_DIR", static)
    return tmp_path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPATLAS_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setattr(assets, "NODE_MODULES", tmp_path_factory.mktemp("no-node-modules"))  # JSON only: faster
        written = build_site(out, require_assets=False)
    return out, written


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_file_for_every_card(site):
    out, written = site
    assert sorted(p.stem for p in (out / "api" / "cards").glob("*.json")) == sorted(CAT.by_id)
    assert written["cards"] == len(CAT) and written["files"] > len(CAT)
    for name in ("catalog", "graph", "mindmap", "roadmap", "labs", "session"):
        assert (out / "api" / f"{name}.json").is_file()
    assert (out / "api" / "roadmap.md").read_text().startswith("# deepatlas roadmap")


def test_session_is_not_live(site):
    assert read(site[0] / "api" / "session.json") == {"live": False}


def test_same_json_as_the_api(site, client):
    out, _ = site
    for name in ("catalog", "graph", "mindmap", "roadmap", "labs"):
        assert read(out / "api" / f"{name}.json") == client.get(f"/api/{name}.json").json(), name
    for card in CAT.cards[::7] + [CAT.by_id["resnet"], CAT.by_id["perceptron"]]:
        assert read(out / "api" / "cards" / f"{card.id}.json") == client.get(f"/api/cards/{card.id}.json").json()
    assert (out / "api" / "roadmap.md").read_text() == client.get("/api/roadmap.md").text


def test_the_site_shows_the_snapshot_not_your_runs_or_progress(tmp_path, client, monkeypatch):
    monkeypatch.setattr(assets, "NODE_MODULES", tmp_path / "no-node-modules")
    main(["mark", "resnet", "done"])
    out = tmp_path / "site"
    build_site(out, require_assets=False)
    road = read(out / "api" / "roadmap.json")
    assert road["counts"]["done"] == 0
    card = read(out / "api" / "cards" / "resnet.json")
    assert {lab["last"]["origin"] for lab in card["labs"] if lab["last"]} == {"snapshot"}


def test_missing_assets_fail_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assets, "NODE_MODULES", tmp_path / "nothing")
    with pytest.raises(SiteError, match="make setup"):
        build_site(tmp_path / "out")
    assert main(["site", "build", str(tmp_path / "out")]) == 2
    assert "cytoscape/dist" in capsys.readouterr().err


def test_cli_builds_with_assets_and_rebuilds(fake_assets, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["site", "build", str(out)]) == 0
    line = capsys.readouterr().out
    assert f"{len(CAT)} cards" in line and "python -m http.server" in line
    assert (out / "index.html").read_text().startswith("<script") and (out / "static" / "app.js").is_file()
    assert all((out / "vendor" / prefix / "lib.min.js").is_file() for prefix in assets.VENDOR)
    (out / "api" / "cards" / "stale.json").write_text("{}")
    assert main(["site", "build", str(out)]) == 0  # over an earlier build: replaced
    assert not (out / "api" / "cards" / "stale.json").exists()


def test_refuses_a_folder_that_is_not_a_build(fake_assets, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(SiteError, match="not empty"):
        build_site(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
