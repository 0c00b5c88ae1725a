"""Bad arguments everywhere, on the green layers (zmq_async.green with gevent,
zmq_async.green.eventlet with eventlet): the cases of tests/test_bad_args.py, each compared
with pyzmq's blocking socket and with the flavour's peer (zmq.green, eventlet.green.zmq),
then the socket must hold nothing in its reactor and still carry a good message both ways.
"""

from __future__ import annotations

from typing import Any

import pytest
import zmq_async_bad_args as bad  # shared by tests/conftest.py


class Hang(BaseException):
    """Raised into a call that did not return in time."""


def run_green(green: Any, layer: Any, case: Any, ours: bool) -> tuple[Any, list[str]]:
    """``case`` on a green ``layer``, and (ours only) what is wrong after it."""
    env = bad.Env(layer)
    a, b = env.a, env.b
    try:
        b.send(bad.PRIMED)
        bad.enter_state(case, env)
        args, kwargs = case.make()
        try:
            with green.Timeout(bad.HANG if ours else bad.PEER_HANG, Hang):
                bad.call(case, layer, env, *args, **kwargs)
        except Hang:
            return bad.Outcome("hang"), []
        except Exception as exc:
            outcome = bad.Outcome("raised", exc)
        else:
            outcome = bad.Outcome("ok")
        problems: list[str] = []
        if ours and case.state == "open":
            problems = bad.leftovers(a)
            bad.drain(a)
            bad.drain(b)
            with green.Timeout(bad.HANG, AssertionError("a good message hangs")):
                a.send(b"ping")
                if b.recv() != b"ping":
                    problems.append("a good message a -> b did not arrive")
                b.send(b"pong")
                if a.recv() != b"pong":
                    problems.append("a good message b -> a did not arrive")
            problems += bad.leftovers(a)
        return outcome, problems
    finally:
        env.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("group", bad.GROUPS)
def test_green_bad_args(green: Any, group: str) -> None:
    mismatches = []
    for case in bad.cases_of(group):
        expected = bad.reference(case)
        if expected is None:
            continue
        ours, problems = run_green(green, green.zmq, case, True)
        peer, _ = run_green(green, green.peer, case, False)
        problems = bad.verdict(case, ours, expected, peer) + problems
        if (found := bad.report(case, ours, problems)) is not None:
            mismatches.append(found)
    assert not mismatches, "\n".join(mismatches)
