"""The model-checked reactor (tests/test_model_machine.py) on zmq_async.asyncio and on
zmq_async.anyio over asyncio and trio.

Each example runs its loop in a thread behind an anyio blocking portal: the machine runs one
step at a time through the portal, then drives the loop until nothing can run, so the loop
never runs on its own between steps. The CI profile runs few examples (tests/conftest.py);
``--hypothesis-profile=long`` runs many.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import zmq_async_model_machine as machine  # shared by tests/conftest.py
from anyio.from_thread import start_blocking_portal
from hypothesis import settings

import zmq_async.anyio
import zmq_async.asyncio

#: Bound on one step in the loop (a hang fails the example instead of the whole run).
STEP_TIMEOUT = 10.0
#: The budget of one test: generous for the CI profile, scaled up for deep runs.
TIMEOUT = max(60, settings().max_examples)


class Handle:
    """An operation running in the loop: its Future (asyncio) or its task's outcome (anyio)."""

    def __init__(self, operation: Callable[[], Any]) -> None:
        self.operation = operation
        self.future: Any = None
        self.scope: anyio.CancelScope | None = None
        self.cancel_requested = False
        self.state = "pending"
        self.value: Any = None


class PortalHarness(machine.Harness):  # type: ignore[misc, name-defined]
    """A loop in a thread behind an anyio portal; operations are Futures or tasks."""

    def __init__(self, backend: str, zmq_module: Any, futures: bool) -> None:
        self.name = backend
        self.zmq = zmq_module
        self.futures = futures
        self.handles: list[Handle] = []
        self._portal_cm = start_blocking_portal(backend)
        self.portal = self._portal_cm.__enter__()

    def call(self, function: Callable[..., Any]) -> Any:
        async def run() -> Any:
            return function()  # never awaited: a Future stays what it is

        return self.portal.start_task_soon(run).result(STEP_TIMEOUT)

    def start(self, operation: Callable[[], Any]) -> Handle:
        handle = Handle(operation)
        self.handles.append(handle)
        if self.futures:
            handle.future = self.call(operation)
        else:
            self.portal.start_task_soon(self._run, handle)
        return handle

    async def _run(self, handle: Handle) -> None:
        with anyio.CancelScope() as scope:
            handle.scope = scope
            if handle.cancel_requested:
                scope.cancel()
            try:
                handle.value = await handle.operation()
                handle.state = "ok"
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                handle.state, handle.value = "error", exc
        if handle.state == "pending":
            handle.state = "cancelled"

    def cancel(self, handle: Handle) -> None:
        def cancel() -> None:
            if handle.future is not None:
                handle.future.cancel()
            elif handle.scope is not None:
                handle.scope.cancel()
            else:
                handle.cancel_requested = True

        self.call(cancel)

    def outcome(self, handle: Handle) -> tuple[str, Any]:
        future = handle.future
        if future is None:
            return handle.state, handle.value
        if not future.done():
            return "pending", None
        if future.cancelled():
            return "cancelled", None
        if future.exception() is not None:
            return "error", future.exception()
        return "ok", future.result()

    def settle(self) -> None:
        self.portal.start_task_soon(self._settle).result(STEP_TIMEOUT)

    def sleep(self, seconds: float) -> None:
        async def sleep() -> None:
            await anyio.sleep(seconds)
            await self._settle()

        self.portal.start_task_soon(sleep).result(STEP_TIMEOUT)

    async def _settle(self) -> None:
        if self.name == "trio":
            import trio.testing

            # trio polls for I/O (timeout 0) before it calls every task blocked.
            await trio.testing.wait_all_tasks_blocked()
            return
        loop = asyncio.get_running_loop()
        ready: Any = loop._ready  # type: ignore[attr-defined]
        quiet = 0
        for _ in range(10_000):
            # Each sleep(0) is one loop iteration, which polls the selector with timeout 0:
            # quiet twice in a row means no callback is ready and no FD signalled.
            await asyncio.sleep(0)
            quiet = quiet + 1 if not ready else 0
            if quiet == 2:
                return
        raise AssertionError("the loop never went quiet")

    def close(self) -> None:
        # A failed example may leave tasks waiting: the portal would wait for them for ever.
        for handle in self.handles:
            self.cancel(handle)
        self._portal_cm.__exit__(None, None, None)


# Not plugin tests: hypothesis calls the machine's steps synchronously, so each example's loop
# runs in a portal thread and is driven per step (a plugin's loop would run the whole test).
def machine_test(backend: str, zmq_module: Any, futures: bool) -> Any:
    class Machine(machine.ReactorModel):  # type: ignore[misc, name-defined]
        @staticmethod
        def make_harness() -> Any:
            return PortalHarness(backend, zmq_module, futures)

    return Machine.TestCase


@pytest.mark.timeout(TIMEOUT)
def test_model_asyncio() -> None:
    machine_test("asyncio", zmq_async.asyncio, futures=True)().runTest()


@pytest.mark.timeout(TIMEOUT)
def test_model_anyio_on_asyncio() -> None:
    machine_test("asyncio", zmq_async.anyio, futures=False)().runTest()


@pytest.mark.timeout(TIMEOUT)
def test_model_anyio_on_trio() -> None:
    machine_test("trio", zmq_async.anyio, futures=False)().runTest()
