"""The ZMQStream bench driver runs every workload, for the peer and for ours, and counts right."""

from __future__ import annotations

import pytest

from zmq_async._bench import stream as driver
from zmq_async._bench.layers import LAYERS
from zmq_async._bench.report import TARGETS
from zmq_async._bench.spec import WORKLOADS, Params

TARGETS_OF_ISSUE_4 = {(t.layer, t.workload, t.threshold) for t in TARGETS}


def _params(workload: str) -> Params:
    w = WORKLOADS[workload]
    return Params(
        workload=w.name,
        size=w.size,
        frames=w.frames,
        hwm=w.hwm,
        duration=0.05,
        cap=400,
        batch=50,
        warmup=10,
        dealers=3,
    )


@pytest.mark.parametrize("target", ["zmq.eventloop.zmqstream", "zmq_async.stream"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_workload_runs_on_both_streams(target: str, workload: str) -> None:
    driver.probe(target, "asyncio")
    sample = driver.run(_params(workload), target, "asyncio")
    assert sample["count"] > 0 and sample["seconds"] > 0
    if WORKLOADS[workload].metric == "throughput":
        assert sample["count"] <= 400 + 50  # whole batches, up to the cap


def test_layers_and_targets_are_registered() -> None:
    assert LAYERS["zmq_async.stream"].peer == "zmq.eventloop.zmqstream"
    assert LAYERS["zmq_async.stream"].driver == "stream"
    assert LAYERS["zmq_async.tornado"].peer == "zmq.eventloop.future"
    assert ("zmq_async.stream", "push_pull", 5.0) in TARGETS_OF_ISSUE_4
    assert ("zmq_async.stream", "fanin", 1.5) in TARGETS_OF_ISSUE_4
