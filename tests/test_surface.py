"""The public surface: lazy imports, exports, and drop-in signatures against zmq.asyncio."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import zmq
import zmq.asyncio as peer

import zmq_async
import zmq_async.asyncio as ours

FRAMEWORKS = ["tornado", "gevent", "eventlet", "greenlet", "anyio", "trio", "uvloop", "sniffio"]
PEER_LAYERS = ["zmq.asyncio", "zmq._future", "zmq.eventloop", "zmq.green", "zmq_anyio"]


#: What importing each module may bring along: its own framework at most, never a peer layer.
OWN_FRAMEWORK: dict[str, set[str]] = {
    "zmq_async": set(),
    "zmq_async.asyncio": set(),
    "zmq_async.stream": set(),  # Tornado only if the user brings it
    "zmq_async.tornado": set(),  # Tornado's Futures are asyncio's: nothing of it is needed
    "zmq_async.anyio": {"anyio", "sniffio"},  # trio once a trio run uses a socket
    "zmq_async.zmq_anyio": {"anyio", "sniffio"},  # never zmq_anyio itself
    "zmq_async.green": set(),  # gevent once a green name is used (see the green tests below)
    "zmq_async.green.eventlet": {"eventlet", "greenlet"},
}


def _imported_by(module: str) -> list[str]:
    """The frameworks and peer layers (top-level names) a fresh interpreter has after import."""
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"  # eventlet's deprecation notice
        f"import {module}\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r} "
        f"or any(m == p or m.startswith(p + '.') for p in {PEER_LAYERS!r})]\n"
        "print(','.join(sorted({m if m.startswith('zmq.') else m.split('.')[0] for m in bad})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [name for name in out.stdout.strip().split(",") if name]


@pytest.mark.parametrize("module", sorted(OWN_FRAMEWORK))
def test_importing_a_module_imports_its_own_framework_at_most(module):
    assert set(_imported_by(module)) <= OWN_FRAMEWORK[module]


def test_exports():
    assert zmq_async.__all__ == ["__version__", "install", "installed", "uninstall"]
    assert sorted(ours.__all__) == ["Context", "Poller", "Socket"]
    assert issubclass(ours.Socket, zmq.Socket)
    assert issubclass(ours.Context, zmq.Context)
    assert issubclass(ours.Poller, zmq.Poller)
    assert ours.Context._socket_class is ours.Socket


def _public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [(ours.Socket, peer.Socket), (ours.Poller, peer.Poller), (ours.Context, peer.Context)],
)
def test_same_methods_and_parameters_as_the_peer(mine, theirs):
    missing = _public_methods(theirs) - _public_methods(mine)
    assert not missing
    for name in sorted(_public_methods(theirs)):
        try:
            expected = inspect.signature(getattr(theirs, name))
        except (TypeError, ValueError):  # Cython methods without signatures
            continue
        actual = inspect.signature(getattr(mine, name))
        expected_names = [
            p.name for p in expected.parameters.values() if p.kind is not p.VAR_KEYWORD
        ]
        actual_names = [p.name for p in actual.parameters.values() if p.kind is not p.VAR_KEYWORD]
        # every parameter the peer names is accepted, in the same position
        assert actual_names[: len(expected_names)] == expected_names or set(expected_names) <= set(
            actual_names
        ), name
        for param in expected.parameters.values():
            if param.name in actual.parameters and param.default is not param.empty:
                assert actual.parameters[param.name].default == param.default, (name, param.name)


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_pending_futures_are_visible_like_the_peers(ctx):
    """zmq.asyncio users (and its own test suite) inspect ``_recv_futures``/``_send_futures``."""
    pull = ctx.socket(zmq.PULL)
    push = ctx.socket(zmq.PUSH)  # no peer: sends block
    assert pull._recv_futures == [] and push._send_futures == []
    recv, poll, send = pull.recv(), pull.poll(timeout=1000), push.send(b"x")
    assert pull._recv_futures == [recv, poll]
    assert push._send_futures == [send]
    for fut in (recv, poll, send):
        fut.cancel()
    assert pull._recv_futures == [] and push._send_futures == []


# -- issue 4: zmq_async.stream and zmq_async.tornado --------------------------------------------


def test_stream_runs_under_asyncio_run_without_tornado():
    code = """
import asyncio, sys, zmq
from zmq_async.stream import ZMQStream

async def main():
    ctx = zmq.Context()
    pull = ZMQStream(ctx.socket(zmq.PULL))
    push = ZMQStream(ctx.socket(zmq.PUSH))
    push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
    assert pull.io_loop is asyncio.get_running_loop()
    done = asyncio.get_running_loop().create_future()
    pull.on_recv(done.set_result)
    push.send(b"hi")
    print(await asyncio.wait_for(done, 5))
    pull.close(linger=0)
    push.close(linger=0)
    ctx.term()

