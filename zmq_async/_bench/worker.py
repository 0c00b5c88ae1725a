"""One measurement in a fresh process: ``python -m zmq_async._bench.worker '<request json>'``.

The request names a layer, a loop and either ``"probe": true`` (can this layer run here?) or the
``params`` of one measurement. The last stdout line is the JSON reply, ``{"ok": true, "sample":
{...}}`` or ``{"ok": false, "error": "..."}``; tracebacks go to stderr. Exit status 0 iff ok.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

from zmq_async._bench.layers import LAYERS, load_driver
from zmq_async._bench.spec import Params


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Serve one request in this process; exceptions become ``{"ok": false}`` replies."""
    try:
        layer = LAYERS[request["layer"]]
        loop = str(request.get("loop", ""))
        params = None if request.get("probe") else Params.from_json(request["params"])
        if params is not None and params.cpu is not None:
            # Before any zmq.Context exists: libzmq's I/O threads inherit this affinity.
            os.sched_setaffinity(0, {params.cpu})
        driver = load_driver(layer)
        if params is None:
            driver.probe(layer.target, loop)
            return {"ok": True}
        sample = driver.run(params, layer.target, loop)
        return {"ok": True, "sample": sample}
    except Exception as exc:
        traceback.print_exc()
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m zmq_async._bench.worker REQUEST_JSON", file=sys.stderr)
        return 2
    reply = handle(json.loads(args[0]))
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    return 0 if reply["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
