"""``zmq-async bench --plot``: a chart of a run, one panel per workload.

In each panel every one of our rows (a layer on one loop) has a bar beside its peer's on the same
loop, labelled with the ratio the table prints as ``vs peer``; plain pyzmq in one thread (the
workload's limit row) is a dashed line. The whiskers span the repeats' minimum to maximum.

matplotlib (the ``plot`` extra) is imported only by :func:`check` and :func:`draw`, never at
import time, and only through its Agg canvas: no pyplot, no screen.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from zmq_async._bench.report import Table
from zmq_async._bench.results import Row, key_metric, rows_from_json
from zmq_async._bench.spec import UNITS, Workload

if TYPE_CHECKING:
    from matplotlib.axes import Axes

SUFFIXES = (".svg", ".png")
INSTALL_HINT = "pip install 'zmq-async[plot]'"

OURS = "#1f6fb4"
PEER = "#b0b0b0"
LIMIT = "#222222"
#: Inches per bar pair; panels are two to a row, sized for a README (about 900 px wide).
_PAIR_HEIGHT = 0.4
_WIDTH = 11.0
#: A bar's thickness, in pairs (a pair's two bars leave a gap of 1 - 2 * _BAR to the next).
_BAR = 0.4
#: Characters per line of a panel's title, to stay within the panel's width.
_TITLE_CHARS = 46


def check(path: str) -> str | None:
    """Why a chart cannot be written to ``path`` (suffix, folder, no matplotlib), else ``None``.

    Called before any benchmark runs, so a long run never ends in a failed drawing.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        return f"--plot {path}: the file name must end in {' or '.join(SUFFIXES)}"
    if not Path(path).resolve().parent.is_dir():
        return f"--plot {path}: no such directory {str(Path(path).parent)!r}"
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        return f"--plot needs matplotlib ({e}); install the plot extra: {INSTALL_HINT}"
    return None


def redraw(json_path: str, path: str, err: TextIO) -> int:
    """Draw ``path`` from a saved ``--json`` file, running nothing. Returns 0, or 2 on bad input."""
    problem = check(path)
    if problem is None:
        try:
            document = json.loads(Path(json_path).read_text())
            draw(document, path)
        except (OSError, ValueError) as e:  # JSONDecodeError and a wrong document are ValueErrors
            problem = f"--from-json {json_path}: {e}"
    if problem is not None:
        print(problem, file=err)
        return 2
    print(f"wrote {path}", file=err)
    return 0


