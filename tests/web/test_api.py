"""Every read-only endpoint and the progress write, against the real catalogue and an isolated store."""

import json
import re
import subprocess
import sys
import time

import pytest

from deepatlas import paths
from deepatlas.catalog import load_catalog
from deepatlas.catalog.schema import FAMILIES, KINDS, LINEAGE
from deepatlas.cli import main
from deepatlas.store import Store

from .conftest import AUTH

CAT = load_catalog()
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def fake_run(lab="perceptron/xor", card="perceptron", scale="default", status="ok", claims=None, when=None):
    """A finished run in the store with a figure and a metrics file, as `run_lab` leaves one."""
    store = Store()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + f"{len(store.runs(limit=1000)):06x}"
    folder = paths.runs_dir() / lab.replace("/", "__") / run_id
    folder.mkdir(parents=True)
    (folder / "curve.png").write_bytes(PNG)
    (folder / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    store.start_run(run_id, lab, card, scale, 0, "cpu", {"steps": 1}, folder)
    store.finish_run(run_id, status, 1.5, {"acc": 1.0, "diverged": float("nan")},
                     [{"metric": "acc", "op": ">=", "target": 0.9, "value": 1.0, "passed": True}], claims)
    if when is not None:
        with store.connect() as conn:
            conn.execute("UPDATE runs SET started = ? WHERE id = ?", (when, run_id))
    return run_id, folder


def test_session(client):
    s = client.get("/api/session.json").json()
    assert s["live"] is True and s["token"] == AUTH["X-Deepatlas-Token"] and s["version"] == "0.1.0"


def test_catalog(client):
    doc = client.get("/api/catalog.json").json()
    assert [c["id"] for c in doc["cards"]] == [c.id for c in CAT]
    assert [f["id"] for f in doc["families"]] == list(FAMILIES)
    assert all(re.match(r"^#[0-9a-f]{6}$", f["color"]) and f["name_zh"] for f in doc["families"])
    assert [s["n"] for s in doc["stages"]] == [s.n for s in CAT.stages] and doc["kinds"] == list(KINDS)
    for row in doc["cards"]:
        card = CAT.by_id[row["id"]]
        assert sum(row["claims"].values()) == len(card.claims)
        assert row["top_family"] == card.top_family and row["labs"] == card.labs
    resnet = next(r for r in doc["cards"] if r["id"] == "resnet")
    assert resnet["claims"]["supported"] >= 1 and resnet["impl"] == "deepatlas.zoo.vision.resnet"


def test_graph(client):
    g = client.get("/api/graph.json").json()
    assert {n["id"] for n in g["nodes"]} == set(CAT.by_id)
    ids = {n["id"] for n in g["nodes"]}
    assert g["edges"] and all(e["source"] in ids and e["target"] in ids and e["type"] in LINEAGE for e in g["edges"])
    assert any(e["source"] == "resnet" for e in g["edges"])
    assert [lane["family"] for lane in g["lanes"]] == list(FAMILIES)
    assert g["width"] > 0 and g["height"] == g["lanes"][-1]["y1"] and g["ticks"]


def test_mindmap_covers_every_card_once(client):
    tree = client.get("/api/mindmap.json").json()
    assert tree["id"] == "deepatlas" and [f["id"] for f in tree["children"]] == list(FAMILIES)
    leaves = []

    def walk(node, family):
        if "card" in node:
            leaves.append(node["card"])
            assert CAT.by_id[node["card"]].family.startswith(family)
            assert node["name"] and node["name_zh"]
            return
        assert node["name"] and node["name_zh"] and node["children"]
        for child in node["children"]:
            walk(child, node["id"] if node["id"] != "deepatlas" else "")

    walk(tree, "")
    assert sorted(leaves) == sorted(CAT.by_id)
    vision = next(f for f in tree["children"] if f["id"] == "vision")
    cnn = next(s for s in vision["children"] if s["id"] == "vision.cnn")
    assert cnn["name_zh"] == "卷积神经网络" and any(leaf["card"] == "resnet" for leaf in cnn["children"])


def test_card(client):
    card = client.get("/api/cards/resnet.json").json()
    assert card["name"] and card["summary_zh"] and card["summary_en"] and card["equations"][0]["tex"]
    assert card["paper"]["link"] == "https://arxiv.org/abs/1512.03385"
    assert {"id", "name", "name_zh", "type"} <= set(card["parents"][0])
    assert all(p["type"] in LINEAGE for p in card["parents"] + card["children"])
    assert card["source"]["path"] == "zoo/vision/resnet.py" and "class" in card["source"]["code"]
    statuses = {cl["verdict"]["status"] for cl in card["claims"]}
    assert statuses <= {"supported", "refuted", "pending", "not_checkable"}
    snap = next(cl for cl in card["claims"] if cl["verdict"]["origin"] == "snapshot")
    assert snap["verdict"]["measured_at"] and snap["verdict"]["machine"] and snap["verdict"]["evidence"]
    lab = card["labs"][0]
    assert lab["id"] in CAT.by_id["resnet"].labs and lab["budget_s"] > 0 and lab["goals"]
    assert lab["last"]["origin"] == "snapshot" and lab["last"]["figures"] == []


def test_card_without_paper_or_impl(client):
    bare = next(c for c in CAT if c.paper is None)
    doc = client.get(f"/api/cards/{bare.id}.json").json()
    assert doc["paper"] is None
    no_impl = next(c for c in CAT if c.impl is None)
    assert client.get(f"/api/cards/{no_impl.id}.json").json()["source"] is None


def test_not_checkable_claims():
    card = next(c for c in CAT if any(cl.not_checkable for cl in c.claims))
    from deepatlas.web.api import Atlas

    claims = Atlas(catalog=CAT).card(card.id)["claims"]
    row = next(cl for cl in claims if cl["not_checkable"])
    assert row["verdict"]["status"] == "not_checkable" and row["verdict"]["origin"] is None


@pytest.mark.parametrize("bad", ["resnte", "RESNET", "x" * 300, "..", "%2e%2e%2fpyproject", "resnet%00"])
def test_unknown_card_is_404(client, bad):
    r = client.get(f"/api/cards/{bad}.json")
    assert r.status_code == 404
    assert "unknown card" in r.json()["detail"] or r.json()["detail"] == "Not Found"


def test_unknown_card_suggests(client):
    detail = client.get("/api/cards/resnte.json").json()["detail"]
    assert detail.startswith("unknown card 'resnte'; did you mean resnet")


def test_your_newer_run_takes_precedence(client):
    claim = next(cl for cl in CAT.by_id["perceptron"].claims if cl.lab == "perceptron/xor")
    run_id, _ = fake_run(claims=[{"id": claim.id, "verdict": "refuted", "evidence": "measured here"}])
    card = client.get("/api/cards/perceptron.json").json()
    verdict = next(cl for cl in card["claims"] if cl["id"] == claim.id)["verdict"]
    assert verdict == {**verdict, "status": "refuted", "evidence": "measured here", "origin": "run", "run": run_id}
    last = next(lab for lab in card["labs"] if lab["id"] == "perceptron/xor")["last"]
    assert last["origin"] == "run" and last["run"] == run_id and last["metrics"]["diverged"] is None
    assert last["figures"] == [f"api/runs/{run_id}/files/curve.png"]
    counts = next(c for c in client.get("/api/catalog.json").json()["cards"] if c["id"] == "perceptron")["claims"]
    assert counts["refuted"] >= 1


def test_an_older_run_does_not_hide_the_snapshot(client):
    fake_run(when=0.0)
    card = client.get("/api/cards/perceptron.json").json()
    assert next(lab for lab in card["labs"] if lab["id"] == "perceptron/xor")["last"]["origin"] == "snapshot"


def test_roadmap_shares_state_with_mark(client, capsys):
    assert main(["mark", "resnet", "done"]) == 0 and main(["mark", "lstm", "learning"]) == 0
    road = client.get("/api/roadmap.json").json()
    states = {c["id"]: c["state"] for s in road["stages"] for c in s["cards"]}
    assert states["resnet"] == "done" and states["lstm"] == "learning" and states["gan"] == "pending"
    assert road["counts"] == {"done": 1, "learning": 1, "skipped": 0, "pending": len(CAT) - 2}
    assert sorted(states) == sorted(CAT.by_id)
    stage = next(s for s in road["stages"] if any(c["id"] == "resnet" for c in s["cards"]))
    assert stage["percent"] == round(100 / len(stage["cards"]), 1)

    r = client.put("/api/progress/gan", json={"state": "skipped"}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"card": "gan", "state": "skipped"}
    capsys.readouterr()
    main(["progress", "--format", "json"])
    assert json.loads(capsys.readouterr().out)["cards"]["gan"] == "skipped"
    client.put("/api/progress/gan", json={"state": "pending"}, headers=AUTH)
    assert "gan" not in Store().progress()


def test_roadmap_markdown(client):
    client.put("/api/progress/resnet", json={"state": "done"}, headers=AUTH)
    r = client.get("/api/roadmap.md")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert "roadmap.md" in r.headers["content-disposition"]
    assert r.text.startswith("# deepatlas roadmap") and "## Stage 1 · Foundations" in r.text
    assert re.search(r"- \[x\] .*\(`resnet`\)", r.text)


def test_progress_bad_input(client):
    for body in ({"state": "finished"}, {"state": 1}, {}, {"state": "done", "extra": 1}, ["done"]):
        assert client.put("/api/progress/resnet", json=body, headers=AUTH).status_code == 422, body
    assert client.put("/api/progress/resnet", content=b"not json", headers=AUTH).status_code == 422
    r = client.put("/api/progress/resnte", json={"state": "done"}, headers=AUTH)
    assert r.status_code == 404 and "did you mean resnet" in r.json()["detail"]


def test_labs(client):
    labs = client.get("/api/labs.json").json()
    assert {lab for c in CAT for lab in c.labs} <= {lab["id"] for lab in labs}  # equal: tests/labs checks it
    xor = next(lab for lab in labs if lab["id"] == "perceptron/xor")
    assert xor["card"] == "perceptron" and {"quick", "default"} <= set(xor["scales"]) and xor["budget_s"] > 0
    assert {"metric", "op", "target"} <= set(xor["goals"][0])


def test_runs(client):
    a, _ = fake_run()
    b, _ = fake_run(lab="neuron/bias", card="neuron", scale="quick")
    assert [r["id"] for r in client.get("/api/runs.json").json()] == [b, a]
    assert [r["id"] for r in client.get("/api/runs.json?lab=neuron/bias").json()] == [b]
    assert [r["id"] for r in client.get("/api/runs.json?card=perceptron").json()] == [a]
    assert len(client.get("/api/runs.json?limit=1").json()) == 1
    for query in ("limit=0", "limit=201", "limit=x", "lab=" + "a" * 200):
        assert client.get(f"/api/runs.json?{query}").status_code == 422, query
    assert client.get("/api/runs.json?lab=nope/nope").status_code == 404
    assert client.get("/api/runs.json?card=resnte").status_code == 404


def test_run_and_its_files(client):
    run_id, folder = fake_run()
    doc = client.get(f"/api/runs/{run_id}.json").json()
    assert doc["id"] == run_id and doc["status"] == "ok" and doc["metrics"]["diverged"] is None
    assert doc["figures"] == [f"api/runs/{run_id}/files/curve.png"]
    png = client.get(f"/api/runs/{run_id}/files/curve.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content == PNG
    assert client.get(f"/api/runs/{run_id}/files/metrics.jsonl").text.startswith('{"step"')
    (folder / "notes.py").write_text("secret")
    (folder / "link.txt").symlink_to(paths.home() / "deepatlas.sqlite")
    for name in ("notes.py", "missing.png", "link.txt", "..%2Fconfig.json", "%2e%2e", ".png", "a%00.png"):
        assert client.get(f"/api/runs/{run_id}/files/{name}").status_code == 404, name
    assert client.get(f"/api/runs/{run_id}/files/sub/curve.png").status_code == 404


@pytest.mark.parametrize("bad", ["20260101-000000-abcdef", "nope", "%25", "2026", "_", "x" * 500])
def test_unknown_run_is_404(client, bad):
    r = client.get(f"/api/runs/{bad}.json")
    assert r.status_code == 404
    assert client.get(f"/api/runs/{bad}/files/curve.png").status_code == 404


def test_a_run_prefix_is_not_a_run(client):
    run_id, _ = fake_run()
    assert client.get(f"/api/runs/{run_id[:-2]}.json").status_code == 404


def test_openapi_lists_every_route(client, api_app):
    schema = client.get("/openapi.json").json()
    documented = {(path, method.upper()) for path, ops in schema["paths"].items() for method in ops}
    routes = {(re.sub(r":path}", "}", r.path), m) for r in api_app.routes if hasattr(r, "methods") for m in r.methods
              if m != "HEAD" and r.path not in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")}
    assert routes <= documented and len(routes) == 19
    job = schema["components"]["schemas"]["JobBody"]
    assert job["additionalProperties"] is False and job["properties"]["seed"]["maximum"] == 1_000_000


def test_server_never_imports_torch(tmp_path):
    code = """
import sys
from fastapi.testclient import TestClient
from deepatlas.web.app import Settings, create_app
c = TestClient(create_app(Settings(allowed_hosts=["testserver"])))
bare = next(card.id for card in c.app.state.atlas.cat if card.impl and not card.labs)  # labs: a child process
for url in ("catalog", "graph", "mindmap", "roadmap", "runs", "cards/" + bare):
    assert c.get(f"/api/{url}.json").status_code == 200, url
assert "torch" not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DEEPATLAS_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
