"""``zmq-async bench scale`` end to end: a tiny run in a subprocess, its table and JSON checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_bench_scale_runs_every_phase_at_tiny_n(tmp_path: Path) -> None:
    out_json = tmp_path / "scale.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zmq_async",
            "bench",
            "scale",
            "--quick",
            "--sizes",
            "1,3",
            "--layers",
            "pyzmq,zmq_async.asyncio/asyncio,zmq_async.anyio/trio",
            "--json",
            str(out_json),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    assert "N = 1\n" in proc.stdout and "N = 3\n" in proc.stdout
    assert "[6/6] scale N=3" in proc.stderr  # progress goes to stderr
    assert all(len(line) <= 100 for line in proc.stdout.splitlines())
    doc = json.loads(out_json.read_text())
    assert doc["sizes"] == [1, 3]
    rows = {(row["n"], row["label"]): row for row in doc["results"]}
    assert set(rows) == {
        (n, label)
        for n in (1, 3)
        for label in ("pyzmq", "zmq_async.asyncio/asyncio", "zmq_async.anyio/trio")
    }
    for (n, _), row in rows.items():
        sample = row["sample"]
        assert sample["n"] == n
        assert 0 <= sample["idle_cpu"] < 1
        assert sample["wake_us"] > 0 and sample["reqrep_us"] > 0
        assert sample["throughput"] > 0
        assert sample["throughput_per_socket"] == pytest.approx(sample["throughput"] / n)


def test_bench_scale_rejects_a_bad_size() -> None:
    from zmq_async._cli import main

    with pytest.raises(SystemExit):
        main(["bench", "scale", "--sizes", "0"])


def test_bench_scale_gives_up_on_a_contender_at_larger_n_once_it_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer that timed out at N is not run again at every larger N (each a full timeout)."""
    import io

    from zmq_async._bench import runner, scale

    calls: list[tuple[str, int]] = []

    def fake_worker(request: dict[str, Any], timeout: float, module: str = "") -> dict[str, Any]:
        calls.append((request["layer"], request["n"]))
        if request["layer"] == "zmq_async.asyncio" and request["n"] >= 3:
            return {"ok": False, "error": "timed out"}
        sample = {"n": request["n"], "idle_cpu": 0.0, "wake_us": 1.0, "reqrep_us": 1.0}
        sample.update(idle_us_per_socket=0.0, throughput=1.0, throughput_per_socket=1.0)
        return {"ok": True, "sample": sample}

    monkeypatch.setattr(runner, "_call_worker", fake_worker)
    monkeypatch.setattr(runner, "_probe", lambda variant, timeout: None)
    opts = scale.ScaleOptions(quick=True, sizes=(1, 3, 5), layers=("zmq_async.asyncio/asyncio",))
    err = io.StringIO()
    assert scale.run_scale(opts, out=io.StringIO(), err=err) == 1
    assert calls == [("zmq_async.asyncio", 1), ("zmq_async.asyncio", 3)]
    assert "not run: failed at N=3" in err.getvalue()
