"""The lab queue: a real quick lab end to end, cancelling queued and running jobs, the queue's limit."""

import os
import sys
import time

import pytest
from fastapi.testclient import TestClient

from deepatlas.store import Store
from deepatlas.web.app import Settings, create_app
from deepatlas.web.jobs import JobQueue, QueueFull

from .conftest import AUTH, TOKEN

QUICK_LAB = "neuron/bias"  # about 4 s at its quick scale, most of it importing torch
LONG_LAB = "adam/optimizer-race"  # about 12 s at its default scale: long enough to interrupt


def sleeper(job):
    return [sys.executable, "-c", "import time; time.sleep(60)"]


def until(check, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s")


@pytest.fixture
def jobs_client():
    with TestClient(create_app(Settings(allowed_hosts=["testserver"], token=TOKEN))) as c:
        yield c


def test_quick_lab_end_to_end(jobs_client):
    c = jobs_client
    r = c.post("/api/jobs", json={"lab": QUICK_LAB, "scale": "quick", "seed": 3}, headers=AUTH)
    assert r.status_code == 201
    job = r.json()
    assert job["lab"] == QUICK_LAB and job["seed"] == 3 and job["state"] in ("queued", "running")
    done = until(lambda: (j := c.get(f"/api/jobs/{job['id']}").json())["state"] not in ("queued", "running") and j)
    assert done["state"] == "done", done["message"]
    assert done["n_rows"] == len(done["rows"]) > 0 and "step" in done["rows"][0]
    assert done["result"]["status"] == "ok" and done["result"]["run"] == done["run"] and done["position"] is None
    assert done["started"] >= done["created"] and done["finished"] >= done["started"]
    assert c.get(f"/api/jobs/{job['id']}?since={done['n_rows']}").json()["rows"] == []
    assert c.get(f"/api/jobs/{job['id']}?since=1").json()["rows"] == done["rows"][1:]

    record = Store().get_run(done["run"])  # the same store as CLI runs
    assert record.status == "ok" and record.scale == "quick" and record.seed == 3
    run = c.get(f"/api/runs/{done['run']}.json").json()
    assert run["figures"] and c.get("/" + run["figures"][0]).headers["content-type"] == "image/png"
    card = c.get("/api/cards/neuron.json").json()
    last = next(lab for lab in card["labs"] if lab["id"] == QUICK_LAB)["last"]
    assert last["origin"] == "run" and last["run"] == done["run"]
    [listed] = c.get("/api/jobs").json()["jobs"]
    assert listed["id"] == job["id"] and listed["n_rows"] == done["n_rows"] and listed["rows"] == []  # rows: per job


def test_cancel_queued_and_running(jobs_client):
    c = jobs_client
    long = c.post("/api/jobs", json={"lab": LONG_LAB, "scale": "default"}, headers=AUTH).json()
    queued = c.post("/api/jobs", json={"lab": QUICK_LAB}, headers=AUTH).json()
    assert queued["state"] == "queued" and queued["position"] == 1
    dropped = c.delete(f"/api/jobs/{queued['id']}", headers=AUTH).json()
    assert dropped["state"] == "cancelled" and dropped["position"] is None and dropped["run"] is None

    run_id = until(lambda: c.get(f"/api/jobs/{long['id']}").json()["run"])
    assert c.get(f"/api/jobs/{long['id']}").json()["state"] == "running"
    assert Store().get_run(run_id).status == "running"
    c.delete(f"/api/jobs/{long['id']}", headers=AUTH)
    ended = until(lambda: (j := c.get(f"/api/jobs/{long['id']}").json())["state"] != "running" and j, timeout=30)
    assert ended["state"] == "cancelled" and "interrupted" in ended["message"]
    assert Store().get_run(run_id).status == "interrupted"
    assert c.delete(f"/api/jobs/{long['id']}", headers=AUTH).json()["state"] == "cancelled"  # again: no change
    states = {j["id"]: j["state"] for j in c.get("/api/jobs").json()["jobs"]}
    assert states == {long["id"]: "cancelled", queued["id"]: "cancelled"}


def test_queue_limit():
    queue = JobQueue(command=sleeper, grace_s=2)
    with TestClient(create_app(Settings(allowed_hosts=["testserver"], token=TOKEN), jobs=queue)) as c:
        codes = [c.post("/api/jobs", json={"lab": QUICK_LAB}, headers=AUTH).status_code for _ in range(22)]
        assert codes.count(201) in (20, 21) and codes[-1] == 429  # 20 waiting, and one running
        assert "waiting" in c.post("/api/jobs", json={"lab": QUICK_LAB}, headers=AUTH).json()["detail"]
        jobs = c.get("/api/jobs").json()["jobs"]
        waiting = [j for j in jobs if j["state"] == "queued"]
        assert len(waiting) == 20 and [j["position"] for j in waiting] == list(range(1, 21))
        c.delete(f"/api/jobs/{waiting[5]['id']}", headers=AUTH)
        assert c.post("/api/jobs", json={"lab": QUICK_LAB}, headers=AUTH).status_code == 201
        running = until(lambda: [j for j in c.get("/api/jobs").json()["jobs"] if j["state"] == "running"])
        assert len(running) == 1
    # leaving the app stops the queue: the running child ends, the waiting jobs are dropped
    assert {j["state"] for j in queue.list()} == {"cancelled"}


def test_close_stops_the_running_child(tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    queue = JobQueue(command=lambda job: [sys.executable, "-c", code], grace_s=1)
    job = queue.submit(QUICK_LAB, "quick", 0)
    pid = until(lambda: pid_file.exists() and pid_file.read_text() and int(pid_file.read_text()), timeout=30)
    queue.close()
    assert queue.get(job["id"])["state"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(QueueFull, match="shutting down"):
        queue.submit(QUICK_LAB, "quick", 0)


def test_a_failing_child_fails_the_job():
    queue = JobQueue(command=lambda job: [sys.executable, "-c", "import sys; print('noise'); "
                                          "sys.stderr.write('boom: no such thing'); sys.exit(2)"])
    job = queue.submit(QUICK_LAB, "quick", 0)
    failed = until(lambda: (j := queue.get(job["id"]))["state"] == "failed" and j, timeout=30)
    assert "boom: no such thing" in failed["message"] and failed["rows"] == [] and failed["result"] is None
    queue.close()


def test_unknown_jobs(client):
    for bad in ("nope", "0123456789ab", "x" * 300):
        assert client.get(f"/api/jobs/{bad}").status_code == 404
        assert client.delete(f"/api/jobs/{bad}", headers=AUTH).status_code == 404
    assert client.get("/api/jobs/0123456789ab?since=-1").status_code == 422
    assert client.get("/api/jobs/0123456789ab?since=x").status_code == 422
    assert client.get("/api/jobs").json() == {"jobs": []}
