"""fork() with live sockets, on every async layer (programs in tests/faultprocs.py).

A process forks (``os.fork()`` and multiprocessing's ``fork`` start method) while its
sockets are live, a receive pending: inside a running loop, and between two runs of one
loop. The child gets a clear RuntimeError from an inherited socket, closes it without
disturbing the parent (the epoll instance is shared: the parent's FD must stay registered
in the kernel), and runs its own context and sockets on its own loop; the parent's pending
receive is then served (between two runs, with the re-check out of reach: by its FD alone).
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

CASES = [
    (layer, how, when)
    for layer in ("asyncio", "uvloop", "tornado", "anyio-asyncio", "anyio-trio")
    for when in ("inside", "between")
    for how in ("os.fork", "mp")
    # trio cannot run again in a child forked inside trio.run; Tornado's IOLoop is asyncio's
    if not (layer == "anyio-trio" and when == "inside") and (layer, when) != ("tornado", "between")
]


@pytest.mark.parametrize(("layer", "how", "when"), CASES)
def test_fork_with_live_sockets(procs: Any, layer: str, how: str, when: str) -> None:
    code, out, err = procs.run_program("fork_async", layer, how, when)
    lines = out.splitlines()
    inherited = [line for line in lines if line.startswith("child: inherited socket")]
    assert len(inherited) == 2, out + err
    assert all("RuntimeError" in line and "fork()" in line for line in inherited), out
    assert "child ok" in lines and "child exit 0" in lines, out + err
    assert "parent: FD still watched: False" not in lines, out
    assert "parent ok" in lines, out + err
    assert code == 0, err
    assert "Traceback" not in err and "Warning" not in err, err
