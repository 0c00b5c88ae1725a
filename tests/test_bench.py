"""``zmq-async bench`` end to end: a tiny run in a subprocess, its table and JSON checked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _row(workload: str, label: str, value: float) -> Any:
    from zmq_async._bench.layers import variants
    from zmq_async._bench.results import Row
    from zmq_async._bench.spec import WORKLOADS

    w = WORKLOADS[workload]
    (variant,) = [v for v in variants() if v.label == label]
    key = "median_us" if w.metric == "latency" else "rate"
    return Row(w, variant, runs=[{"count": 1.0, "seconds": 1.0, "p99_us": value, key: value}])


def test_limit_targets_use_each_workloads_limit_row() -> None:
    from zmq_async._bench.report import evaluate_targets, format_report

    rows = [
        # throughput is held to the Poller row, latency to blocking pyzmq
        _row("push_pull_inproc", "pyzmq", 10.0),
        _row("push_pull_inproc", "pyzmq.poller", 1000.0),
        _row("push_pull_inproc", "zmq_async.asyncio/asyncio", 499.0),
        _row("push_pull_inproc", "zmq_async.green/gevent", 900.0),
        _row("reqrep", "pyzmq", 30.0),
        _row("reqrep", "pyzmq.poller", 1.0),
        _row("reqrep", "zmq_async.asyncio/asyncio", 39.0),
        _row("reqrep", "zmq_async.green/gevent", 40.0),
    ]
    verdicts = {
        (v.target.workload, v.target.layer): v
        for v in evaluate_targets(rows)
        if v.target.against == "limit" and v.loop in ("asyncio", "gevent")
    }
    assert verdicts["push_pull_inproc", "zmq_async.asyncio"].verdict == "MISS"  # 0.499 < 0.5
    assert verdicts["push_pull_inproc", "zmq_async.green"].verdict == "PASS"  # 0.9 >= 0.9
    assert verdicts["reqrep", "zmq_async.asyncio"].verdict == "PASS"  # 39 <= 1.3 * 30
    assert verdicts["reqrep", "zmq_async.green"].verdict == "MISS"  # 40 > 1.3 * 30
    report = format_report(rows, [], 1)
    assert "targets: zmq_async.asyncio vs plain pyzmq in one thread" in report
    assert all(len(line) <= 100 for line in report.splitlines())


def test_soak_verdict_is_the_fitted_rss_growth() -> None:
    from zmq_async._bench.soak import TOLERANCE, verdict

    flat = [(float(t), 50_000_000 + (4096 if t % 2 else 0)) for t in range(100)]
    leak = [(float(t), 50_000_000 + t * TOLERANCE // 50) for t in range(100)]
    start_up = [(float(t), 10_000_000 * min(t, 5)) for t in range(100)]  # warm-up growth only
    assert verdict(flat)[1] == "PASS"
    assert verdict(leak)[1] == "MISS"
    assert verdict(start_up)[1] == "PASS"
    assert verdict([(1.0, 10)]) == (None, "n/a")


@pytest.mark.timeout(60)
def test_soak_smoke(tmp_path: Path) -> None:
    import io

    from zmq_async._bench.runner import BenchOptions
    from zmq_async._bench.soak import rss_bytes, run_soak

    if rss_bytes(1) is None:
        pytest.skip("no /proc to read a process's RSS from")
    label = "zmq_async.asyncio/asyncio" if _ours_importable() else "pyzmq.poller"
    out, err = io.StringIO(), io.StringIO()
    opts = BenchOptions(layers=(label,), messages=30_000, timeout=20, json_path=str(tmp_path / "s"))
    status = run_soak(opts, interval=0.02, out=out, err=err)
    (line,) = [line for line in out.getvalue().splitlines() if line.strip().startswith(label)]
    # So short a run is mostly the worker's start-up (imports grow the RSS): only the shape
    # of the report is checked here, the verdict by the test above.
    assert line.split()[-1] in {"PASS", "MISS"}, err.getvalue()
    assert status == (1 if line.split()[-1] == "MISS" else 0)
    (result,) = json.loads((tmp_path / "s").read_text())["results"]
    assert result["ok"] and result["sample"]["count"] == 30_000
    assert len(result["rss"]) >= 2 and all(rss > 0 for _, rss in result["rss"])
