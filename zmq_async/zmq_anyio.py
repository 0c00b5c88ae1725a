"""A drop-in for ``zmq_anyio`` (zmq-anyio): ``import zmq_async.zmq_anyio as zmq_anyio``.

``Socket`` (``arecv``/``asend``/``apoll``... returning ``anyio.Future`` objects, started with
``async with`` or a task group) and ``Poller`` (``apoll(task_group, timeout)``), with
zmq-anyio's names, signatures and errors, on zmq_async's reactor: a cancelled Future
consumes nothing, and closing never hangs. On anyio's asyncio (default loop, uvloop) and trio
backends. For new code, :mod:`zmq_async.anyio` is simpler (coroutine methods, no task group).
"""

from zmq_async.anyio._zmq_anyio import Poller, Socket

__all__ = ["Poller", "Socket"]
