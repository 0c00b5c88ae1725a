"""``python -m zmq_async``: the same as the ``zmq-async`` command."""

from zmq_async._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
