"""Started by every Python process of a run (on PYTHONPATH): at exit, append to
$PROGRAMS_PROCESSES one JSON line naming the process and what its pyzmq async modules were.

So a suite whose processes start other processes (a console starting a kernel, a gateway
starting kernels) shows that every one of them ran on the side's modules, not only pytest. A
process killed by a signal writes nothing.
"""

import atexit
import json
import os
import sys

_MODULES = ("zmq.asyncio", "zmq.eventloop.zmqstream", "zmq.eventloop.future")


def _report() -> None:
    path = os.environ.get("PROGRAMS_PROCESSES")
    if not path:
        return
    modules = {name: sys.modules[name].__name__ for name in _MODULES if name in sys.modules}
    entry = {"pid": os.getpid(), "argv": sys.argv[:3], "modules": modules}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


# Registered first, so it runs last: after the program's own exit handlers.
atexit.register(_report)
