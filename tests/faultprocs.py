"""The other processes of the fault tests: a peer to kill and restart, and whole programs.

Run as ``python tests/faultprocs.py peer MODE ENDPOINT`` for a peer (plain blocking pyzmq,
so its behaviour is not ours under test), or ``python tests/faultprocs.py NAME [ARG]`` for
the program ``program_NAME``. Programs that monkeypatch do it first, before zmq_async is
imported. Nothing here imports a framework at module level. The test side (starting,
killing, reading these processes) is :class:`Peer` and :func:`run_program`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.abspath(__file__)
WAIT = 10.0
#: CPU a side waiting for a dead peer may use per second. Quiet, it is about 0.002 s/s
#: (libzmq's reconnect attempts included); a spinning loop costs 0.5-1 s/s. The bound is
#: generous because a loaded 2-core CI machine stretches every cost: 0.012-0.022 s/s were
#: seen beside CPU hogs (trio, uvloop), which a bound of 0.01 turned into failures.
IDLE_CPU = 0.05


# -- the test side ---------------------------------------------------------------------------


def start_all(peers: list[Peer]) -> None:
    """(Re)start several peers at once and wait until each is ready."""
    for one in peers:
        one.start(wait=False)
    for one in peers:
        one.expect("ready")


def free_endpoint() -> str:
    """A tcp endpoint on loopback whose port was free a moment ago, below the kernel's
    ephemeral range: a port from that range (``bind(0)``'s) was taken in between by some
    connection on a busy machine ("Address already in use" when the peer bound it)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            ephemeral = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for _ in range(100):
        port = random.randrange(10000, ephemeral) if ephemeral > 11000 else 0
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    raise AssertionError("no free port below the ephemeral range")


class Peer:
    """A peer process bound on ``endpoint``: started, SIGKILLed and restarted on it.

    Its stdout lines are read by a thread into a queue: :meth:`line` waits for the next one.
    """

    def __init__(self, mode: str, endpoint: str | None = None) -> None:
        self.mode = mode
        self.endpoint = endpoint or free_endpoint()
        self.process: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.runs = 0

    def start(self, mode: str | None = None, wait: bool = True) -> None:
        """Start (or restart) the peer; wait until it has bound its endpoint, unless told
        not to (then ``expect("ready")`` does: starting several at once is quicker)."""
        self.runs += 1
        self.process = subprocess.Popen(
            [sys.executable, HERE, "peer", mode or self.mode, self.endpoint, str(self.runs)],
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if wait:
            self.expect("ready")

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                if process.returncode is None:  # not what a killed peer had left unread
                    self.lines.put(line.strip())

    def line(self, timeout: float = WAIT) -> str:
        """The peer's next line of output; fails after ``timeout`` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the {self.mode} peer said nothing for {timeout}s") from None

    def expect(self, wanted: str, timeout: float = WAIT) -> list[str]:
        """Read lines until ``wanted``; returns those before it."""
        deadline = time.monotonic() + timeout
        seen = []
        while (line := self.line(max(0.0, deadline - time.monotonic()))) != wanted:
            seen.append(line)
        return seen

    def kill(self) -> None:
        """SIGKILL the peer (no goodbye on the wire) and reap it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(WAIT)
        while not self.lines.empty():
            self.lines.get_nowait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def run_program(name: str, *args: str, timeout: float = 30.0, **env: str) -> tuple[int, str, str]:
    """Run ``program_<name>`` in a fresh interpreter: (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, HERE, name, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONWARNINGS": "default", **env},
    )
    return done.returncode, done.stdout, done.stderr


def interrupt_program(name: str, *args: str) -> tuple[float, list[str], str, int]:
    """Start ``program_<name> ARGS ENDPOINT``, SIGINT it once it is blocked, then send one
    message to ENDPOINT: (seconds from SIGINT to its next line, its lines, stderr, exit code).

    The program prints "waiting" as it blocks, then a line as soon as it is interrupted,
    then "next: <the message>", read with a plain socket: the interrupted wait took nothing.
    """
    import zmq

    endpoint = free_endpoint()
    process = subprocess.Popen(
        [sys.executable, HERE, name, *args, endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        lines = [process.stdout.readline().strip()]
        assert lines == ["waiting"], [*lines, process.stderr.read()]
        _wait_asleep(process.pid)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        lines.append(process.stdout.readline().strip())
        latency = time.monotonic() - interrupted
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.connect(endpoint)
        push.send(b"m1")
        lines += process.stdout.read().splitlines()
        code = process.wait(WAIT)
        push.close(linger=0)
        ctx.term()
        return latency, lines, process.stderr.read(), code
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_asleep(pid: int) -> None:
    """Wait until the process's main thread sleeps in the kernel (blocked, not computing)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "S":
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never blocked")


# -- sockets the tests of every layer set up alike -----------------------------------------


def sockets_for_peers(ctx: Any, zmq: Any, echo: Peer, pub: Peer, pull: Peer) -> list[Any]:
    """Our side of the three peers: a DEALER, a SUB (all topics), a PUSH (SNDHWM 10)."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(echo.endpoint)
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"")
    sub.connect(pub.endpoint)
    push = ctx.socket(zmq.PUSH)
    push.sndhwm = 10
    push.connect(pull.endpoint)
    return [dealer, sub, push]


def router_mandatory_pair(ctx: Any, zmq: Any, **router_options: int) -> tuple[Any, Any]:
    """A ROUTER_MANDATORY (with ``router_options``, e.g. SNDHWM=1) and a DEALER of
    identity b"d", RCVHWM 1, connected over tcp; the DEALER has not spoken yet."""
    router = ctx.socket(zmq.ROUTER)
    router.router_mandatory = 1
    for name, value in router_options.items():
        router.set(getattr(zmq, name), value)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.identity = b"d"
    dealer.rcvhwm = 1
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return router, dealer


def push_to_a_consumer(ctx: Any, zmq: Any) -> tuple[Any, Any]:
    """A PUSH of ``ctx`` (SNDHWM 5) and the plain, blocking PULL it reached with a first
    message; ``pull.context.destroy(linger=0)`` kills that consumer."""
    import zmq as plain

    pull = plain.Context().socket(plain.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.sndhwm = 5
    push.connect(f"tcp://127.0.0.1:{port}")
    plain.Socket.send(push, b"0", plain.NOBLOCK)  # a plain send: the pipe has room
    assert pull.poll(WAIT * 1000) and pull.recv() == b"0"
    return push, pull


# -- the peer --------------------------------------------------------------------------------


def peer(mode: str, endpoint: str, run: str) -> None:
    """Bind ``endpoint`` and serve until killed.

    echo: a ROUTER that sends every message back. sink: a ROUTER that prints "got" for each
    message and never answers. pub: a PUB publishing "RUN SEQ" every 2 ms. pull: a PULL that
    prints every message.
    """
    import zmq

    ctx = zmq.Context()
    kind = {"echo": zmq.ROUTER, "sink": zmq.ROUTER, "pub": zmq.PUB, "pull": zmq.PULL}[mode]
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.bind(endpoint)
    print("ready", flush=True)
    if mode == "pub":
        for seq in range(sys.maxsize):
            sock.send(f"{run} {seq}".encode())
            time.sleep(0.002)
    while True:
        frames = sock.recv_multipart()
        if mode == "echo":
            sock.send_multipart(frames)
        elif mode == "sink":
            print("got", flush=True)
        else:
            print(frames[-1].decode(), flush=True)


# -- whole programs --------------------------------------------------------------------------


def _patch(flavour: str) -> None:
    if flavour == "gevent":
        from gevent import monkey

        monkey.patch_all()
    elif flavour == "eventlet":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import eventlet
        eventlet.monkey_patch()


def main(argv: list[str]) -> None:
    name, *args = argv
    if name == "peer":
        peer(*args)
        return
    program: Callable[..., Any] = globals()[f"program_{name}"]
    program(*args)


# -- fork ------------------------------------------------------------------------------------

#: The async layers the programs run on: (module, anyio backend, backend options).
ASYNC_LAYERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "asyncio": ("zmq_async.asyncio", "asyncio", {}),
    "uvloop": ("zmq_async.asyncio", "asyncio", {"use_uvloop": True}),
    "tornado": ("zmq_async.tornado", "asyncio", {}),
    "anyio-asyncio": ("zmq_async.anyio", "asyncio", {}),
    "anyio-trio": ("zmq_async.anyio", "trio", {}),
}


def _fork_and_wait(how: str, child: Callable[[], int]) -> int:
    """Run ``child()`` in a forked process (os.fork or multiprocessing's fork); its exit code.

    The child never returns into the caller's frames: it leaves with os._exit.
    """
    if how == "os.fork":
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child()
            finally:
                sys.stdout.flush()
                os._exit(code)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return -1
    import multiprocessing

    process = multiprocessing.get_context("fork").Process(target=lambda: sys.exit(child()))
    process.start()
    process.join(WAIT)
    if process.exitcode is None:
        process.kill()
        process.join()
        return -1
    return process.exitcode


def epoll_fds() -> set[int]:
    """This process's epoll instances (call before making a zmq context to get the loop's:
    libzmq's I/O and reaper threads have their own)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[eventpoll]":
                found.add(int(name))
    return found


def kernel_watched_fds(epolls: set[int]) -> set[int]:
    """The FDs the epoll instances ``epolls`` watch, as the kernel knows them.

    A forked child shares its parent's epoll instances: a child that unregisters an FD from
    one takes it away from the parent too. This sees that, whatever the loop keeps in memory.
    """
    watched = set()
    for epoll in epolls:
        with contextlib.suppress(OSError), open(f"/proc/self/fdinfo/{epoll}") as info:
            lines = info.read().splitlines()
            watched.update(int(line.split()[1]) for line in lines if line.startswith("tfd:"))
    return watched


def _report_inherited(error: BaseException | None) -> bool:
    """In the child: whether touching a socket of the parent failed with a clear error."""
    if error is None:
        print("child: inherited socket: no error", flush=True)
        return False
    print(f"child: inherited socket: {type(error).__name__}: {error}", flush=True)
    return isinstance(error, RuntimeError) and "fork" in str(error)


def _check_inherited(touch: Callable[[], Any]) -> bool:
    """In the child: touching a socket of the parent fails at once with a clear error."""
    try:
        touch()
    except Exception as exc:
        print(f"child: inherited socket: {type(exc).__name__}: {exc}", flush=True)
        return isinstance(exc, RuntimeError) and "fork" in str(exc)
    print("child: inherited socket: no error", flush=True)
    return False


def program_fork_async(layer: str, how: str, when: str) -> None:
    """A process with live sockets (a receive pending) forks; both sides go on.

    The child touches an inherited socket (a clear error), closes it (which must not disturb
    the parent), and runs its own context and sockets on its own loop. The parent's pending
    receive is then served. ``when``: "inside" a running loop (asyncio only: trio cannot run
    again in a child forked inside trio.run) or "between" two runs. Prints "parent ok" and
    "child ok".
    """
    import contextvars
    import importlib

    import anyio
    import zmq

    module, backend, options = ASYNC_LAYERS[layer]
    context_class = importlib.import_module(module).Context

    async def exchange(ctx: Any, message: bytes) -> bytes:
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        with anyio.fail_after(WAIT):
            await push.send(message)
            received: bytes = await pull.recv()
        push.close(linger=0)
        pull.close(linger=0)
        return received

    async def touch(operation: Callable[[], Any]) -> BaseException | None:
        try:
            with anyio.fail_after(WAIT):
                await operation()
        except Exception as exc:
            return exc
        return None

    async def child_async(push: Any, pull: Any) -> bool:
        ok = _report_inherited(await touch(lambda: push.send(b"from the child")))
        ok = _report_inherited(await touch(lambda: pull.recv())) and ok
        push.close(linger=0)
        pull.close(linger=0)  # the parent waits on its FD: that must go on
        ctx = context_class()
        got = await exchange(ctx, b"child")
        ctx.destroy(linger=0)
        return ok and got == b"child"

    def child_main(push: Any, pull: Any) -> int:
        # A fresh context: the task the fork happened in is the parent's, not the child's.
        ok = contextvars.Context().run(
            anyio.run, child_async, push, pull, backend=backend, backend_options=options
        )
        if ok:
            print("child ok", flush=True)
            return 0
        return 1

    async def parent_main() -> None:
        if layer == "tornado":
            from tornado.ioloop import IOLoop

            IOLoop.current()
        epolls = epoll_fds()  # the loop's, before libzmq makes its own
        ctx = context_class()
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        received: list[bytes] = []

        async def receive() -> None:
            received.append(await pull.recv())

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            await anyio.sleep(0.05)  # the loop polls once: the FD is registered (uvloop is lazy)
            fd = pull.get(zmq.FD)
            print(f"parent: FD watched before: {fd in kernel_watched_fds(epolls)}", flush=True)
            code = _fork_and_wait(how, lambda: child_main(push, pull))
            print(f"child exit {code}", flush=True)
            print(f"parent: FD still watched: {fd in kernel_watched_fds(epolls)}", flush=True)
            with anyio.fail_after(WAIT):
                await push.send(b"parent")
        assert received == [b"parent"], received
        assert await exchange(ctx, b"again") == b"again"
        ctx.destroy(linger=0)
        print("parent ok", flush=True)

    if when == "between" and backend == "trio":
        ctx = context_class()
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")

        async def used() -> None:
            await push.send(b"x")
            with anyio.fail_after(WAIT):
                assert await pull.recv() == b"x"

        anyio.run(used, backend="trio")
        code = _fork_and_wait(how, lambda: child_main(push, pull))
        print(f"child exit {code}", flush=True)
        anyio.run(used, backend="trio")
        ctx.destroy(linger=0)
        print("parent ok", flush=True)
    elif when == "between":
        # The loop stops with a receive pending (its FD registered), the process forks, and
        # the loop runs again: the child must not have unregistered the FD from the shared
        # epoll instance, or the parent would wait for the slow re-check timer.
        import asyncio

        if options.get("use_uvloop"):
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        epolls = epoll_fds()  # the loop's, before libzmq makes its own
        ctx = context_class()
        from zmq_async import _reactor

        # Out of reach, the re-check (rule 1) cannot serve the receive: only the FD can.
        _reactor.RECHECK_FIRST = _reactor.RECHECK_MAX = 60.0

        async def start() -> tuple[Any, Any, Any]:
            pull = ctx.socket(zmq.PULL)
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            push = ctx.socket(zmq.PUSH)
            push.connect(f"tcp://127.0.0.1:{port}")
            pending = asyncio.ensure_future(pull.recv())
            await asyncio.sleep(0.05)
            return push, pull, pending

        push, pull, pending = loop.run_until_complete(start())
        fd = pull.get(zmq.FD)
        print(f"parent: FD watched before: {fd in kernel_watched_fds(epolls)}", flush=True)
        code = _fork_and_wait(how, lambda: child_main(push, pull))
        print(f"child exit {code}", flush=True)
        print(f"parent: FD still watched: {fd in kernel_watched_fds(epolls)}", flush=True)

        async def finish() -> float:
            await asyncio.sleep(0.3)  # the loop waits on the FD a while before the message
            started = time.perf_counter()
            await push.send(b"parent")
            assert await asyncio.wait_for(pending, WAIT) == b"parent"
            return time.perf_counter() - started

        latency = loop.run_until_complete(finish())
        print(f"parent: woken in {latency:.3f}s", flush=True)
        ctx.destroy(linger=0)
        loop.close()
        print("parent ok", flush=True)
    else:
        anyio.run(parent_main, backend=backend, backend_options=options)


# -- shutdown --------------------------------------------------------------------------------


def _stream_over(sock: Any) -> Any:
    """A ZMQStream sharing a zmq_async future socket's reactor, without the peer's
    RuntimeWarning for a future socket (these processes check that stderr stays clean)."""
    import warnings

    from zmq_async.stream import ZMQStream

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ZMQStream only supports", RuntimeWarning)
        return ZMQStream(sock)


def _pending_async(ctx: Any, zmq_module: Any, poller_class: Any) -> list[Any]:
    """Sockets with something to wait for and nothing coming: (pull, sub, push at its HWM)."""
    zmq = zmq_module
    pull = ctx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"")
    sub.bind("tcp://127.0.0.1:*")
    push = ctx.socket(zmq.PUSH)
    push.bind("tcp://127.0.0.1:*")  # no peer: a send waits
    return [pull, sub, push]


def program_shutdown_asyncio(layer: str, closing: str) -> None:
    """``asyncio.run(main())`` returns while tasks wait in recv, poll, Poller.poll and send.

    ``closing``: "close" (main closes the sockets first), "open" (it leaves them, and
    ``Context.instance()``, to the interpreter's exit). At the loop's close, every FD of a
    closed socket must be unregistered; prints "exit ok" last.
    """
    import asyncio
    import importlib

    import zmq

    module = importlib.import_module(ASYNC_LAYERS[layer if layer != "stream" else "asyncio"][0])
    fds: list[int] = []
    epolls: set[int] = set()
    base: Any = asyncio.SelectorEventLoop
    if layer == "uvloop":
        import uvloop

        base = uvloop.Loop

    class Loop(base):  # type: ignore[misc, valid-type]
        def close(self) -> None:
            left = set(fds) & kernel_watched_fds(epolls)
            print(f"registered at close: {sorted(left)} of {fds}", flush=True)
            super().close()

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return Loop()

    async def main() -> None:
        if layer == "tornado":
            from tornado.ioloop import IOLoop

            IOLoop.current()
        epolls.update(epoll_fds())  # the loop's, before libzmq makes its own
        ctx = module.Context.instance()
        pull, sub, push = sockets = _pending_async(ctx, zmq, module.Poller)
        fds.extend(sock.get(zmq.FD) for sock in sockets)
        poller = module.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.register(sub, zmq.POLLIN)
        waits = [pull.recv(), sub.recv_multipart(), pull.poll(), poller.poll(), push.send(b"x")]
        streams = []
        if layer == "stream":
            streams = [_stream_over(pull), _stream_over(sub)]
            for stream in streams:
                stream.on_recv(print)
        tasks = [asyncio.ensure_future(wait) for wait in waits]
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in tasks)
        if closing == "close":
            for stream in streams:
                stream.close(linger=0)
            for sock in sockets:
                sock.close(linger=0)
        else:
            fds.clear()  # sockets left open keep their FD watched until collected

    asyncio.set_event_loop_policy(Policy())
    asyncio.run(main())
    print("exit ok", flush=True)


def program_shutdown_trio(closing: str) -> None:
    """A trio nursery cancelled around pending zmq_async.anyio calls, then trio.run returns."""
    import trio
    import zmq

    import zmq_async.anyio as za

    async def main() -> None:
        ctx = za.Context.instance()
        pull, sub, push = sockets = _pending_async(ctx, zmq, za.Poller)
        poller = za.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.register(sub, zmq.POLLIN)
        async with trio.open_nursery() as nursery:
            for wait in (pull.recv, sub.recv_multipart, pull.poll, poller.poll):
                nursery.start_soon(wait)
            nursery.start_soon(push.send, b"x")
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        if closing == "close":
            for sock in sockets:
                sock.close(linger=0)

    import trio.testing

    trio.run(main)
    print("exit ok", flush=True)


def program_shutdown_tornado(closing: str) -> None:
    """A Tornado IOLoop closed with streams and futures pending (all_fds as ``closing``)."""
    import zmq
    from tornado.ioloop import IOLoop

    import zmq_async.tornado as zt

    io_loop = IOLoop(make_current=False)

    sockets: list[Any] = []

    async def main() -> None:
        import asyncio

        ctx = zt.Context.instance()
        pull, sub, push = _pending_async(ctx, zmq, zt.Poller)
        sockets.extend((pull, sub, push))
        stream = _stream_over(sub)
        stream.on_recv(print)
        waits = [pull.recv(), pull.poll(), push.send(b"x")]
        await asyncio.sleep(0.1)
        assert not any(wait.done() for wait in waits)

    io_loop.run_sync(main)
    io_loop.close(all_fds=closing == "close")
    print(f"closed: {[sock.closed for sock in sockets]}", flush=True)
    print("exit ok", flush=True)


# -- signals ---------------------------------------------------------------------------------


def _drain_report(endpoint_sock: Any) -> None:
    """After the interruption: wait (plainly, blocking) for the test's next message and print
    it, to show the interrupted receive consumed nothing and left nothing watching."""
    import zmq

    plain = zmq.Socket.shadow(endpoint_sock.underlying)
    if plain.poll(WAIT * 1000, zmq.POLLIN):
        print(f"next: {plain.recv().decode()}", flush=True)
    else:
        print("next: nothing", flush=True)


def program_sigint_asyncio(layer: str, endpoint: str) -> None:
    """SIGINT while ``asyncio.run(main())`` waits in recv and poll: main is cancelled.

    Prints "waiting" once blocked, then how each pending operation ended, then the next
    message the test sends (a receive that was cancelled must not have taken it).
    """
    import asyncio
    import importlib

    import zmq

    module = importlib.import_module(ASYNC_LAYERS[layer][0])
    if layer == "uvloop":
        import uvloop

        uvloop.install()
    ctx = module.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(endpoint)
    pending: list[Any] = []

    async def main() -> None:
        pending.extend(asyncio.ensure_future(wait) for wait in (pull.recv(), pull.poll()))
        print("waiting", flush=True)
        await asyncio.gather(*pending)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
    print(f"pending: {['cancelled' if f.cancelled() else 'other' for f in pending]}", flush=True)
    _drain_report(pull)
    pull.close(linger=0)
    ctx.term()
    print("exit ok", flush=True)


def _green(flavour: str, patched: str) -> Any:
    """Patch first if asked, then the flavour's green zmq module."""
    import importlib
    import warnings

    if patched == "patched":
        _patch(flavour)
    elif flavour == "eventlet":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eventlet's deprecation notice at import
            import eventlet  # noqa: F401
    name = "zmq_async.green" if flavour == "gevent" else "zmq_async.green.eventlet"
    return importlib.import_module(name)


def program_sigint_green(flavour: str, patched: str, endpoint: str) -> None:
    """SIGINT while the main greenlet is blocked in a green recv: KeyboardInterrupt there."""
    zmq = _green(flavour, patched)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(endpoint)
    started = time.monotonic()
    try:
        print("waiting", flush=True)
        pull.recv()
    except KeyboardInterrupt:
        print(f"KeyboardInterrupt in recv after {time.monotonic() - started:.1f}s", flush=True)
    _drain_report(pull)
    pull.close(linger=0)
    ctx.term()
    print("exit ok", flush=True)


# -- green: shutdown, fork, restart under monkeypatching ------------------------------------


def _spawn_and_killall(flavour: str, functions: list[Callable[[], Any]]) -> None:
    if flavour == "gevent":
        import gevent

        greenlets = [gevent.spawn(function) for function in functions]
        gevent.sleep(0.1)
        assert not any(greenlet.dead for greenlet in greenlets)
        gevent.killall(greenlets, block=True, timeout=WAIT)
        assert all(greenlet.dead for greenlet in greenlets)
    else:
        import eventlet

        threads = [eventlet.spawn(function) for function in functions]
        eventlet.sleep(0.1)
        assert not any(thread.dead for thread in threads)
        for thread in threads:
            thread.kill()
        assert all(thread.dead for thread in threads)


def program_shutdown_green(flavour: str, patched: str, closing: str) -> None:
    """Greenlets blocked in recv, poll, Poller.poll and send are killed, then the program
    ends (sockets closed first, or left open with ``Context.instance()`` to the exit)."""
    zmq = _green(flavour, patched)
    ctx = zmq.Context.instance()
    pull, sub, push = sockets = _pending_async(ctx, zmq, zmq.Poller)
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(sub, zmq.POLLIN)
    _spawn_and_killall(
        flavour,
        [pull.recv, sub.recv_multipart, pull.poll, poller.poll, lambda: push.send(b"x")],
    )
    # Nothing was consumed, and the sockets still work after the kills.
    feeder = ctx.socket(zmq.PUSH)
    feeder.connect(pull.getsockopt_string(zmq.LAST_ENDPOINT))
    feeder.send(b"after")
    pull.rcvtimeo = int(WAIT * 1000)
    print(f"next: {pull.recv().decode()}", flush=True)
    feeder.close(linger=0)
    if closing == "close":
        for sock in sockets:
            sock.close(linger=0)
    print("exit ok", flush=True)


def program_fork_green(flavour: str, patched: str, how: str) -> None:
    """fork() with a greenlet blocked in recv; the child uses its own context on its hub."""
    zmq = _green(flavour, patched)
    if flavour == "gevent":
        import gevent as hub_module
    else:
        import eventlet as hub_module
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    parent_port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{parent_port}")
    received: list[bytes] = []

    def receive() -> None:
        # Its copy in the child fails there: the socket is inherited (test_review_s16_green).
        with contextlib.suppress(RuntimeError):
            received.append(pull.recv())

    waiter = hub_module.spawn(receive)
    hub_module.sleep(0.1)
    epolls = epoll_fds()
    fd = pull.getsockopt(zmq.FD)

    def child() -> int:
        if flavour == "gevent" and patched != "patched":
            hub_module.reinit()  # a raw fork needs it (gevent's os.fork does it when patched)
        elif flavour == "eventlet":
            import eventlet.hubs

            eventlet.hubs.use_hub()  # a fresh hub: the parent's epoll is shared
        ok = _check_inherited(lambda: push.send(b"from the child", zmq.NOBLOCK))
        ok = _check_inherited(lambda: pull.recv(zmq.NOBLOCK)) and ok
        push.close(linger=0)
        pull.close(linger=0)
        own = zmq.Context()
        a = own.socket(zmq.PULL)
        port = a.bind_to_random_port("tcp://127.0.0.1")
        b = own.socket(zmq.PUSH)
        b.connect(f"tcp://127.0.0.1:{port}")
        got = hub_module.spawn(a.recv)
        b.send(b"child")
        with hub_module.Timeout(WAIT):
            result = got.get() if flavour == "gevent" else got.wait()
        # A message for the parent makes its socket's FD readable, and the parent is not
        # looking (unpatched, it sleeps for real): our hub must not be watching that FD.
        to_parent = own.socket(zmq.PUSH)
        to_parent.connect(f"tcp://127.0.0.1:{parent_port}")
        to_parent.send(b"from the child")
        cpu = time.process_time()
        hub_module.sleep(0.5)
        print(f"child: CPU while idle {(time.process_time() - cpu) / 0.5:.3f} s/s", flush=True)
        own.destroy(linger=0)
        if ok and result == b"child":
            print("child ok", flush=True)
            return 0
        return 1

    code = _fork_and_wait(how, child)
    print(f"child exit {code}", flush=True)
    print(f"parent: FD still watched: {fd in kernel_watched_fds(epolls)}", flush=True)
    started = time.perf_counter()
    push.send(b"parent")
    with hub_module.Timeout(WAIT):
        if flavour == "gevent":
            waiter.join()
        else:
            waiter.wait()
    print(f"parent: woken in {time.perf_counter() - started:.3f}s", flush=True)
    assert received == [b"from the child"], received
    assert pull.recv() == b"parent"
    ctx.destroy(linger=0)
    print("parent ok", flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # As a program started from a terminal: a runner that ignores SIGINT (a background job of
    # a non-interactive shell, nohup) passes SIG_IGN on, Python then installs no handler,
    # and the SIGINT tests would wait for a KeyboardInterrupt that never comes.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main(sys.argv[1:])