asyncio.run(main())
print("tornado" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[b'hi']", "False"]


def test_stream_and_tornado_exports():
    import zmq_async.stream
    import zmq_async.tornado

    assert sorted(zmq_async.stream.__all__) == ["SendQueueFull", "ZMQStream"]
    assert zmq_async.tornado.ZMQStream is zmq_async.stream.ZMQStream
    assert issubclass(zmq_async.stream.SendQueueFull, zmq.Again)


def test_stream_has_the_peers_methods_and_parameters():
    from zmq.eventloop.zmqstream import ZMQStream as Theirs

    from zmq_async.stream import ZMQStream as Mine

    for name in sorted(n for n in dir(Theirs) if not n.startswith("_")):
        theirs = getattr(Theirs, name)
        assert hasattr(Mine, name), name
        if not callable(theirs):
            continue
        expected = inspect.signature(theirs)
        actual = inspect.signature(getattr(Mine, name))
        assert list(actual.parameters)[: len(expected.parameters)] == list(expected.parameters), (
            name
        )
        for param in expected.parameters.values():
            if param.default is not param.empty:
                assert actual.parameters[param.name].default == param.default, (name, param.name)


# -- issue 5: zmq_async.green (gevent) and zmq_async.green.eventlet ----------------------------

_GREEN_CHECK = (
    "import sys, socket, threading, warnings\n"
    "warnings.simplefilter('ignore')\n"  # eventlet's deprecation notice
    "originals = (socket.socket, threading.Thread, __import__('time').sleep)\n"
    "{setup}\n"
    "imported = sorted({{m.split('.')[0] for m in sys.modules}} & {{'gevent', 'eventlet'}})\n"
    "patched = originals != (socket.socket, threading.Thread, __import__('time').sleep)\n"
    "print(','.join(imported), patched)\n"
)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("import zmq_async.green as zmq; zmq.POLLIN; zmq.Again", ""),
        ("from zmq_async.green import POLLIN, ZMQError", ""),
        (
            "import zmq_async.green as zmq\n"
            "ctx = zmq.Context(); s = ctx.socket(zmq.PAIR); s.rcvtimeo = 10\n"
            "try: s.recv()\nexcept zmq.Again: pass\n"
            "p = zmq.Poller(); p.register(s, zmq.POLLIN); p.poll(1); ctx.destroy()",
            "gevent",
        ),
        (
            "import zmq_async.green.eventlet as zmq\n"
            "ctx = zmq.Context(); s = ctx.socket(zmq.PAIR); s.rcvtimeo = 10\n"
            "try: s.recv()\nexcept zmq.Again: pass\n"
            "p = zmq.Poller(); p.register(s, zmq.POLLIN); p.poll(1); ctx.destroy()",
            "eventlet",
        ),
    ],
    ids=["green-constants", "green-from-import", "green-used", "eventlet-used"],
)
def test_green_imports_only_its_own_framework_and_patches_nothing(setup, expected):
    code = _GREEN_CHECK.format(setup=setup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ([expected, "False"] if expected else ["False"])


def test_the_main_test_run_collects_no_green_test():
    """tests/green runs in its own processes (scripts/test); here it must not even import."""
    assert "gevent" not in sys.modules
    assert "eventlet" not in sys.modules


# -- zmq_async.anyio (issue 3) -----------------------------------------------------------------

ANYIO_BLOCKING = [
    "recv",
    "recv_multipart",
    "recv_into",
    "recv_string",
    "recv_json",
    "recv_pyobj",
    "recv_serialized",
    "send",
    "send_multipart",
    "poll",
]


def test_anyio_exports_and_coroutine_methods():
    import zmq_async.anyio as za

    assert sorted(za.__all__) == ["Context", "Poller", "Socket"]
    assert issubclass(za.Socket, zmq.Socket)
    assert issubclass(za.Context, zmq.Context)
    assert issubclass(za.Poller, zmq.Poller)
    assert za.Context._socket_class is za.Socket
    assert inspect.iscoroutinefunction(za.Poller.poll)
    for name in ANYIO_BLOCKING:
        assert inspect.iscoroutinefunction(getattr(za.Socket, name)), name


@pytest.mark.parametrize("name", ANYIO_BLOCKING)
def test_anyio_methods_take_zmq_asyncios_parameters(name):
    import zmq_async.anyio as za

    expected = inspect.signature(getattr(peer.Socket, name)).parameters
    actual = inspect.signature(getattr(za.Socket, name)).parameters
    for param in expected.values():
        if param.kind is param.VAR_KEYWORD:
            continue
        assert param.name in actual, (name, param.name)
        if param.default is not param.empty:
            assert actual[param.name].default == param.default, (name, param.name)
