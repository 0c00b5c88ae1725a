"""``zmq-async bench`` end to end: a tiny run in a subprocess, its table and JSON checked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ours_importable() -> bool:
    try:
        return importlib.util.find_spec("zmq_async.asyncio") is not None
    except ImportError:
        return False


@pytest.mark.timeout(60)
def test_bench_cli_smoke(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    layers = "pyzmq,zmq_async.asyncio" if _ours_importable() else "pyzmq"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zmq_async",
            "bench",
            "--quick",
            "--workloads",
            "push_pull",
            "--layers",
            layers,
            "--messages",
            "2000",
            "--timeout",
            "20",
            "--json",
            str(out_json),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    assert "push_pull:" in proc.stdout
    assert "msgs/s" in proc.stdout
    assert "[1/" in proc.stderr  # progress goes to stderr
    assert all(len(line) <= 100 for line in proc.stdout.splitlines())

    doc = json.loads(out_json.read_text())
    assert set(doc) >= {"meta", "workloads", "results", "targets"}
    assert list(doc["workloads"]) == ["push_pull"]
    rows = {row["label"]: row for row in doc["results"]}
    limit = rows["pyzmq"]
    assert limit["status"] == "ok"
    assert len(limit["runs"]) == 1
    assert set(limit["median"]) >= {"count", "seconds", "rate"}
    assert 0 < limit["median"]["count"] <= 2000
    assert limit["median"]["rate"] > 0
    for row in doc["results"]:
        assert row["status"] in {"ok", "skipped"}, row
        assert row["workload"] == "push_pull"
    for target in doc["targets"]:
        assert target["verdict"] in {"PASS", "MISS", "n/a"}


def test_bench_rejects_unknown_workload() -> None:
    from zmq_async._cli import main

    assert main(["bench", "--workloads", "nope"]) == 2


def test_latency_runs_pinned_to_one_cpu_unless_asked_not_to() -> None:
    from zmq_async._bench.runner import BenchOptions, pin_cpu
    from zmq_async._bench.spec import WORKLOADS

    cpu = pin_cpu()
    if cpu is None:
        pytest.skip("no CPU affinity on this OS")
    assert BenchOptions().params(WORKLOADS["reqrep"]).cpu == cpu
    assert BenchOptions().params(WORKLOADS["push_pull"]).cpu is None
    assert BenchOptions(pin=False).params(WORKLOADS["reqrep"]).cpu is None


@pytest.mark.timeout(30)
def test_worker_pins_itself_before_measuring() -> None:
    from zmq_async._bench.runner import pin_cpu

    cpu = pin_cpu()
    if cpu is None:
        pytest.skip("no CPU affinity on this OS")
    params = {"workload": "reqrep", "size": 64, "frames": 1, "hwm": None, "duration": 0.05}
    params |= {"cap": 50, "warmup": 5, "cpu": cpu}
    request = {"layer": "pyzmq", "loop": "", "params": params}
    # The worker reports the affinity it ran with through a tiny wrapper around its handler.
    code = (
        "import json, os, sys; from zmq_async._bench import worker; "
        "reply = worker.handle(json.loads(sys.argv[1])); "
        "print(json.dumps([reply['ok'], sorted(os.sched_getaffinity(0))]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(request)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [True, [cpu]]
