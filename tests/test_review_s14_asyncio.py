"""Review of the s14 speed changes on the asyncio side (the run check, the stream's receiver
and send batches): cases the changes' own tests did not cover.

Explicit loops where a test needs several; every wait bounded.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from typing import Any

import pytest

from zmq_async.asyncio._driver import thread_marker

from .test_asyncio_api import running_in_another_thread

WAIT = 5.0
TIMEOUT = 20

pytestmark = pytest.mark.timeout(TIMEOUT)


def send_with_hooks(hooks: Any, loop: Any, push: Any, outcome: dict[str, Any]) -> None:
    """Install ``hooks`` in the calling thread, then record whether ``loop``'s marker takes
    it for the loop's (``here``) and what ``push.send`` gives (``future``) or raises."""
    sys.set_asyncgen_hooks(*hooks)
    outcome["here"] = thread_marker(loop)._thread_id == threading.get_ident()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's "no running loop" warning
        try:
            outcome["future"] = push.send(b"not from here")
        except BaseException as exc:  # asserted on by the caller
            outcome["raised"] = exc


class TestRunCheck:
    def test_the_loops_hooks_copied_into_another_thread_do_not_make_it_the_loops(
        self, new_loop: Any, pair: Any
    ) -> None:
        """The fast "running here" check recognises a run by the asyncgen hook it installed;
        a thread that installs that same hook (user code copying ``sys.get_asyncgen_hooks()``
        into a worker) does not run the loop: its operations must not touch the socket."""
        push, pull = pair
        loop = new_loop()
        outcome: dict[str, Any] = {}

        def worker(hooks: Any) -> None:
            send_with_hooks(hooks, loop, push, outcome)

        async def main() -> None:
            for i in range(2):  # the fast check has learnt this run
                await push.send(b"%d" % i)
                assert await asyncio.wait_for(pull.recv(), WAIT) == b"%d" % i
            thread = threading.Thread(target=worker, args=(sys.get_asyncgen_hooks(),))
            thread.start()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT)
            assert not thread.is_alive()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        assert outcome["here"] is False, outcome
        assert isinstance(outcome.get("raised"), RuntimeError), outcome

    def test_a_stale_hook_reinstalled_does_not_make_asyncios_loop_run_here(self, pair: Any) -> None:
        """asyncio's own loops record their thread: the check needs no hook for them, so a
        hook of a finished run put back by user code (the same thread, the loop now running
        in another) is no "yes". (uvloop's loops have only the hook: there such code still
        fools the fast check.)"""
        push, pull = pair
        loop = asyncio.new_event_loop()
        outcome: dict[str, Any] = {}

        async def bind() -> None:
            for i in range(2):  # the fast check has seen the loop run here
                await push.send(b"%d" % i)
                assert await asyncio.wait_for(pull.recv(), WAIT) == b"%d" % i
            outcome["hooks"] = sys.get_asyncgen_hooks()

        def worker() -> None:  # a thread with no loop of its own: a "no" raises here
            loop.run_until_complete(bind())
            with running_in_another_thread(loop):
                send_with_hooks(outcome["hooks"], loop, push, outcome)

        thread = threading.Thread(target=worker)
        try:
            thread.start()
            thread.join(WAIT)
            assert not thread.is_alive()
        finally:
            loop.close()
        assert outcome["here"] is False, outcome
        assert isinstance(outcome.get("raised"), RuntimeError), outcome
