"""The medreq benchmarks (docs/benchmarks.md), runnable without installing the CLI entry point.

    python loadtests/bench.py notify --rates 50,200,500 --seconds 10
    python loadtests/bench.py cycle --workers 64 --processes 2 --seconds 15
    python loadtests/bench.py idle --connections 10000 --compression off,on
    python loadtests/bench.py all --json > bench.json

Same options as `medreq bench` (which this calls); the code lives in `medreq.simulate.bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medreq.cli.app import app
from medreq.cli.simulate import bench  # noqa: F401  (registers the command)

if __name__ == "__main__":
    app(["bench", *sys.argv[1:]])
