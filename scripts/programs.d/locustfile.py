"""Locustfile for the distributed run: one GET per task, no wait.

Each process writes, when it quits, a JSON line to $PROGRAMS_LOCUST_REPORT: its role, how many
requests it made, and which modules its `zmq.green` and locust's RPC layer really are.
"""

from __future__ import annotations

import json
import os
import sys

import locust.rpc.zmqrpc
from locust import HttpUser, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

requests_made = 0


@events.request.add_listener
def _count(**_: object) -> None:
    global requests_made
    requests_made += 1


@events.quitting.add_listener
def _report(environment: object, **_: object) -> None:
    runner = getattr(environment, "runner", None)
    role = (
        "worker"
        if isinstance(runner, WorkerRunner)
        else "master"
        if isinstance(runner, MasterRunner)
        else "local"
    )
    zmq_green = sys.modules["zmq.green"]
    rpc_zmq = locust.rpc.zmqrpc.zmq
    line = {
        "role": role,
        "pid": os.getpid(),
        "requests": requests_made,
        "zmq.green.__name__": zmq_green.__name__,
        "zmqrpc.zmq.Socket.__module__": rpc_zmq.Socket.__module__,
    }
    with open(os.environ["PROGRAMS_LOCUST_REPORT"], "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


class Visitor(HttpUser):
    wait_time = constant(0.01)

    @task
    def hit(self) -> None:
        self.client.get("/")
