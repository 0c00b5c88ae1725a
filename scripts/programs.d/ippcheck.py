"""Start a real ipyparallel cluster (controller and one engine) and print what each runs on.

The controller reports, from its config file (run in the controller process, after its
modules are imported), the ZMQStream class its hub and schedulers use; the engine runs a task
that reports the class of its kernel's shell stream; the client reports its own. A run under
ZMQ_ASYNC_INSTALL=1 shows whether every process of the cluster really runs on zmq_async.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CONTROLLER_CONFIG = """
import json, zmq.asyncio
import ipyparallel.controller.hub as hub, ipyparallel.controller.scheduler as scheduler
with open({path!r}, "w") as f:
    json.dump({{
        "zmq.asyncio.__name__": zmq.asyncio.__name__,
        "hub ZMQStream": hub.ZMQStream.__module__,
        "scheduler ZMQStream": scheduler.ZMQStream.__module__,
    }}, f)
"""


def engine_side() -> dict[str, str]:
    import zmq.asyncio
    from IPython import get_ipython

    stream = type(get_ipython().kernel.shell_streams[0])  # type: ignore[attr-defined]
    return {
        "zmq.asyncio.__name__": zmq.asyncio.__name__,
        "kernel shell stream class": stream.__module__ + "." + stream.__name__,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(suffix=".ipython") as ipython_dir:
        os.environ["IPYTHONDIR"] = ipython_dir
        import ipyparallel as ipp
        import ipyparallel.client.client as client_module
        import zmq.asyncio
        from IPython.core.profiledir import ProfileDir

        profile = ProfileDir.create_profile_dir_by_name(ipython_dir, name="default")
        report = Path(ipython_dir) / "controller.json"
        config = Path(profile.location) / "ipcontroller_config.py"
        config.write_text(CONTROLLER_CONFIG.format(path=str(report)))
        client_side = {
            "zmq.asyncio.__name__": zmq.asyncio.__name__,
            "client ZMQStream": client_module.ZMQStream.__module__,
        }
        with ipp.Cluster(n=1) as rc:
            engine = rc[0].apply_sync(engine_side)
        controller = json.loads(report.read_text())
    print(json.dumps({"client": client_side, "controller": controller, "engine": engine}))


if __name__ == "__main__":
    main()
