"""The ``zmq-async bench`` harness: zmq_async's layers against pyzmq, side by side.

Every measurement runs in a fresh worker process (:mod:`.worker`), so no layer inherits another's
threads, sockets or event loop. :mod:`.spec` defines the workloads, :mod:`.layers` the contenders,
:mod:`.plain` and :mod:`.aio` the code that drives them, :mod:`.runner` the orchestration,
:mod:`.results` the medians and ratios, :mod:`.report` the table, :mod:`.plot` the chart
(matplotlib, imported only when drawing). Importing this package imports nothing beyond the
standard library.
"""
