"""``zmq-async bench --plot``: charts from a saved run and from a run, and the lazy matplotlib.

``bench_small.json`` is a trimmed ``--json`` file of a real run (3 workloads, 8 contenders, one
row whose runs all failed), so a change of the JSON format that old files no longer re-draw
from fails here.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from zmq_async._bench import runner
from zmq_async._bench.report import Table
from zmq_async._bench.results import Row, rows_from_json
from zmq_async._cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = Path(__file__).with_name("bench_small.json")

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is not installed (pip install 'zmq-async[plot]')",
)


def _no_worker(*args: Any, **kwargs: Any) -> dict[str, Any]:
    raise AssertionError("a benchmark worker was started")


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything would start a benchmark worker."""
    monkeypatch.setattr(runner, "_call_worker", _no_worker)


@needs_matplotlib
@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_redraw_from_saved_json_runs_nothing(
    tmp_path: Path, suffix: str, no_worker: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"chart{suffix}"
    started = time.monotonic()
    assert main(["bench", "--from-json", str(SMALL), "--plot", str(out)]) == 0
    # Importing matplotlib and drawing 3 panels: seconds, where running them takes minutes.
    assert time.monotonic() - started < 30
    assert f"wrote {out}" in capsys.readouterr().err
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert data.startswith(b"<?xml") and b"<svg" in data[:500]


@needs_matplotlib
@pytest.mark.timeout(60)
def test_svg_has_a_panel_per_workload_with_unit_direction_ratios_and_limit(
    tmp_path: Path,
) -> None:
    from zmq_async._bench.plot import draw

    document = json.loads(SMALL.read_text())
    out = tmp_path / "chart.svg"
    draw(document, str(out))
    svg = out.read_text()
    assert ElementTree.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"  # well-formed
    assert "push_pull: msgs/s, higher is better" in svg
    assert "reqrep: median round trip, µs, lower is better" in svg
    assert "fanin: req/s, higher is better" in svg
    for name, data in document["workloads"].items():
        assert data["title"].split()[0] in svg, name  # the workload's own title, wrapped
    # every pair's two names, the limit line's label, the failed row's status
    assert "zmq_async.anyio/trio" in svg and "vs zmq-anyio" in svg
    assert "pyzmq.poller: " in svg and "pyzmq: 42.1" in svg
    assert "failed" in svg
    # the ratios are the report's own `vs peer` column
    table = Table(rows_from_json(document))
    ours = [r for r in table.rows if r.variant.layer.role == "ours"]
    ratios = [table.vs_peer(r) for r in ours]
    assert sum(r is None for r in ratios) == 1  # fanin's zmq-anyio/trio failed
    for ratio in ratios:
        if ratio is not None:
            assert f"{ratio:.1f}x" in svg
    # the same document draws the same file, so a redrawn chart in the repository diffs cleanly
    again = tmp_path / "again.svg"
    draw(document, str(again))
    assert again.read_text() == svg


@needs_matplotlib
@pytest.mark.timeout(60)
def test_a_run_with_plot_draws_what_it_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rates = {"pyzmq": 1000.0, "pyzmq.poller": 900.0, "zmq.asyncio": 100.0}

    def fake_worker(request: dict[str, Any], timeout: float) -> dict[str, Any]:
        if request.get("probe"):
            return {"ok": True}
        rate = rates.get(request["layer"], 432.0)
        return {"ok": True, "sample": {"count": rate, "seconds": 1.0, "rate": rate}}

    monkeypatch.setattr(runner, "_call_worker", fake_worker)
    out = tmp_path / "run.svg"
    opts = runner.BenchOptions(
        repeat=2, workloads=("push_pull",), layers=("pyzmq", "asyncio/asyncio"), plot_path=str(out)
    )
    assert runner.run_bench(opts, out=sys.stdout, err=sys.stderr) == 0
    svg = out.read_text()
    assert "push_pull: msgs/s, higher is better" in svg
    assert "zmq_async.asyncio/asyncio" in svg
    assert "4.3x" in svg  # 432 / 100
    assert "pyzmq.poller: 900" in svg


def test_rows_read_back_from_json_are_the_rows_written() -> None:
    document = json.loads(SMALL.read_text())
    rows = rows_from_json(document)
    assert [r.to_json() for r in rows] == document["results"]
    table = Table(rows)
    row = table.get("reqrep", "zmq_async.asyncio", "uvloop")
    assert isinstance(row, Row) and row.workload.metric == "latency"
    assert row.variant.layer.peer == "zmq.asyncio"


@pytest.mark.parametrize(
    "document", [{}, {"workloads": {}}, {"workloads": {"w": {}}, "results": []}, []]
)
def test_rows_from_a_wrong_document_is_a_value_error(document: Any) -> None:
    with pytest.raises(ValueError, match="not a `zmq-async bench --json` document"):
        rows_from_json(document)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from-json", str(SMALL)], "--from-json needs --plot"),
        (["--from-json", str(SMALL), "--plot", "x.svg", "--quick"], "drop --quick"),
        (["--plot", "x.pdf"], "must end in .svg or .png"),
        (["--plot", "no/such/dir/x.svg"], "no such directory"),
        (["--from-json", "no-such.json", "--plot", "x.svg"], "no-such.json"),
        (["--soak", "--plot", "x.svg"], "does not go with --soak"),
        (["scale", "--plot", "x.svg"], "does not go with scale"),
    ],
)
def test_bad_plot_options_fail_at_once(
    argv: list[str],
    message: str,
    no_worker: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_the_cli_and_bench_modules_do_not_import_matplotlib() -> None:
    code = textwrap.dedent(
        """
        import sys
        import zmq_async._cli, zmq_async._bench.runner, zmq_async._bench.plot
        from zmq_async._cli import main
        assert main(["bench", "--list"]) == 0
        assert "matplotlib" not in sys.modules, "imported matplotlib"
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--plot", "{tmp}/x.svg", "--workloads", "push_pull", "--layers", "pyzmq"],
        ["bench", "--from-json", str(SMALL), "--plot", "{tmp}/x.png"],
    ],
)
def test_without_matplotlib_plot_fails_before_running_and_names_the_extra(
    tmp_path: Path, argv: list[str]
) -> None:
    code = textwrap.dedent(
        """
        import json, sys
        sys.modules["matplotlib"] = None  # what `import matplotlib` sees when it is absent
        from zmq_async._bench import runner
        def no_worker(*args, **kwargs):
            raise SystemExit("a benchmark worker was started")
        runner._call_worker = no_worker
        from zmq_async._cli import main
        sys.exit(main(json.loads(sys.argv[1])))
        """
    )
    args = json.dumps([a.format(tmp=tmp_path) for a in argv])
    proc = subprocess.run(
        [sys.executable, "-c", code, args], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 2, proc.stderr
    assert "--plot needs matplotlib" in proc.stderr
    assert "pip install 'zmq-async[plot]'" in proc.stderr
    assert list(tmp_path.iterdir()) == []
