"""The human-readable output: one table per workload, then PASS/MISS against the issue's targets.

Plain ASCII, at most :data:`WIDTH` columns, so it pastes into issues and terminals alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from zmq_async._bench.layers import LAYERS, Variant
from zmq_async._bench.results import Row, ratio
from zmq_async._bench.spec import UNITS, Workload

WIDTH = 100

#: Statuses that get no line in a workload's block (skipped ones are listed once, at the top).
_NO_ROW = ("skipped", "not_run")


@dataclass(frozen=True)
class Target:
    """A goal for one of our layers on each loop: ``vs peer`` (or ``vs limit``) >= ``threshold``."""

    layer: str
    workload: str
    what: str
    threshold: float
    #: ``True``: the ratio must exceed the threshold (e.g. "lower latency" is > 1.0x).
    strict: bool = False
    #: What the ratio is taken against: the layer's peer, or the workload's limit row.
    against: Literal["peer", "limit"] = "peer"

    def met(self, value: float) -> bool:
        return value > self.threshold if self.strict else value >= self.threshold


#: Each issue's performance goals; a layer's ``peer`` is the baseline.
TARGETS = (
    Target("zmq_async.asyncio", "push_pull", "64 B msgs/s, HWM 0", 5.0),
    Target("zmq_async.asyncio", "push_pull_hwm", "64 B msgs/s, HWM 1000", 3.0),
    Target("zmq_async.asyncio", "reqrep", "lower median latency", 1.0, strict=True),
    Target("zmq_async.asyncio", "fanin", "fan-in requests/s", 1.5),
    # issue 4
    Target("zmq_async.stream", "push_pull", "64 B msgs/s, HWM 0", 5.0),
    Target("zmq_async.stream", "fanin", "echo fan-in requests/s", 1.5),
    # -- issue 5: zmq_async.green vs zmq.green, zmq_async.green.eventlet vs eventlet.green.zmq
    Target("zmq_async.green", "push_pull", "64 B msgs/s, HWM 0", 3.0),
    Target("zmq_async.green", "reqrep", "median latency no worse", 1.0),
    Target("zmq_async.green.eventlet", "push_pull", "64 B msgs/s, HWM 0", 2.0),
    Target("zmq_async.green.eventlet", "reqrep", "median latency no worse", 1.0),
    # -- issue 3: zmq_async.anyio vs zmq-anyio, on each backend
    Target("zmq_async.anyio", "push_pull", "64 B msgs/s, HWM 0", 5.0),
    Target("zmq_async.anyio", "reqrep", "under half the latency", 2.0, strict=True),
    # -- issue 10: closer to plain pyzmq in one thread (the workload's limit row)
    *(
        Target(layer, workload, what, threshold, against="limit")
        for layer, fast in (
            ("zmq_async.asyncio", 0.5),
            ("zmq_async.tornado", 0.5),
            ("zmq_async.stream", 0.5),
            ("zmq_async.anyio", 0.5),
            ("zmq_async.green", 0.9),
            ("zmq_async.green.eventlet", 0.9),
        )
        for workload, what, threshold in (
            ("push_pull", "64 B msgs/s, tcp", fast),
            ("push_pull_inproc", "64 B msgs/s, inproc", fast),
            # a median at most 1.3x blocking pyzmq's: limit / ours >= 1 / 1.3
            ("reqrep", "median <= 1.3x", 1 / 1.3),
            ("fanin", "fan-in requests/s", 0.9),
        )
    ),
)


@dataclass(frozen=True)
class TargetResult:
    target: Target
    loop: str
    ratio: float | None
    #: The margin to the threshold is smaller than the two rows' spreads combined: a rerun with
    #: more repeats could flip the verdict.
    within_spread: bool = False

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        return "PASS" if self.target.met(self.ratio) else "MISS"

    def to_json(self) -> dict[str, Any]:
        t = self.target
        return {
            "workload": t.workload,
            "what": t.what,
            "layer": t.layer,
            "against": t.against,
            "peer": LAYERS[t.layer].peer,
            "loop": self.loop,
            "threshold": t.threshold,
            "strict": t.strict,
            "ratio": self.ratio,
            "verdict": self.verdict,
            "within_spread": self.within_spread,
        }


class Table:
    """Rows looked up by (workload, label), with the peer and limit rows each is compared with."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.rows = list(rows)
        self._index = {(r.workload.name, r.variant.label): r for r in self.rows}

    def get(self, workload: str, layer: str | None, loop: str) -> Row | None:
        if layer is None or layer not in LAYERS:
            return None
        loop = loop if loop in LAYERS[layer].loops else ""
        return self._index.get((workload, Variant(LAYERS[layer], loop).label))

    def vs_peer(self, row: Row) -> float | None:
        peer = self.get(row.workload.name, row.variant.layer.peer, row.variant.loop)
        return ratio(row, peer)

    def vs_limit(self, row: Row) -> float | None:
        return ratio(row, self.limit_row(row.workload.name, row.workload.limit))

    def limit_row(self, workload: str, limit: str) -> Row | None:
        return self.get(workload, limit, "")


