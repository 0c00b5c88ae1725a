"""Start a real ipykernel through jupyter_client and print which modules it runs on.

The client side reports its own `zmq.asyncio`; the kernel runs code that reports its
`zmq.asyncio` and the class of its shell stream, so a run under ZMQ_ASYNC_INSTALL=1 shows
whether the kernel process really runs on zmq_async.
"""

from __future__ import annotations

import json

import zmq.asyncio
from jupyter_client.manager import start_new_kernel

CODE = """
import json, zmq.asyncio, zmq.eventloop.zmqstream
stream = type(get_ipython().kernel.shell_stream)
print(json.dumps({
    "zmq.asyncio.__name__": zmq.asyncio.__name__,
    "zmq.asyncio.Socket.__module__": zmq.asyncio.Socket.__module__,
    "ZMQStream.__module__": zmq.eventloop.zmqstream.ZMQStream.__module__,
    "kernel shell_stream class": stream.__module__ + "." + stream.__name__,
}))
"""


def main() -> None:
    client_side = {
        "zmq.asyncio.__name__": zmq.asyncio.__name__,
        "zmq.asyncio.Socket.__module__": zmq.asyncio.Socket.__module__,
    }
    km, kc = start_new_kernel(startup_timeout=60)
    try:
        out: list[str] = []
        reply = kc.execute_interactive(
            CODE, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", ""))
        )
        status = reply["content"]["status"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    kernel_side = json.loads("".join(out)) if status == "ok" else {"status": status}
    print(json.dumps({"client": client_side, "kernel": kernel_side}))


if __name__ == "__main__":
    main()
