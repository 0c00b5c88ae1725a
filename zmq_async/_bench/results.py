"""Collected measurements: one :class:`Row` per (workload, contender), medians and ratios.

Kept apart from the runner (which fills rows) and the report (which prints them) so both read the
same definitions of "median", "spread" and "better".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from zmq_async._bench.layers import LAYERS, Layer, Variant
from zmq_async._bench.spec import Sample, Workload, known_fields

Status = Literal["ok", "partial", "failed", "skipped", "not_run"]


def key_metric(workload: Workload) -> str:
    """The sample field that ranks contenders: ``median_us`` for latency, else ``rate``."""
    return "median_us" if workload.metric == "latency" else "rate"


@dataclass
class Row:
    """Every run of one contender on one workload."""

    workload: Workload
    variant: Variant
    runs: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Why the contender could not run at all (its module or loop does not import).
    skipped: str | None = None

    @property
    def status(self) -> Status:
        if self.skipped is not None:
            return "skipped"
        if not self.errors:
            return "ok" if self.runs else "not_run"  # not_run: the run was interrupted
        return "partial" if self.runs else "failed"

    def median(self) -> Sample | None:
        """Field-by-field median over the successful runs."""
        if not self.runs:
            return None
        return {k: statistics.median(run[k] for run in self.runs) for k in self.runs[0]}

    def value(self, key: str | None = None) -> float | None:
        """Median of ``key`` (default: the key metric) over the successful runs."""
        med = self.median()
        return None if med is None else med[key or key_metric(self.workload)]

    def spread(self) -> float | None:
        """(max - min) / median of the key metric over the runs: how far repeats disagree."""
        values = [run[key_metric(self.workload)] for run in self.runs]
        mid = self.value()
        if len(values) < 2 or not mid:
            return None
        return (max(values) - min(values)) / mid

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload.name,
            "layer": self.variant.layer.name,
            "loop": self.variant.loop,
            "label": self.variant.label,
            "role": self.variant.layer.role,
            "status": self.status,
            "skipped": self.skipped,
            "errors": self.errors,
            "runs": self.runs,
            "median": self.median(),
            "spread": self.spread(),
        }


def ratio(row: Row, reference: Row | None) -> float | None:
    """How much better ``row`` is than ``reference`` (> 1 means better), or ``None``.

    Throughput and requests/s compare as row / reference; latency as reference / row.
    """
    if reference is None:
        return None
    ours, theirs = row.value(), reference.value()
    if not ours or not theirs:
        return None
    return theirs / ours if row.workload.metric == "latency" else ours / theirs


def rows_from_json(document: dict[str, Any]) -> list[Row]:
    """The rows of a saved ``zmq-async bench --json`` document, as the run that wrote it had them.

    A layer the registry no longer has is rebuilt from the document's own ``meta.layers``.
    Raises ValueError if ``document`` is not such a document.
    """
    try:
        workloads = {
            name: Workload(**known_fields(Workload, data))
            for name, data in document["workloads"].items()
        }
        saved = document.get("meta", {}).get("layers", {})
        layers = {
            name: Layer(**{**known_fields(Layer, data), "loops": tuple(data["loops"])})
            for name, data in saved.items()
        }
        layers.update(LAYERS)
        return [
            Row(
                workloads[r["workload"]],
                Variant(layers[r["layer"]], r["loop"]),
                runs=list(r["runs"]),
                errors=list(r["errors"]),
                skipped=r["skipped"],
            )
            for r in document["results"]
        ]
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"not a `zmq-async bench --json` document ({type(e).__name__}: {e})"
        ) from e
