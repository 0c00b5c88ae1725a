"""The other processes of the fault tests: a peer to kill and restart, and whole programs.

Run as ``python tests/faultprocs.py peer MODE ENDPOINT`` for a peer (plain blocking pyzmq,
so its behaviour is not ours under test), or ``python tests/faultprocs.py NAME [ARG]`` for
the program ``program_NAME``. Programs that monkeypatch do it first, before zmq_async is
imported. Nothing here imports a framework at module level. The test side (starting,
killing, reading these processes) is :class:`Peer` and :func:`run_program`.
"""

from __future__ import annotations

import os
import queue
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


# -- the test side ---------------------------------------------------------------------------


def free_endpoint() -> str:
    """A tcp endpoint on loopback whose port was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


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

    def start(self, mode: str | None = None) -> None:
        """Start (or restart) the peer and wait until it has bound its endpoint."""
        self.runs += 1
        self.process = subprocess.Popen(
            [sys.executable, HERE, "peer", mode or self.mode, self.endpoint, str(self.runs)],
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        self.expect("ready")

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
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
        assert self.process.stdout is not None
        self.process.stdout.close()
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


def start_program(name: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start ``program_<name>`` with pipes, for tests that talk to it (signals)."""
    return subprocess.Popen(
        [sys.executable, HERE, name, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "default", **env},
    )


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


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main(sys.argv[1:])