def draw(document: dict[str, Any], path: str) -> None:
    """Write the chart of a bench document (what ``--json`` saves) to ``path`` (.svg or .png).

    Raises ValueError if ``document`` is not a bench document or has no measured row.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = Table(rows_from_json(document))
    workloads = list(dict.fromkeys(r.workload for r in table.rows if r.value() is not None))
    if not workloads:
        raise ValueError("no workload has a measured row to draw")
    panels = [(w, _pairs(table, w)) for w in workloads]
    cols = min(2, len(panels))
    grid = [panels[i : i + cols] for i in range(0, len(panels), cols)]
    heights = [max(len(pairs) for _, pairs in row) * _PAIR_HEIGHT + 1.2 for row in grid]
    # SVG text stays text (smaller than glyph outlines, and searchable); the same document gives
    # the same file (fixed ids, no date), so a redrawn chart in the repository diffs cleanly.
    with rc_context(
        {"font.size": 9.5, "axes.titlesize": 9.5, "svg.fonttype": "none", "svg.hashsalt": "zmq"}
    ):
        fig = Figure(figsize=(_WIDTH, sum(heights) + 1.2), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(grid), cols, squeeze=False, height_ratios=heights)
        for r, row in enumerate(grid):
            for c in range(cols):
                if c >= len(row):
                    axes[r][c].set_axis_off()
                    continue
                workload, pairs = row[c]
                labels = [_label(*pair) for pair in pairs]
                shown = c == 0 or labels != [_label(*pair) for pair in row[0][1]]
                _panel(axes[r][c], table, workload, pairs, labels if shown else [])
        fig.suptitle(_heading(document.get("meta", {})), fontsize=10)
        _legend(fig)
        metadata = {"Date": None} if path.lower().endswith(".svg") else {}
        fig.savefig(path, dpi=110, metadata=metadata)


Pair = tuple[Row | None, Row | None]


def _pairs(table: Table, workload: Workload) -> list[Pair]:
    """(ours, its peer) per loop in table order; a peer without ours of its own comes alone."""
    rows = [r for r in table.rows if r.workload is workload and r.status != "skipped"]
    pairs: list[Pair] = []
    paired: set[int] = set()
    for row in rows:
        if row.variant.layer.role == "ours":
            peer = table.get(workload.name, row.variant.layer.peer, row.variant.loop)
            pairs.append((row, peer))
            paired.add(id(peer))
    pairs += [(None, r) for r in rows if r.variant.layer.role == "peer" and id(r) not in paired]
    return pairs


def _panel(
    ax: Axes, table: Table, workload: Workload, pairs: list[Pair], labels: list[str]
) -> None:
    """One workload: bar pairs top to bottom, the limit line, the ratios, y labels if given."""
    latency = workload.metric == "latency"
    unit = "median round trip, µs" if latency else UNITS[workload.metric]
    better = "lower" if latency else "higher"
    title = textwrap.fill(workload.title, _TITLE_CHARS)
    ax.set_title(f"{workload.name}: {unit}, {better} is better\n{title}", loc="left")
    metric = key_metric(workload)
    reach = 0.0  # the rightmost point drawn, so that every label fits inside the panel
    for side, color in ((0, OURS), (1, PEER)):
        ys, values, low, high = [], [], [], []
        for i, pair in enumerate(pairs):
            row = pair[side]
            if row is None:
                continue
            y = i + (side - 0.5) * _BAR  # ours above, the peer below
            value = row.value()
            if value is None:  # every run failed
                ax.text(0, y, f" {row.status}", va="center", color="#a00000")
                continue
            runs = [run[metric] for run in row.runs]
            ys.append(y)
            values.append(value)
            low.append(value - min(runs))
            high.append(max(runs) - value)
            reach = max(reach, *runs)
        error = {"elinewidth": 0.7, "ecolor": "#555555"}
        ax.barh(ys, values, height=_BAR, color=color, xerr=[low, high], error_kw=error)
    for y, (ours, _) in enumerate(pairs):
        if ours is not None and (vs := table.vs_peer(ours)) is not None:
            tip = max(run[metric] for run in ours.runs)
            ax.text(tip, y - _BAR / 2, f" {vs:.1f}x", va="center", weight="bold")
    limit = table.limit_row(workload.name, workload.limit)
    if limit is not None and (value := limit.value()) is not None:
        ax.axvline(value, color=LIMIT, linestyle="--", linewidth=1)
        label = f" {limit.variant.label}: {_short(value)}"
        ax.text(value, -0.95, label, va="top", color=LIMIT, fontsize="small")
        reach = max(reach, value)
    ax.set_xlim(0, reach * 1.2 or 1)
    ax.set_ylim(len(pairs) - 0.5, -1.0)
    ax.set_yticks(range(len(pairs)), labels or [""] * len(pairs))
    ax.tick_params(axis="y", left=False)
    ax.xaxis.set_major_formatter(lambda x, _: _short(x))
    ax.grid(axis="x", color="#e4e4e4", linewidth=0.6)
    ax.set_axisbelow(True)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)


def _label(ours: Row | None, peer: Row | None) -> str:
    """``zmq_async.asyncio/uvloop`` over ``vs zmq.asyncio``: the pair's two names."""
    if ours is None:
        return peer.variant.label if peer is not None else ""
    if peer is None:
        return ours.variant.label
    return f"{ours.variant.label}\nvs {peer.variant.layer.name}"


def _short(x: float) -> str:
    """Axis numbers as 250k, 1.5M, 60."""
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}" if not math.isclose(x, 0) else "0"


def _heading(meta: dict[str, Any]) -> str:
    host = ", ".join(
        str(v)
        for v in (
            meta.get("python"),
            meta.get("platform"),
            meta.get("cpus") and f"{meta['cpus']} CPUs",
            meta.get("pyzmq") and f"pyzmq {meta['pyzmq']}",
            meta.get("libzmq") and f"libzmq {meta['libzmq']}",
        )
        if v
    )
    repeat = meta.get("repeat")
    runs = f"median of {repeat} runs (whiskers: min to max)" if repeat else "median of the runs"
    ratios = "bold: ours against its peer on the same loop (> 1x: ours is better)"
    return f"zmq-async bench: {host}\n{runs}; {ratios}"


def _legend(fig: Any) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.legend(
        handles=[
            Patch(color=OURS, label="zmq_async (ours)"),
            Patch(color=PEER, label="its peer (pyzmq's module / zmq-anyio)"),
            Line2D([], [], color=LIMIT, linestyle="--", label="plain pyzmq in one thread"),
        ],
        loc="outside lower center",
        ncols=3,
        frameon=False,
    )
