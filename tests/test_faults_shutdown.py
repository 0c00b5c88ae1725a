"""Shutdown with operations pending, as whole programs (tests/faultprocs.py): a clean exit.

``asyncio.run(main())`` returning while tasks wait in recv, poll, ``Poller.poll`` and send
(zmq_async.asyncio on asyncio and uvloop, zmq_async.tornado, ZMQStream, zmq_async.anyio on
asyncio), a trio nursery cancelled around pending zmq_async.anyio calls, a Tornado IOLoop
closed with streams and futures pending. With the sockets closed first ("close") or left
open with ``Context.instance()`` to the interpreter's exit ("open"): exit 0, nothing on
stderr (no warning, no "Task was destroyed but it is pending", no traceback), and no FD of
a closed socket still registered in the loop's epoll when the loop closes.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

#: Sockets left open warn at exit as pyzmq's do (ResourceWarning): that one is the program's.
QUIET_ABOUT_OPEN = "default,ignore::ResourceWarning"


def assert_clean(result: tuple[int, str, str]) -> list[str]:
    code, out, err = result
    assert err == "", err
    assert code == 0, out
    lines = out.splitlines()
    assert lines[-1:] == ["exit ok"], out
    return lines


@pytest.mark.parametrize("closing", ["close", "open"])
@pytest.mark.parametrize("layer", ["asyncio", "uvloop", "tornado", "stream", "anyio-asyncio"])
def test_asyncio_run_returns_while_tasks_wait(procs: Any, layer: str, closing: str) -> None:
    if (layer, closing) == ("anyio-asyncio", "close"):
        # anyio's waiters fail with ZMQError(ENOTSOCK) on close (not cancelled): tasks nobody
        # awaits then report "exception was never retrieved", as asyncio means them to.
        pytest.skip("a closed socket fails anyio waiters: the program must await them")
    env = {"PYTHONWARNINGS": QUIET_ABOUT_OPEN} if closing == "open" else {}
    lines = assert_clean(procs.run_program("shutdown_asyncio", layer, closing, **env))
    registered = [line for line in lines if line.startswith("registered at close")]
    assert registered and registered[0].startswith("registered at close: []"), lines


@pytest.mark.parametrize("closing", ["close", "open"])
def test_trio_nursery_cancelled_around_pending_calls(procs: Any, closing: str) -> None:
    env = {"PYTHONWARNINGS": QUIET_ABOUT_OPEN} if closing == "open" else {}
    assert_clean(procs.run_program("shutdown_trio", closing, **env))


@pytest.mark.parametrize("closing", ["close", "open"])
def test_tornado_ioloop_closed_with_streams_open(procs: Any, closing: str) -> None:
    """``IOLoop.close(all_fds=True)`` closes our sockets and streams; without, they stay."""
    env = {"PYTHONWARNINGS": QUIET_ABOUT_OPEN} if closing == "open" else {}
    lines = assert_clean(procs.run_program("shutdown_tornado", closing, **env))
    assert f"closed: {[closing == 'close'] * 3}" in lines, lines
