"""Every CLI command, its JSON, its errors, and that catalogue commands stay free of torch."""

import json
import subprocess
import sys

import pytest

from deepatlas.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "deepatlas plan --to" in out and "DEEPATLAS_HOME" in out


def test_list_filters(capsys):
    code, out, _ = run(capsys, "list", "--family", "vision", "--stage", "1", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and rows
    assert all(r["family"].startswith("vision") and r["stage"] == 1 for r in rows)
    code, out, _ = run(capsys, "list", "--has-lab", "--format", "json")
    assert {r["id"] for r in json.loads(out)} >= {"perceptron"}
    code, out, _ = run(capsys, "list", "--kind", "system", "--lang", "zh")
    assert code == 0 and "GPT-4" in out and "cards" in out


def test_show(capsys):
    code, out, _ = run(capsys, "show", "perceptron")
    assert code == 0 and "Perceptron" in out and "Claims" in out and "[supported]" in out
    code, out, _ = run(capsys, "show", "感知机", "--lang", "zh")
    assert code == 0 and "论断" in out
    code, out, _ = run(capsys, "show", "resnet", "--format", "json")
    card = json.loads(out)
    assert card["id"] == "resnet" and card["paper"]["arxiv"] == "1512.03385"
    assert all(c["verdict"]["verdict"] in ("supported", "refuted", "pending", "not checkable") for c in card["claims"])


def test_show_unknown_suggests(capsys):
    code, _, err = run(capsys, "show", "resnte")
    assert code == 2 and "unknown card 'resnte'; did you mean resnet" in err


def test_lineage(capsys):
    code, out, _ = run(capsys, "lineage", "transformer")
    assert code == 0 and "ancestors" in out and "descendants" in out and "BERT" in out


def test_search(capsys):
    code, out, _ = run(capsys, "search", "残差")
    assert code == 0 and "resnet" in out
    code, out, _ = run(capsys, "search", "attention", "--format", "json")
    assert any(r["id"] == "transformer" for r in json.loads(out))


def test_plan(capsys):
    code, out, _ = run(capsys, "plan", "--to", "transformer", "--weeks", "4", "--format", "json")
    plan = json.loads(out)
    order = [i["id"] for s in plan["stages"] for i in s["items"]]
    assert code == 0 and order[-1] == "transformer" and abs(plan["total_weeks"] - 4) < 0.05
    for s in plan["stages"]:
        for item in s["items"]:
            assert all(order.index(n) < order.index(item["id"]) for n in item["needs"])
    code, out, _ = run(capsys, "plan")
    assert code == 0 and "Stage 1 · Foundations" in out
    code, _, err = run(capsys, "plan", "--weeks", "0")
    assert code == 2 and "--weeks must be a positive" in err


def test_mark_and_progress(capsys):
    assert run(capsys, "mark", "perceptron", "done")[0] == 0
    assert run(capsys, "mark", "MLP", "learning")[0] == 0
    code, out, _ = run(capsys, "progress", "--format", "json")
    prog = json.loads(out)
    assert prog["cards"] == {"perceptron": "done", "mlp": "learning"} and prog["overall_percent"] > 0
    run(capsys, "mark", "perceptron", "pending")
    _, out, _ = run(capsys, "progress", "--format", "json")
    assert json.loads(out)["cards"] == {"mlp": "learning"}
    _, out, _ = run(capsys, "plan", "--to", "mlp")
    assert "▶" in out


def test_data(capsys):
    code, out, _ = run(capsys, "data", "--format", "json")
    names = {r["name"] for r in json.loads(out)}
    assert code == 0 and {"digits", "mnist_subset", "mnist1d", "shakespeare", "karate_club"} <= names


def test_validate(capsys):
    code, out, _ = run(capsys, "validate")
    assert code == 0 and "0 error(s)" in out


def test_run_json_and_runs(capsys):
    code, out, _ = run(capsys, "run", "perceptron/xor", "--scale", "quick", "--format", "json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "ok" and summary["lab"] == "perceptron/xor"
    code, out, _ = run(capsys, "runs", "--format", "json")
    assert [r["id"] for r in json.loads(out)] == [summary["run"]]
    code, out, _ = run(capsys, "runs", "perceptron")
    assert summary["run"] in out
    code, out, _ = run(capsys, "run", "perceptron/xor", "--scale", "quick", "--quiet")
    assert code == 0 and "plot: " in out and out.split("plot: ")[1].split()[0].endswith("xor.png")


def test_run_errors(capsys):
    code, _, err = run(capsys, "run", "perceptron/xor", "--set", "steps")
    assert code == 2 and "--set expects KEY=VALUE" in err
    code, _, err = run(capsys, "run", "perceptron/xor", "--set", "speed=3")
    assert code == 2 and "allowed settings are perceptron_epochs:int" in err
    code, _, err = run(capsys, "run", "perceptron/xr")
    assert code == 2 and "did you mean perceptron/xor" in err


def test_verify_json_shape(capsys):
    code, out, _ = run(capsys, "verify", "--lab", "perceptron/xor", "--format", "json")
    (row,) = json.loads(out)
    assert set(row) >= {"lab", "card", "scale", "seconds", "goals", "claims"}
    assert set(row["goals"][0]) == {"metric", "op", "target", "value", "passed"}
    assert set(row["claims"][0]) == {"id", "verdict", "evidence"}
    assert code == 0


def test_verify_snapshot_needs_default_scale(capsys):
    code, _, err = run(capsys, "verify", "--stage", "1", "--scale", "quick", "--snapshot")
    assert code == 2 and "--snapshot records default-scale runs" in err


def test_labs_and_models(capsys):
    code, out, _ = run(capsys, "labs", "--format", "json")
    assert code == 0 and any(lb["lab"] == "perceptron/xor" for lb in json.loads(out))
    code, out, _ = run(capsys, "models", "m*")
    assert code == 0 and "mlp" in out


@pytest.mark.parametrize("argv", [["list"], ["show", "resnet"], ["lineage", "gpt"], ["search", "gan"], ["plan"],
                                  ["mark", "mlp", "done"], ["progress"], ["data"]])
def test_catalogue_commands_do_not_import_torch(argv):
    code = (f"import sys; from deepatlas.cli import main; main({argv!r}); "
            "sys.stdout.flush(); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("NO-TORCH")


def test_tour_runs_the_fundamentals_and_points_at_the_rest(capsys):
    code, out, _ = run(capsys, "tour", "--scale", "quick")
    assert "cards" in out and "perceptron/xor" in out and "lenet5/mnist" not in out
    assert "The rest of stage 1" in out and "deepatlas verify --stage 1" in out
