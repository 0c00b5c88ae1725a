"""``python benchmarks/run.py [options]``: the same as ``zmq-async bench [options]``.

Works from a source checkout without installing: the checkout goes first on ``sys.path`` (and
the harness passes it on to its worker processes).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zmq_async._cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
