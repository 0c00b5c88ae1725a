"""OS-thread identity that gevent and eventlet monkeypatching cannot change.

After ``gevent.monkey.patch_all()`` or ``eventlet.monkey_patch()``, ``threading.get_ident()``
names the current greenlet and ``threading.local`` is greenlet-local, so every greenlet of one
OS thread would look like a thread of its own (DESIGN.md, invariant 7). This module keeps the
unpatched originals, whether the patching happened before or after it was imported: imported
first, it holds the builtins before anyone replaced them; imported after, it asks the patcher
for them (``gevent.monkey.get_original``, ``eventlet.patcher.original``), found through
``sys.modules`` so that no framework is ever imported here. ``get_ident`` and ``local`` are the
C builtins themselves: no cost over ``threading.get_ident()``.
"""

from __future__ import annotations

import _thread
import sys
import weakref
from collections.abc import Callable
from typing import Any, cast

__all__ = ["OSThread", "alive", "allocate_lock", "current", "get_ident", "local"]


def _original(name: str) -> Any:
    """``_thread.<name>`` as it was before any monkeypatching."""
    value = getattr(_thread, name)
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        value = monkey.get_original("_thread", name)  # the current one if never patched
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        value = getattr(patcher.original("_thread"), name)
    return value


#: The identifier of the calling OS thread (``threading.get_ident()`` before any patching).
get_ident = cast("Callable[[], int]", _original("get_ident"))

#: Thread-local storage per OS thread, shared by all the greenlets of that thread.
local = cast("type[_thread._local]", _original("_local"))

#: A lock that blocks the OS thread (not a greenlet): for code run in worker threads.
allocate_lock = cast("Callable[[], _thread.LockType]", _original("allocate_lock"))


class OSThread:
    """The token of one OS thread, held by that thread's (unpatched) thread-local storage
    only: it goes when the thread ends. Its ``ident`` may be reused by a later thread."""

    __slots__ = ("__weakref__", "ident")

    def __init__(self, ident: int) -> None:
        self.ident = ident


_tokens = local()


def current() -> weakref.ref[OSThread]:
    """The calling OS thread, as an identity no other thread can ever have: a weak reference
    to its :class:`OSThread` token (``current()().ident == get_ident()`` while it runs).

    For :func:`alive`; compare ``get_ident()`` values on hot paths.
    """
    try:
        return _tokens.ref  # type: ignore[no-any-return]
    except AttributeError:
        token = _tokens.token = OSThread(get_ident())
        ref = _tokens.ref = weakref.ref(token)
        return ref


def alive(thread: weakref.ref[OSThread]) -> bool:
    """Whether the OS thread ``thread`` (from :func:`current`) is running Python now.

    A thread that ended is not, even when a new thread has been given its ``ident`` (the
    system reuses them). Counts every thread, also those that ``threading`` does not know
    (started by ``_thread.start_new_thread``, gevent's threadpool, eventlet's tpool); a
    rare-path check.
    """
    token = thread()
    return token is not None and token.ident in sys._current_frames()
