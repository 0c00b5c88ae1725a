"""``zmq_async.install()``: pyzmq's async modules resolve to ours, for a whole process.

Code we cannot edit (jupyter_client, ipykernel, locust, pyzmq's own ``zmq.auth.asyncio``)
imports ``zmq.asyncio``, ``zmq.eventloop.zmqstream``, ``zmq.green``, ... itself. A finder at
the head of ``sys.meta_path`` answers those names with our modules, the way ``uvloop.install()``
or ``gevent.monkey`` change a field for a whole process:

- a peer not imported yet: its import returns our module, which the import system also binds
  on the parent package (``zmq.asyncio``) and keeps in ``sys.modules`` under the peer's name;
- a peer already imported: its ``sys.modules`` entry and the parent's attribute become ours,
  and the peer module object itself gets our public names, so code holding it (``import
  zmq.asyncio as zaio`` before the install) builds our objects from then on. Objects the peer
  built before, and names copied out of it (``from zmq.asyncio import Context``), stay pyzmq's.

A peer is redirected only when its framework is importable, so a program without gevent
still gets pyzmq's ``ImportError`` from ``import zmq.green``; and nothing here imports a
framework: our module is imported only when the program imports the peer.

This module imports only what Python's start-up has already imported, since the ``.pth``
start-up hook (``ZMQ_ASYNC_INSTALL=1``) imports it in every Python process.
"""

from __future__ import annotations

import _thread
import importlib
import os
import sys
from importlib.machinery import ModuleSpec, PathFinder

TYPE_CHECKING = False  # typing costs 10 ms at start-up; mypy reads this as True

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

__all__ = ["ENV_VAR", "REDIRECTS", "install", "installed", "uninstall"]

#: peer module -> (our module, the framework it needs: the peer is redirected only if that
#: can be imported; None: always).
REDIRECTS: dict[str, tuple[str, str | None]] = {
    "zmq.asyncio": ("zmq_async.asyncio", None),
    "zmq.eventloop.future": ("zmq_async.tornado", "tornado"),
    "zmq.eventloop.zmqstream": ("zmq_async.stream", "tornado"),
    "zmq.green": ("zmq_async.green", "gevent"),
    "eventlet.green.zmq": ("zmq_async.green.eventlet", "eventlet"),
    "zmq_anyio": ("zmq_async.zmq_anyio", "anyio"),
}

#: The environment variable the ``.pth`` start-up hook reads: ``1`` installs at start-up.
ENV_VAR = "ZMQ_ASYNC_INSTALL"

#: ``zmq.green`` is a package and ours (a package too) replaces it; its submodules
#: (``zmq.green.core``, ``zmq.green.eventloop``, ...) are still found where pyzmq has them.
_GREEN_PREFIX = "zmq.green."

_MISSING = object()


class _Redirect:
    """Loader: the peer's import yields our module (``sys.modules`` holds it under both names).

    The import system returns whatever ``sys.modules`` holds under the name once
    ``exec_module`` returns, so our module keeps its own ``__name__`` and ``__spec__``.
    """

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a throwaway module that exec_module swaps out

    def exec_module(self, module: ModuleType) -> None:
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _Finder:
    """The ``sys.meta_path`` entry; asked for every import, so the miss path is one lookup."""

    def __init__(self) -> None:
        #: pyzmq's ``zmq.green.*`` submodules found for ``zmq.green`` while it is ours
        self.green_submodules: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        redirect = REDIRECTS.get(fullname)
        if redirect is not None:
            ours, framework = redirect
            if framework is not None and not _importable(framework):
                return None
            # A Loader by duck typing: importing importlib.abc would cost start-up time.
            return ModuleSpec(fullname, _Redirect(ours))  # type: ignore[arg-type]
        if fullname.startswith(_GREEN_PREFIX) and "." not in fullname[len(_GREEN_PREFIX) :]:
            zmq, green = sys.modules.get("zmq"), sys.modules.get("zmq.green")
            if zmq is not None and green is sys.modules.get("zmq_async.green") is not None:
                pyzmq_green = [os.path.join(entry, "green") for entry in zmq.__path__]
                spec = PathFinder.find_spec(fullname, pyzmq_green)
                if spec is not None:
                    self.green_submodules.append(fullname)
                return spec
        return None


