"""ZeroMQ for every Python concurrency framework, on one edge-triggered reactor.

Importing this package imports no framework: pick an adapter module
(``zmq_async.asyncio``, ...) and import that.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
