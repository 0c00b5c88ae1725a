"""``zmq-async bench scale`` end to end: a tiny run in a subprocess, its table and JSON checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