class _Installed:
    """What :func:`install` changed, for :func:`uninstall` to put back."""

    def __init__(self) -> None:
        self.finder = _Finder()
        #: the peer modules imported before install, by name
        self.peers: dict[str, ModuleType] = {}
        #: (object, attribute, value before install or _MISSING), in the order they were set
        self.attrs: list[tuple[object, str, object]] = []

    def set(self, obj: object, name: str, value: object) -> None:
        self.attrs.append((obj, name, getattr(obj, name, _MISSING)))
        setattr(obj, name, value)


_lock = _thread.allocate_lock()
_state: _Installed | None = None
_started = False


def install() -> None:
    """Make pyzmq's async modules resolve to zmq_async's in this process, from now on.

    ``zmq.asyncio`` -> ``zmq_async.asyncio``, ``zmq.eventloop.future`` -> ``zmq_async.tornado``,
    ``zmq.eventloop.zmqstream`` -> ``zmq_async.stream``, ``zmq.green`` -> ``zmq_async.green``,
    ``eventlet.green.zmq`` -> ``zmq_async.green.eventlet``, ``zmq_anyio`` (zmq-anyio) ->
    ``zmq_async.zmq_anyio``; each only if its framework is importable. Peers imported already
    are switched over in place (see the module docstring). Imports no framework; calling it
    again does nothing. Undo with :func:`uninstall`.
    """
    global _state
    with _lock:
        if _state is not None:
            return
        state = _Installed()
        for peer, (target, _framework) in REDIRECTS.items():
            module = sys.modules.get(peer)
            if module is not None:
                _switch(state, peer, module, importlib.import_module(target))
        sys.meta_path.insert(0, state.finder)
        _state = state


def _switch(state: _Installed, peer: str, module: ModuleType, ours: ModuleType) -> None:
    """Point an imported peer's name, its parent's attribute and its public names at ours."""
    state.peers[peer] = module
    for name in ours.__all__:
        value = getattr(ours, name)
        if getattr(module, name, _MISSING) is not value:
            state.set(module, name, value)
    parent, _, child = peer.rpartition(".")
    package = sys.modules.get(parent)
    if package is not None:
        state.set(package, child, ours)
    sys.modules[peer] = ours


def uninstall() -> None:
    """Undo :func:`install`: the finder, ``sys.modules``, parent attributes, peers' names.

    Modules imported while installed are forgotten under the peer's name, so the next import
    of the peer is pyzmq's again; objects built meanwhile stay ours. Does nothing if not
    installed.
    """
    global _state
    with _lock:
        state = _state
        if state is None:
            return
        if state.finder in sys.meta_path:
            sys.meta_path.remove(state.finder)
        for obj, name, value in reversed(state.attrs):
            if value is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        for peer, (target, _framework) in REDIRECTS.items():
            ours = sys.modules.get(target)
            if ours is None or sys.modules.get(peer) is not ours:
                continue
            if peer in state.peers:
                sys.modules[peer] = state.peers[peer]
                continue
            del sys.modules[peer]
            parent, _, child = peer.rpartition(".")
            package = sys.modules.get(parent)
            if package is not None and getattr(package, child, None) is ours:
                delattr(package, child)
        green = sys.modules.get("zmq_async.green")
        for name in state.finder.green_submodules:  # bound on ours by the import system
            module = sys.modules.pop(name, None)
            child = name.rpartition(".")[2]
            if module is not None and getattr(green, "__dict__", {}).get(child) is module:
                delattr(green, child)
        _state = None


def installed() -> bool:
    """Whether :func:`install` is in force in this process."""
    return _state is not None


def _importable(name: str) -> bool:
    """Whether ``import name`` would find the top-level module ``name`` (without importing it).

    ``sys.modules[name] = None`` (how tests and tools block an import) counts as not importable.
    """
    if sys.modules.get(name) is not None:
        return True
    from importlib.util import find_spec

    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def install_from_environment() -> None:
    """Install if ``ZMQ_ASYNC_INSTALL`` is ``1``: what the ``.pth`` start-up hook runs.

    Unset, empty or ``0`` does nothing; any other value is reported on stderr and ignored
    (raising here would only make ``site`` print a traceback and skip the hook).
    """
    global _started
    if _started:  # a venv's lib64 -> lib link makes site run the hook twice
        return
    _started = True
    value = os.environ.get(ENV_VAR, "")
    if value == "1":
        install()
    elif value not in ("", "0"):
        sys.stderr.write(f"zmq_async: ignoring {ENV_VAR}={value!r} (expected 1 or 0)\n")
