"""ZeroMQ for every Python concurrency framework, on one edge-triggered reactor.

Importing this package imports no framework: pick an adapter module
(``zmq_async.asyncio``, ...) and import that, or call :func:`install` to make pyzmq's own
async modules (``zmq.asyncio``, ...) resolve to ours in the whole process.
"""

from zmq_async._install import install, installed, uninstall

__version__ = "0.1.0"
"""This package's version."""

__all__ = ["__version__", "install", "installed", "uninstall"]
