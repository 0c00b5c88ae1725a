"""Run the green suite monkeypatched: ``ZMQ_ASYNC_GREEN=gevent python tests/green/patched.py``.

Real gevent and eventlet programs patch before they import anything else, so this patches
the flavour named by ``ZMQ_ASYNC_GREEN`` first, before pytest and its plugins import
``threading`` and friends, then runs pytest with the arguments given (on ``tests/green``
unless they name a path).
It sets ``ZMQ_ASYNC_MONKEY=1`` for conftest.py, which refuses the variable in a process that
was not patched. Only this process is patched: the unpatched runs never see it.
"""

from __future__ import annotations

import os
import sys
import warnings

flavour = os.environ.get("ZMQ_ASYNC_GREEN", "")
if flavour == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif flavour == "eventlet":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eventlet's deprecation notice
        import eventlet
    eventlet.monkey_patch()
else:
    sys.exit(f"ZMQ_ASYNC_GREEN must be gevent or eventlet, not {flavour!r}")
os.environ["ZMQ_ASYNC_MONKEY"] = "1"
# hypothesis runs its plugins' entry points at import; trio's imports trio, whose socket
# module cannot load over eventlet's green socket (no green test needs trio).
os.environ["HYPOTHESIS_NO_PLUGINS"] = "1"

import pytest  # noqa: E402 - only once the flavour has patched

# As `python -m pytest` would: the current directory on the path, not this file's.
sys.path[0] = ""
# anyio's plugin imports trio, whose socket module cannot load over eventlet's green socket;
# no green test needs it.
args = ["-p", "no:anyio", *sys.argv[1:]]
if not any(os.path.exists(arg.partition("::")[0]) for arg in sys.argv[1:]):
    args.append(os.path.dirname(os.path.abspath(__file__)))
sys.exit(pytest.main(args))