def evaluate_targets(rows: Iterable[Row]) -> list[TargetResult]:
    """A verdict per target and loop, for the targets whose workload and our row were selected."""
    table = Table(rows)
    return [
        _verdict(table, t, loop)
        for t in TARGETS
        for loop in LAYERS[t.layer].loops
        if table.get(t.workload, t.layer, loop) is not None
    ]


def _verdict(table: Table, target: Target, loop: str) -> TargetResult:
    ours = table.get(target.workload, target.layer, loop)
    if ours is None:
        return TargetResult(target, loop, None)
    if target.against == "limit":
        value = table.vs_limit(ours)
        other = table.limit_row(target.workload, ours.workload.limit)
    else:
        value = table.vs_peer(ours)
        other = table.get(target.workload, LAYERS[target.layer].peer, loop)
    spreads = [ours.spread(), None if other is None else other.spread()]
    noise = sum(s for s in spreads if s is not None)
    close = value is not None and abs(value - target.threshold) < noise * target.threshold
    return TargetResult(target, loop, value, within_spread=close)


def format_report(rows: list[Row], header: list[str], repeat: int) -> str:
    """The whole report: header, skipped contenders, a block per workload, the targets."""
    table = Table(rows)
    lines = [_clip(h) for h in header]
    skipped: dict[str, list[str]] = {}
    for row in rows:
        if row.skipped is not None and row.variant.label not in skipped.get(row.skipped, []):
            skipped.setdefault(row.skipped, []).append(row.variant.label)
    for reason, labels in skipped.items():
        lines.append(_clip(f"skipped {', '.join(labels)}: {reason}"))
    workloads: list[Workload] = []
    for row in rows:
        if row.workload not in workloads:
            workloads.append(row.workload)
    for workload in workloads:
        lines.append("")
        lines.extend(_block(table, workload, repeat))
    verdicts = evaluate_targets(rows)
    for against in ("peer", "limit"):
        for layer in dict.fromkeys(v.target.layer for v in verdicts):
            mine = [v for v in verdicts if v.target.layer == layer and v.target.against == against]
            if mine:
                lines.append("")
                lines.extend(_targets(layer, mine))
    return "\n".join(lines) + "\n"


def _block(table: Table, workload: Workload, repeat: int) -> list[str]:
    rows = [r for r in table.rows if r.workload is workload and r.status not in _NO_ROW]
    if not rows:
        return [f"{workload.name}: not run"]
    label_w = max([24, *(len(r.variant.label) for r in rows)])
    latency = workload.metric == "latency"
    heads = ["median us", "p99 us"] if latency else [UNITS[workload.metric]]
    heads += ["spread", "vs peer", "vs limit"]
    out = [
        _clip(f"{workload.name}: {workload.title} (median of {repeat})"),
        "  " + "contender".ljust(label_w) + "".join(h.rjust(12) for h in heads),
    ]
    notes: list[str] = []
    for row in rows:
        name = "  " + row.variant.label.ljust(label_w)
        if row.status == "failed":
            out.append(_clip(f"{name}  FAILED: {row.errors[0]}"))
            continue
        if latency:
            cells = [_num(row.value("median_us"), 1), _num(row.value("p99_us"), 1)]
        else:
            cells = [_num(row.value(), 0)]
        spread = row.spread()
        cells += [
            "-" if spread is None else f"{spread * 100:.1f}%",
            _times(table.vs_peer(row)),
            _times(table.vs_limit(row)),
        ]
        out.append(name + "".join(c.rjust(12) for c in cells))
        if row.status == "partial":
            notes.append(
                f"  ! {row.variant.label}: {len(row.errors)} of "
                f"{len(row.errors) + len(row.runs)} runs failed: {row.errors[0]}"
            )
    return out + [_clip(n) for n in notes]


def _targets(layer: str, verdicts: list[TargetResult]) -> list[str]:
    """The verdicts for one of our layers: a line per target, a column per loop."""
    loops = list(dict.fromkeys(v.loop for v in verdicts))
    if verdicts[0].target.against == "limit":
        title = f"targets: {layer} vs plain pyzmq in one thread ('vs limit' column)"
    else:
        title = f"targets: {layer} vs {LAYERS[layer].peer} on the same loop ('vs peer' column)"
    out = [
        _clip(title),
        "  "
        + "workload".ljust(18)
        + "goal".ljust(23)
        + "need".rjust(10)
        + "".join(loop.rjust(15) for loop in loops),
    ]
    for target in dict.fromkeys(v.target for v in verdicts):
        need = (">" if target.strict else ">=") + f" {target.threshold:.2f}x"
        cells = []
        for loop in loops:
            found = [v for v in verdicts if v.target is target and v.loop == loop]
            mark = "~" if found and found[0].within_spread else ""
            if not found or found[0].ratio is None:
                cells.append("n/a")
            else:
                cells.append(f"{_times(found[0].ratio)} {found[0].verdict}{mark}")
        out.append(
            "  "
            + target.workload.ljust(18)
            + target.what.ljust(23)
            + need.rjust(10)
            + "".join(c.rjust(15) for c in cells)
        )
    if any(v.within_spread for v in verdicts):
        out.append("  ~ margin smaller than the run-to-run spread: rerun with a higher --repeat")
    return out


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _clip(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."
